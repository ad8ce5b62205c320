#!/usr/bin/env bash
# dryrun.sh: server-side validation of deploy/k8s against a real
# kube-apiserver with etcd, both built from the Go module proxy
# (deploy/k8s/tools, pinned to Kubernetes v1.37.2) and started on 127.0.0.1.
#
# For the base and every overlay it runs `kubectl apply --dry-run=server -k`:
# the API server's validation and admission see the objects, which catches
# what strict decoding (deploy/k8s/validate) cannot: selector/label
# mismatches, invalid names and values, defaulting problems. It then creates
# the base for real and dry-runs every overlay as an update of it, which
# catches changes to immutable fields (selector, serviceName,
# volumeClaimTemplates, podManagementPolicy). Two deliberately broken
# variants must be rejected, so a validation that silently passes fails here.
#
# Cost: the first run builds the binaries (~12 min and ~2.5 GB RAM on 2
# cores); they are cached in ${FACTSTR_K8S_CACHE:-~/.cache/factstr-k8s}/<version>-<hash>,
# so later runs take seconds. Leaves nothing running (processes stopped by PID,
# temporary directory removed).
set -euo pipefail
K8S_T0=$(date +%s)
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

K8S_WORK=$(mktemp -d /tmp/factstr-dryrun.XXXXXX)
cleanup() {
	rc=$?
	k8s_stop_all
	if [ "$rc" -ne 0 ] && [ -f "$K8S_WORK/kube-apiserver.log" ]; then
		echo "--- kube-apiserver log (tail)" >&2
		tail -15 "$K8S_WORK/kube-apiserver.log" >&2
	fi
	rm -rf "$K8S_WORK"
	log "cleaned up (exit $rc)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

k8s_build kube-apiserver kubectl etcd
k8s_start_control_plane

ns=factstr-dryrun
kubectl create namespace "$ns" >/dev/null
dirs=(base)
for d in "$K8S_DIR"/overlays/*/; do dirs+=("overlays/$(basename "$d")"); done

# 1. Every kustomization, as a fresh install.
for d in "${dirs[@]}"; do
	log "kubectl apply --dry-run=server -k deploy/k8s/$d"
	kubectl -n "$ns" apply --dry-run=server -k "$K8S_DIR/$d" >"$K8S_WORK/out" 2>&1 || { cat "$K8S_WORK/out" >&2; die "$d rejected by the API server"; }
	sed 's/^/    /' "$K8S_WORK/out" >&2
done

# 2. The base for real (no controllers run: the objects are only stored),
#    then every overlay as an update of it: immutable-field changes fail here.
kubectl -n "$ns" apply -k "$K8S_DIR/base" >/dev/null
kubectl -n "$ns" get statefulset factstr -o jsonpath='{.spec.replicas} {.spec.serviceName} {.spec.podManagementPolicy}{"\n"}' | grep -qx '3 factstr-headless Parallel' ||
	die "stored StatefulSet does not read back as expected"
for d in "${dirs[@]}"; do
	[ "$d" = base ] && continue
	log "update of the stored base: kubectl apply --dry-run=server -k deploy/k8s/$d"
	kubectl -n "$ns" apply --dry-run=server -k "$K8S_DIR/$d" >"$K8S_WORK/out" 2>&1 || { cat "$K8S_WORK/out" >&2; die "$d rejected as an update of the base"; }
done

# 3. Controls: the API server must reject what strict decoding lets through.
neg="$K8S_WORK/negative"
mkdir -p "$neg/selector" "$neg/immutable"
cp -r "$K8S_DIR/base" "$neg/base"
cat >"$neg/selector/kustomization.yaml" <<'YAML'
resources: [../base]
patches:
  - patch: |
      apiVersion: apps/v1
      kind: StatefulSet
      metadata: {name: factstr}
      spec:
        template:
          metadata:
            labels: {app.kubernetes.io/instance: other}
YAML
cat >"$neg/immutable/kustomization.yaml" <<'YAML'
resources: [../base]
patches:
  - patch: |
      apiVersion: apps/v1
      kind: StatefulSet
      metadata: {name: factstr}
      spec:
        serviceName: factstr-peers
YAML
for c in selector immutable; do
	if kubectl -n "$ns" apply --dry-run=server -k "$neg/$c" >"$K8S_WORK/out" 2>&1; then
		cat "$K8S_WORK/out" >&2
		die "control '$c' was accepted; the dry run is not validating"
	fi
	log "control '$c' rejected as it must be: $(grep -m1 -o 'is invalid.*\|Forbidden.*' "$K8S_WORK/out" | cut -c1-160)"
done

log "PASS: ${#dirs[@]} kustomizations (base and overlays) accepted by kube-apiserver $(kube-apiserver --version | awk '{print $2}'), as installs and as updates; both controls rejected"
