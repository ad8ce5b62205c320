// Command pause is the pod sandbox ("infra") container for deploy/k8s/e2e.sh:
// it holds the pod's namespaces and exits on SIGINT or SIGTERM. It stands in
// for registry.k8s.io/pause, which cannot be pulled here.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
