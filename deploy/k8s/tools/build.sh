#!/usr/bin/env bash
# build.sh BINARY... : build Kubernetes binaries from this module (pinned in
# go.mod, fetched through the Go module proxy) into a cache directory keyed by
# the Kubernetes version and a hash of go.mod/go.sum, and print that directory.
# Binaries already in the cache are not rebuilt, so a warm run costs nothing.
#
#   BINARY: kube-apiserver kubectl etcd kubelet kube-controller-manager kube-scheduler
#           pause (the pod sandbox for e2e.sh), coredns (module ./coredns, cached apart)
#   FACTSTR_K8S_CACHE  cache root (default: $HOME/.cache/factstr-k8s)
#
# A cold build of kube-apiserver+kubectl+etcd takes about 12 minutes on 2 cores
# and ~2.5 GB of RAM; the Go build cache (GOCACHE) makes later rebuilds cheap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

cache="${FACTSTR_K8S_CACHE:-$HOME/.cache/factstr-k8s}"
if [ "${1:-}" = coredns ] && [ $# -eq 1 ]; then
	# CoreDNS is a module of its own (it pins its own client-go).
	cd coredns
	cver=$(awk '$1=="require" && $2=="github.com/coredns/coredns" {print $3; exit} $1=="github.com/coredns/coredns" {print $2; exit}' go.mod)
	dir="$cache/coredns-$cver-$(cat go.mod go.sum main.go | sha256sum | cut -c1-12)"
	if [ ! -x "$dir/bin/coredns" ]; then
		mkdir -p "$dir/bin"
		echo "build.sh: building coredns $cver into $dir/bin" >&2
		t0=$(date +%s)
		GOFLAGS="${GOFLAGS:-} -mod=readonly" CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/bin/coredns.tmp" .
		mv -f "$dir/bin/coredns.tmp" "$dir/bin/coredns"
		echo "build.sh: built in $(( $(date +%s) - t0 ))s" >&2
	fi
	echo "$dir"
	exit 0
fi

kver=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3; exit} $1=="k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' go.mod)
key=$(cat go.mod go.sum cmd/*/main.go | sha256sum | cut -c1-12)
dir="$cache/$kver-$key"
mkdir -p "$dir/bin"

minor=$(echo "$kver" | cut -d. -f2)
ldf="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldf="$ldf -X $p.gitVersion=$kver -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done

want=()
for b in "$@"; do
	case "$b" in
	kube-apiserver | kubectl | kubelet | kube-controller-manager | kube-scheduler) pkg="k8s.io/kubernetes/cmd/$b" ;;
	etcd | pause) pkg="./cmd/$b" ;;
	*) echo "build.sh: unknown binary $b" >&2; exit 2 ;;
	esac
	[ -x "$dir/bin/$b" ] || want+=("$pkg")
done

if [ ${#want[@]} -gt 0 ]; then
	tmp=$(mktemp -d "$dir/build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "build.sh: building ${want[*]} ($kver) into $dir/bin (cold: ~12 min for the apiserver set on 2 cores)" >&2
	t0=$(date +%s)
	GOFLAGS="${GOFLAGS:-} -mod=readonly" CGO_ENABLED=0 go build -trimpath -ldflags "$ldf" -o "$tmp/" "${want[@]}"
	for f in "$tmp"/*; do mv -f "$f" "$dir/bin/"; done
	echo "build.sh: built in $(( $(date +%s) - t0 ))s" >&2
fi
echo "$dir"
