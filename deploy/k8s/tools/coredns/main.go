// Command coredns is CoreDNS v1.15 with only the plugins deploy/k8s/e2e.sh
// uses: bind, errors, log and kubernetes (the cluster.local zone, including
// the per-pod names of a headless Service that StatefulSet pods get). It
// serves the e2e test's single-node cluster from the host, on the pod
// bridge's gateway address; it forwards nothing.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

func main() {
	if err := dnsserver.SetDirectives([]string{"bind", "errors", "log", "kubernetes"}); err != nil {
		panic(err)
	}
	coremain.Run()
}
