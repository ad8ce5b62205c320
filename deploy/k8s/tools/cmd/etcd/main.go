// Command etcd is the upstream etcd server (go.etcd.io/etcd/server/v3), built
// at the version k8s.io/kubernetes requires, for the throwaway control plane
// of deploy/k8s/dryrun.sh and deploy/k8s/e2e.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
