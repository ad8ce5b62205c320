# shellcheck shell=bash
# lib.sh: shared by dryrun.sh and e2e.sh. A throwaway Kubernetes control
# plane (etcd + kube-apiserver, built from the Go module proxy by
# tools/build.sh) on 127.0.0.1, and helpers. Source it; it defines functions
# only. Everything it starts is recorded in $K8S_WORK/pids and stopped by
# PID in k8s_stop_control_plane.

K8S_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_REPO=$(cd "$K8S_DIR/../.." && pwd)

log() { printf '[%s %4ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - ${K8S_T0:-$(date +%s)} ))" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# k8s_build BINARY...: build (or take from the cache) and put them on PATH.
k8s_build() {
	local dir
	dir=$("$K8S_DIR/tools/build.sh" "$@") || die "building $* failed"
	K8S_BIN="$dir/bin"
	export PATH="$K8S_BIN:$PATH"
	log "binaries from $K8S_BIN: $*"
}

# k8s_free_port: a TCP port nothing listens on, from a range tools rarely use.
k8s_free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$(( 20000 + RANDOM % 20000 ))
		if [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && ! grep -qx "$p" "$K8S_WORK/ports" 2>/dev/null; then
			echo "$p" >>"$K8S_WORK/ports"
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# k8s_spawn NAME CMD...: start a background process, log to $K8S_WORK/NAME.log.
k8s_spawn() {
	local name=$1
	shift
	"$@" >"$K8S_WORK/$name.log" 2>&1 &
	echo "$! $name" >>"$K8S_WORK/pids"
}

# k8s_start_control_plane: etcd and kube-apiserver on 127.0.0.1, an admin
# kubeconfig in $KUBECONFIG. Needs $K8S_WORK (a fresh directory).
k8s_start_control_plane() {
	local etcd_port etcd_peer api_port
	etcd_port=$(k8s_free_port)
	etcd_peer=$(k8s_free_port)
	api_port=$(k8s_free_port)
	mkdir -p "$K8S_WORK/certs"
	k8s_spawn etcd etcd --name factstr-k8s --data-dir "$K8S_WORK/etcd-data" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
		--initial-cluster "factstr-k8s=http://127.0.0.1:$etcd_peer" --listen-metrics-urls '' \
		--unsafe-no-fsync --log-level warn

	openssl genrsa -out "$K8S_WORK/sa.key" 2048 2>/dev/null
	openssl rsa -in "$K8S_WORK/sa.key" -pubout -out "$K8S_WORK/sa.pub" 2>/dev/null
	K8S_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	echo "$K8S_TOKEN,admin,admin-uid,system:masters" >"$K8S_WORK/tokens.csv"
	# --endpoint-reconciler-type=none: the default reconciler refuses a
	# loopback advertise address.
	k8s_spawn kube-apiserver kube-apiserver --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
		--endpoint-reconciler-type=none --secure-port="$api_port" --cert-dir="$K8S_WORK/certs" \
		--etcd-servers="http://127.0.0.1:$etcd_port" --service-cluster-ip-range=10.96.0.0/16 \
		--token-auth-file="$K8S_WORK/tokens.csv" --authorization-mode=RBAC \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$K8S_WORK/sa.pub" --service-account-signing-key-file="$K8S_WORK/sa.key" \
		--profiling=false ${K8S_APISERVER_EXTRA:-}

	export KUBECONFIG="$K8S_WORK/kubeconfig"
	local i
	for i in $(seq 1 120); do
		if [ -s "$K8S_WORK/certs/apiserver.crt" ] &&
			curl -sf --cacert "$K8S_WORK/certs/apiserver.crt" -H "Authorization: Bearer $K8S_TOKEN" \
				"https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1; then
			break
		fi
		k8s_alive etcd || { tail -20 "$K8S_WORK/etcd.log" >&2; die "etcd exited"; }
		k8s_alive kube-apiserver || { tail -30 "$K8S_WORK/kube-apiserver.log" >&2; die "kube-apiserver exited"; }
		sleep 0.5
	done
	[ "$i" -lt 120 ] || { tail -30 "$K8S_WORK/kube-apiserver.log" >&2; die "kube-apiserver not ready after 60s"; }
	kubectl config set-cluster factstr --server="https://127.0.0.1:$api_port" \
		--certificate-authority="$K8S_WORK/certs/apiserver.crt" --embed-certs=true >/dev/null
	kubectl config set-credentials admin --token="$K8S_TOKEN" >/dev/null
	kubectl config set-context factstr --cluster=factstr --user=admin >/dev/null
	kubectl config use-context factstr >/dev/null
	K8S_API_PORT=$api_port
	log "control plane up: etcd 127.0.0.1:$etcd_port, kube-apiserver https://127.0.0.1:$api_port ($(kubectl version -o json | grep -m1 gitVersion | tr -d ' ,"'))"
}

# k8s_alive NAME: the process started as NAME still runs.
k8s_alive() {
	local pid
	pid=$(awk -v n="$1" '$2==n {p=$1} END {print p}' "$K8S_WORK/pids" 2>/dev/null)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# k8s_stop_all: stop every process k8s_spawn started, newest first, by PID
# (SIGTERM, then SIGKILL after 15s).
k8s_stop_all() {
	[ -f "$K8S_WORK/pids" ] || return 0
	local pid name i
	tac "$K8S_WORK/pids" | while read -r pid name; do
		kill -0 "$pid" 2>/dev/null || continue
		kill "$pid" 2>/dev/null || true
		for i in $(seq 1 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name ($pid) ignored SIGTERM; killing it"
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	: >"$K8S_WORK/pids"
}
