#!/usr/bin/env bash
# e2e.sh: the StatefulSet of deploy/k8s on a real, single-node Kubernetes
# built on this host, end to end. Opt-in (make k8s-e2e); needs root, Linux,
# a Docker engine (for the image) and Debian's containerd and runc.
#
#   - etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet
#     and kubectl v1.37.2 and CoreDNS v1.15.0, built from the Go module proxy
#     (deploy/k8s/tools; cached by version, like dryrun.sh);
#   - Debian's containerd and runc, the CNI bridge plugin (Debian's
#     containernetworking-plugins, installed if missing and purged again);
#   - the image from deploy/Dockerfile (make image) and a pause image,
#     imported into containerd: no registry;
#   - CoreDNS on the pod bridge serves cluster.local from the API server, so
#     the pods find each other by their headless-Service names.
#
# Scenario: apply deploy/k8s/overlays/single-node (all pods on one node);
# wait for three Ready pods that formed one Raft cluster through DNS; append
# through the client Service's endpoints; under a continuous load (through
# per-pod DNS names), delete the leader pod, wait until the StatefulSet
# recreated it with a new IP and it rejoined, then `kubectl rollout restart`
# and wait for the rollout; check that every acknowledged append is on all
# three nodes. Then tear everything down and restore every host setting it
# changed (sysctls, iptables chains and nft tables, cgroups, mounts, network
# namespaces, the bridge, files, packages), and report any difference left.
#
# Environment: FACTSTR_E2E_KEEP_WORK=1 keeps the work directory (logs),
# FACTSTR_E2E_KEEP_PACKAGES=1 keeps containernetworking-plugins installed.
set -euo pipefail
K8S_T0=$(date +%s)
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "e2e.sh needs root (it runs a kubelet and containerd)"
for c in ip iptables iptables-save ip6tables-save containerd containerd-shim-runc-v2 runc ctr openssl curl docker ss sysctl; do
	command -v "$c" >/dev/null || die "missing $c (Debian: containerd runc iptables iproute2 openssl curl docker.io)"
done

NS=factstr-e2e
BR=fke2e0
NET=10.244.77
GW=$NET.1
K8S_WORK=$(mktemp -d /tmp/factstr-e2e.XXXXXX)
chmod 755 "$K8S_WORK"
W=$K8S_WORK
SOCK=$W/ctrd/containerd.sock
SNAP=$W/snapshot
mkdir -p "$SNAP"
PHASE=setup

# ---------------------------------------------------------------- snapshots
sysctl_keys() {
	sysctl -a 2>/dev/null | grep -E '^(kernel\.|vm\.|net\.ipv4\.ip_forward|net\.ipv4\.conf\.(all|default)\.|net\.ipv6\.conf\.(all|default)\.|net\.bridge\.|net\.netfilter\.nf_conntrack_max|fs\.inotify\.|fs\.file-max)' |
		grep -vE '^kernel\.(random\.|ns_last_pid|pty\.nr|tainted|sched_domain|perf_event_max|hung_task|core_pattern =)|^vm\.(stat_|nr_|zone_)|^fs\.(dentry|inode|file-nr)' | sort || true
}
ipt_save() {
	for t in iptables ip6tables; do
		echo "### $t"
		"$t-save" 2>/dev/null | grep -vE '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//' || true
	done
}
watched_paths() {
	for p in /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /etc/cni /opt/cni /usr/libexec/kubernetes /opt/containerd /run/netns /etc/kubernetes; do
		if [ -e "$p" ]; then echo "$p"; fi
	done | sort
}
snapshot() { # snapshot DIR
	local d=$1
	mkdir -p "$d"
	sysctl_keys >"$d/sysctl"
	ipt_save >"$d/iptables"
	nft list tables 2>/dev/null | sort >"$d/nft" || true
	# Docker's own mounts and links come and go with other containers: left out.
	awk '{print $5}' /proc/self/mountinfo | grep -vE '^/(var/lib/docker|run/docker)/' | sort >"$d/mounts" || true
	for h in /sys/fs/cgroup/*/; do
		find "$h" -mindepth 1 -maxdepth 1 -type d 2>/dev/null
	done | sort >"$d/cgroups" || true
	ip -o link | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -vE '^(veth|br-)' | sort >"$d/links" || true
	ls -1 /run/netns 2>/dev/null | sort >"$d/netns" || true
	watched_paths >"$d/paths"
	dpkg-query -W -f='${Package} ${Status}\n' containernetworking-plugins 2>/dev/null | grep -c 'install ok installed' >"$d/cni-pkg" || true
}
snapshot "$SNAP/before"

# ---------------------------------------------------------------- teardown
stop_named() { # stop_named NAME: SIGTERM by PID, SIGKILL after 30s
	local pid
	pid=$(awk -v n="$1" '$2==n {p=$1} END {print p}' "$W/pids" 2>/dev/null)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
	log "$1 ($pid) ignored SIGTERM; SIGKILL"
	kill -9 "$pid" 2>/dev/null || true
}

teardown() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	log "teardown (exit $rc, phase $PHASE)"
	if [ "$rc" -ne 0 ]; then
		for f in kubelet containerd kube-controller-manager kube-scheduler coredns load; do
			[ -s "$W/$f.log" ] && { echo "--- $f.log (tail)" >&2; tail -25 "$W/$f.log" >&2; }
		done
		if k8s_alive kube-apiserver; then
			kubectl -n "$NS" get pods -o wide >&2 2>/dev/null
			kubectl -n "$NS" get events --sort-by=.lastTimestamp 2>/dev/null | tail -25 >&2
		fi
		ls "$W"/pod-logs/*/*/* 2>/dev/null | head -20 | while read -r f; do echo "--- $f" >&2; tail -15 "$f" >&2; done
	fi
	stop_named load
	# 1. Pods first, through Kubernetes, so the kubelet stops them cleanly.
	if k8s_alive kube-apiserver && k8s_alive kubelet; then
		kubectl -n "$NS" delete statefulset factstr --wait=false >/dev/null 2>&1
		kubectl -n "$NS" delete pods --all --grace-period=30 --wait=true --timeout=120s >/dev/null 2>&1 ||
			kubectl -n "$NS" delete pods --all --grace-period=0 --force >/dev/null 2>&1
		for _ in $(seq 1 120); do
			[ -z "$(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null)" ] && break
			sleep 1
		done
	fi
	# 2. The Kubernetes processes and CoreDNS.
	for p in coredns kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_named "$p"; done
	# 3. Whatever containers are left, then containerd and its shims.
	if k8s_alive containerd; then
		for t in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
			ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1
			sleep 1
			ctr --address "$SOCK" -n k8s.io tasks rm -f "$t" >/dev/null 2>&1
		done
		for c in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
			ctr --address "$SOCK" -n k8s.io containers rm "$c" >/dev/null 2>&1
		done
	fi
	stop_named containerd
	# Shims of this run's containerd (its socket path is unique to the run).
	for pid in $(pgrep -f -- "-address $SOCK" 2>/dev/null); do
		log "killing leftover shim $pid"
		kill -9 "$pid" 2>/dev/null
	done
	# 4. Mounts under the work directory and network namespaces this run made.
	for _ in 1 2 3; do
		awk '{print $5}' /proc/self/mountinfo | grep -F "$W/" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- |
			while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	done
	comm -13 "$SNAP/before/netns" <(ls -1 /run/netns 2>/dev/null | sort) | while read -r n; do
		umount "/run/netns/$n" 2>/dev/null || umount -l "/run/netns/$n" 2>/dev/null
		rm -f "/run/netns/$n"
	done
	# 5. Network: the bridge (veths went with their namespaces), our
	#    FORWARD rule, the kubelet's KUBE-* chains, tables that were not there.
	ip link del "$BR" 2>/dev/null
	iptables -D FORWARD -i "$BR" -o "$BR" -m comment --comment factstr-e2e -j ACCEPT 2>/dev/null
	for ipt in iptables ip6tables; do
		for table in filter nat mangle; do
			"$ipt-save" -t "$table" 2>/dev/null | grep -E '^-A [^ ]+ .*-j KUBE-' | grep -vE '^-A KUBE-' |
				while read -r rule; do
					# shellcheck disable=SC2086
					eval "$ipt -t $table ${rule/#-A/-D}" 2>/dev/null
				done
			# KUBE-* chains that were not there before the run.
			new_chains=$("$ipt-save" -t "$table" 2>/dev/null | awk '/^:KUBE-/ {print substr($1,2)}' |
				while read -r c; do grep -q "^:$c " "$SNAP/before/iptables" || echo "$c"; done)
			for chain in $new_chains; do "$ipt" -t "$table" -F "$chain" 2>/dev/null; done
			for chain in $new_chains; do "$ipt" -t "$table" -X "$chain" 2>/dev/null; done
		done
	done
	if command -v nft >/dev/null; then
		comm -13 "$SNAP/before/nft" <(nft list tables 2>/dev/null | sort) | while read -r _ fam name; do
			# Only the iptables-nft tables the kubelet creates, only if this run
			# created them, and only if nothing is left in them.
			case "$fam/$name" in ip/filter | ip/nat | ip/mangle | ip6/filter | ip6/nat | ip6/mangle) ;; *) continue ;; esac
			if ! nft list table "$fam" "$name" 2>/dev/null | grep -vE '^\s*(table|chain) |^\s*\}|^\s*type .* hook |^\s*$' | grep -q .; then
				nft delete table "$fam" "$name" 2>/dev/null && log "deleted nft table $fam $name (created by the kubelet's iptables)"
			fi
		done
	fi
	# 6. cgroups the kubelet and containerd created (empty by now).
	comm -13 "$SNAP/before/cgroups" <(for h in /sys/fs/cgroup/*/; do find "$h" -mindepth 1 -maxdepth 1 -type d 2>/dev/null; done | sort) |
		while read -r cg; do
			find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
			[ -d "$cg" ] && log "cgroup $cg could not be removed (processes left?)"
		done
	# 7. Kernel settings the kubelet (or the CNI bridge plugin) changed.
	sysctl_keys >"$W/sysctl.after"
	comm -23 "$SNAP/before/sysctl" "$W/sysctl.after" | while IFS= read -r line; do
		key=${line%% = *}
		val=${line#* = }
		now=$(sysctl -n "$key" 2>/dev/null)
		[ "$now" = "$val" ] && continue
		if sysctl -w "$key=$val" >/dev/null 2>&1; then
			log "restored sysctl $key: $now -> $val"
		fi
	done
	# 8. Files and directories outside the work directory.
	comm -13 "$SNAP/before/paths" <(watched_paths) |
		while read -r p; do rm -rf "$p" && log "removed $p (created during the run)"; done
	# 9. Packages this run installed.
	if [ "$(cat "$SNAP/before/cni-pkg")" = 0 ] && [ -f "$W/installed-cni" ] && [ "${FACTSTR_E2E_KEEP_PACKAGES:-}" != 1 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq containernetworking-plugins >/dev/null 2>&1 && log "purged containernetworking-plugins (installed by this run)"
	fi
	docker rmi factstr-node:e2e >/dev/null 2>&1
	# 10. What is still different from before the run.
	snapshot "$SNAP/after"
	local diffs=0
	for f in sysctl iptables nft mounts cgroups links netns paths cni-pkg; do
		if ! diff -q "$SNAP/before/$f" "$SNAP/after/$f" >/dev/null; then
			diffs=1
			log "host differs from before the run in $f:"
			diff "$SNAP/before/$f" "$SNAP/after/$f" | grep '^[<>]' | head -20 >&2
		fi
	done
	[ "$diffs" = 0 ] && log "host restored: sysctls, iptables, nft tables, mounts, cgroups, links, netns, paths and packages as before the run"
	if [ "${FACTSTR_E2E_KEEP_WORK:-}" = 1 ]; then
		log "work directory kept: $W"
	else
		rm -rf "$W"
	fi
	if [ "$rc" -eq 0 ]; then log "PASS ($(( $(date +%s) - K8S_T0 ))s in all)"; else log "FAILED in phase $PHASE"; fi
	exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
PHASE=build
if [ ! -x /usr/lib/cni/bridge ]; then
	log "installing containernetworking-plugins (Debian)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containernetworking-plugins >/dev/null
	touch "$W/installed-cni"
fi
for p in bridge host-local loopback; do [ -x "/usr/lib/cni/$p" ] || die "CNI plugin /usr/lib/cni/$p missing"; done
k8s_build kube-apiserver kubectl etcd kubelet kube-controller-manager kube-scheduler pause
PAUSE_BIN=$K8S_BIN/pause
k8s_build coredns

log "building the image (make image) and importing it into containerd without a registry"
make -C "$K8S_REPO" image IMAGE=factstr-node:e2e VERSION=e2e >/dev/null
docker save factstr-node:e2e -o "$W/factstr-node.tar"
go build -C "$K8S_REPO" -o "$W/e2eclient" ./deploy/k8s/e2eclient
go build -C "$K8S_REPO" -o "$W/factstr-node" ./cmd/factstr-node

# mkoci ROOTFS ENTRYPOINT NAME OUT: a single-layer OCI image layout tar.
mkoci() {
	local rootfs=$1 entry=$2 name=$3 out=$4 t b l ls c cs m ms
	t=$(mktemp -d "$W/oci.XXXX")
	b=$t/blobs/sha256
	mkdir -p "$b"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$t/layer.tar" .
	l=$(sha256sum "$t/layer.tar" | cut -d' ' -f1); ls=$(stat -c %s "$t/layer.tar"); mv "$t/layer.tar" "$b/$l"
	printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["%s"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$entry" "$l" >"$t/c.json"
	c=$(sha256sum "$t/c.json" | cut -d' ' -f1); cs=$(stat -c %s "$t/c.json"); mv "$t/c.json" "$b/$c"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "$c" "$cs" "$l" "$ls" >"$t/m.json"
	m=$(sha256sum "$t/m.json" | cut -d' ' -f1); ms=$(stat -c %s "$t/m.json"); mv "$t/m.json" "$b/$m"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' "$m" "$ms" "$name" "${name##*:}" >"$t/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$t/oci-layout"
	tar -C "$t" -cf "$out" oci-layout index.json blobs
	rm -rf "$t"
}
mkdir -p "$W/pause-root"
cp "$PAUSE_BIN" "$W/pause-root/pause"
mkoci "$W/pause-root" /pause factstr.invalid/pause:e2e "$W/pause.tar"

# ---------------------------------------------------------------- node
PHASE=node
log "pod network: bridge $BR $GW/24 (FORWARD accepted on it: Docker's FORWARD policy is DROP)"
ip link add "$BR" type bridge
ip addr add "$GW/24" dev "$BR"
ip link set "$BR" up
iptables -I FORWARD 1 -i "$BR" -o "$BR" -m comment --comment factstr-e2e -j ACCEPT
mkdir -p "$W/cni/net.d" "$W/cni/ipam" "$W/ctrd"
cat >"$W/cni/net.d/10-factstr-e2e.conflist" <<EOF
{"cniVersion":"1.0.0","name":"factstr-e2e","plugins":[
 {"type":"bridge","bridge":"$BR","isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","dataDir":"$W/cni/ipam","ranges":[[{"subnet":"$NET.0/24","rangeStart":"$NET.10","gateway":"$GW"}]],"routes":[]}},
 {"type":"loopback"}]}
EOF
cat >"$W/containerd.toml" <<EOF
version = 2
root = "$W/ctrd/root"
state = "$W/ctrd/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/ctrd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "factstr.invalid/pause:e2e"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni/net.d"
EOF
k8s_spawn containerd containerd --config "$W/containerd.toml"
for _ in $(seq 1 60); do [ -S "$SOCK" ] && ctr --address "$SOCK" version >/dev/null 2>&1 && break; sleep 0.5; done
ctr --address "$SOCK" version >/dev/null || die "containerd did not start"
ctr --address "$SOCK" -n k8s.io images import "$W/pause.tar" >/dev/null
ctr --address "$SOCK" -n k8s.io images import "$W/factstr-node.tar" >/dev/null
log "containerd $(containerd --version | awk '{print $3}') up; images: $(ctr --address "$SOCK" -n k8s.io images ls -q | grep -v '^sha256' | tr '\n' ' ')"

k8s_start_control_plane
cm_port=$(k8s_free_port)
sched_port=$(k8s_free_port)
k8s_spawn kube-controller-manager kube-controller-manager --kubeconfig="$KUBECONFIG" \
	--bind-address=127.0.0.1 --secure-port="$cm_port" --leader-elect=false \
	--controllers='*,-nodeipam' \
	--service-account-private-key-file="$W/sa.key" --root-ca-file="$W/certs/apiserver.crt" \
	--authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG"
k8s_spawn kube-scheduler kube-scheduler --kubeconfig="$KUBECONFIG" --bind-address=127.0.0.1 \
	--secure-port="$sched_port" --leader-elect=false \
	--authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG"

mkdir -p "$W/kubelet" "$W/pod-logs"
cat >"$W/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SOCK
address: 127.0.0.1
port: $(k8s_free_port)
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(k8s_free_port)
failSwapOn: false
resolvConf: ""
clusterDNS: [$GW]
clusterDomain: cluster.local
podLogsDir: $W/pod-logs
volumePluginDir: $W/kubelet/volume-plugins
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {}
authorization: {mode: AlwaysAllow}
podCIDR: $NET.0/24
evictionHard: {}
serializeImagePulls: true
EOF
k8s_spawn kubelet kubelet --config="$W/kubelet.yaml" --kubeconfig="$KUBECONFIG" --root-dir="$W/kubelet" \
	--cert-dir="$W/kubelet/pki" --hostname-override=factstr-e2e-node --node-ip="$GW"
cat >"$W/Corefile" <<EOF
cluster.local:53 {
    bind $GW
    errors
    kubernetes cluster.local {
        kubeconfig $KUBECONFIG factstr
        ttl 5
    }
}
EOF
k8s_spawn coredns coredns -conf "$W/Corefile"
for _ in $(seq 1 180); do
	kubectl wait node/factstr-e2e-node --for=condition=Ready --timeout=1s >/dev/null 2>&1 && break
	k8s_alive kubelet || die "kubelet exited"
	sleep 1
done
kubectl wait node/factstr-e2e-node --for=condition=Ready --timeout=1s >/dev/null 2>&1 ||
	{ kubectl get nodes -o wide >&2; die "node not Ready after 180s"; }
k8s_alive coredns || die "coredns exited"
log "node factstr-e2e-node Ready (kubelet $(kubelet --version | awk '{print $2}'), CoreDNS on $GW:53)"

# ---------------------------------------------------------------- deploy
PHASE=deploy
kubectl create namespace "$NS" >/dev/null
for i in 0 1 2; do
	mkdir -p "$W/pv/$i"
	chown 65532:65532 "$W/pv/$i"
	chmod 700 "$W/pv/$i"
	cat <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: factstr-e2e-pv-$i}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $W/pv/$i, type: Directory}
---
EOF
done | kubectl apply -f - >/dev/null
# The Secret the base needs (docs/kubernetes.md): a cluster key and an admin
# token. The clients below get the key's CA certificate and the token, never
# the key.
cluster_key=$("$W/factstr-node" keygen)
admin_token=$(head -c 24 /dev/urandom | base64 | tr -d '\n')
kubectl -n "$NS" create secret generic factstr-secrets \
	--from-literal=cluster-key="$cluster_key" --from-literal=admin-token="$admin_token" >/dev/null
"$W/factstr-node" ca-cert --cluster-key "$cluster_key" >"$W/ca.pem"
unset cluster_key
export FACTSTR_TLS_CA="$W/ca.pem" FACTSTR_TOKEN="$admin_token"
mkdir -p "$W/kustomize/e2e"
cp -r "$K8S_DIR/base" "$K8S_DIR/overlays" "$W/kustomize/"
cat >"$W/kustomize/e2e/kustomization.yaml" <<EOF
# deploy/k8s/overlays/single-node, in namespace $NS, with the imported image.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $NS
resources: [../overlays/single-node]
images:
  - {name: factstr-node, newName: factstr-node, newTag: e2e}
patches:
  - patch: |
      apiVersion: apps/v1
      kind: StatefulSet
      metadata: {name: factstr}
      spec:
        template:
          spec:
            containers:
              - {name: factstr, imagePullPolicy: Never}
EOF
t=$(date +%s)
kubectl apply -k "$W/kustomize/e2e" >"$W/apply.out"
sed 's/^/    /' "$W/apply.out" >&2
kubectl -n "$NS" rollout status statefulset/factstr --timeout=300s >/dev/null ||
	die "the StatefulSet did not become ready"
log "3 pods Ready $(( $(date +%s) - t ))s after apply:"
kubectl -n "$NS" get pods -o wide | sed 's/^/    /' >&2

node=$W/factstr-node
pod_ip() { kubectl -n "$NS" get pod "$1" -o jsonpath='{.status.podIP}'; }
pod_targets() {
	local i t=""
	for i in 0 1 2; do t+="$(pod_ip "factstr-$i"):7400,"; done
	echo "${t%,}"
}

# wait_cluster: every pod reports the same leader and three healthy voters
# whose Raft addresses are the pods' DNS names; prints the leader.
wait_cluster() {
	for _ in $(seq 1 120); do
		"$W/e2eclient" cluster --targets "$(pod_targets)" --voters 3 \
			--raft-suffix ".factstr-headless.$NS.svc.cluster.local:7401" 2>"$W/cluster.err" && return 0
		sleep 1
	done
	cat "$W/cluster.err" >&2
	return 1
}
leader=$(wait_cluster) || die "the pods did not form one Raft cluster with three healthy voters"
log "one Raft cluster, leader $leader; members (as factstr-0 sees them):"
"$node" admin status --addr "$(pod_ip factstr-0):7400" | sed 's/^/    /' >&2

# ---------------------------------------------------------------- append
PHASE=append
eps=$(kubectl -n "$NS" get endpointslices -l kubernetes.io/service-name=factstr \
	-o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{":7400,"}{end}')
eps=${eps%,}
[ "$(tr ',' '\n' <<<"$eps" | grep -c .)" = 3 ] || die "the client Service has not 3 ready endpoints: $eps"
log "appending 200 events through the client Service's endpoints ($eps)"
"$W/e2eclient" load --targets "$eps" --acked "$W/acked" --count 200 --writers 1 --tag service 2>&1 | tail -1 | sed 's/^/    /' >&2

dns_targets=""
for i in 0 1 2; do dns_targets+="dns://$GW:53/factstr-$i.factstr-headless.$NS.svc.cluster.local:7400,"; done
dns_targets=${dns_targets%,}
log "continuous load through the pods' DNS names (CoreDNS) from here on"
k8s_spawn load "$W/e2eclient" load --targets "$dns_targets" --acked "$W/acked" --writers 4 --tag churn
sleep 10
k8s_alive load || die "the load generator exited"

# ---------------------------------------------------------------- leader pod
PHASE=delete-leader
old_ip=$(pod_ip "$leader")
old_uid=$(kubectl -n "$NS" get pod "$leader" -o jsonpath='{.metadata.uid}')
t=$(date +%s)
log "deleting the leader pod $leader ($old_ip)"
kubectl -n "$NS" delete pod "$leader" --wait=true --timeout=120s >/dev/null
log "  deleted after $(( $(date +%s) - t ))s (graceful: leadership handed over on SIGTERM)"
for _ in $(seq 1 180); do
	uid=$(kubectl -n "$NS" get pod "$leader" -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
	[ -n "$uid" ] && [ "$uid" != "$old_uid" ] &&
		kubectl -n "$NS" wait pod "$leader" --for=condition=Ready --timeout=1s >/dev/null 2>&1 && break
	sleep 1
done
new_ip=$(pod_ip "$leader")
kubectl -n "$NS" wait pod "$leader" --for=condition=Ready --timeout=5s >/dev/null 2>&1 || die "$leader was not recreated and Ready"
leader2=$(wait_cluster) || die "$leader did not rejoin"
log "  $leader recreated with IP $new_ip (was $old_ip) and Ready $(( $(date +%s) - t ))s after the delete; rejoined under its DNS name; leader now $leader2"
[ "$new_ip" != "$old_ip" ] || log "  note: the new pod got the same IP (host-local IPAM may reuse it)"
k8s_alive load || die "the load generator exited"

# ---------------------------------------------------------------- rollout
PHASE=rollout-restart
t=$(date +%s)
log "kubectl rollout restart statefulset/factstr (under load)"
kubectl -n "$NS" rollout restart statefulset/factstr >/dev/null
kubectl -n "$NS" rollout status statefulset/factstr --timeout=600s >/dev/null || die "rollout did not finish"
leader3=$(wait_cluster) || die "the cluster did not settle after the rollout"
log "  rollout finished in $(( $(date +%s) - t ))s; leader $leader3; pods:"
kubectl -n "$NS" get pods -o wide | sed 's/^/    /' >&2
sleep 5
k8s_alive load || die "the load generator exited"
stop_named load
tail -1 "$W/load.log" | sed 's/^/    /' >&2

# ---------------------------------------------------------------- verify
PHASE=verify
if ! "$W/e2eclient" verify --targets "$(pod_targets)" --acked "$W/acked" >"$W/verify.out" 2>&1; then
	sed 's/^/    /' "$W/verify.out" >&2
	die "acknowledged appends are missing"
fi
sed 's/^/    /' "$W/verify.out" >&2
failed=$(grep -o '[0-9]* failed calls' "$W/load.log" | tail -1 | awk '{print $1}')
log "summary: $(wc -l <"$W/acked") acknowledged appends (200 through the Service endpoints, the rest under load), all on all 3 nodes; $failed load calls failed after the client's retries (unacknowledged)"
PHASE=done
