#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, built from Go modules (see build.sh):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, which
# simulates the nodes and the pod lifecycle. No container runtime is involved: pod and
# service IPs exist only as strings and nothing may ever connect to them.
#
# Usage: cluster.sh up|down|status|env|restart kube-apiserver|etcd
# Env:   HERALD_CACHE        build cache root (default ~/.cache/herald)
#        HERALD_CLUSTER_DIR  state: certificates, kubeconfigs, data, logs, pids
#                            (default $HERALD_CACHE/cluster)
#        HERALD_PORT_BASE    first of the six loopback ports used (default 26400)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${HERALD_CACHE:-$HOME/.cache/herald}
state=${HERALD_CLUSTER_DIR:-$cache/cluster}
base=${HERALD_PORT_BASE:-26400}
etcd_port=$base
etcd_peer_port=$((base + 1))
api_port=$((base + 2))
kcm_port=$((base + 3))
sched_port=$((base + 4))
kwok_port=$((base + 5))
api_url=https://127.0.0.1:$api_port

# Components in start order; `down` stops them in reverse.
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { echo "[cluster] $*" >&2; }
die() { log "error: $*"; exit 1; }

for d in $("$here/build.sh" bin-dirs); do PATH=$d:$PATH; done
export PATH

pid_of() { cat "$state/pids/$1.pid" 2>/dev/null || true; }
alive() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${secs}s waiting for $what; last log lines:"
      tail -n 20 "$state/logs/"*.log >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

api_ready() {
  curl -fsS --max-time 2 --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" \
    --key "$state/pki/admin.key" "$api_url/readyz"
}

# ---------------------------------------------------------------------------- pki

# cert NAME SUBJECT EXTENSIONS: a key and a certificate signed by the local CA.
cert() {
  local name=$1 subj=$2 ext=$3 pki=$state/pki
  [ -f "$pki/$name.crt" ] && return
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
}

make_pki() {
  local pki=$state/pki
  mkdir -p "$pki"
  [ -f "$pki/ca.crt" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" \
    -days 365 -subj "/CN=herald-local-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  # rustls refuses a serving certificate that is itself a CA, and needs the IP SAN.
  cert apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")"
  local client="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  cert admin "/O=system:masters/CN=herald-admin" "$client"
  # Own identities, so that the audit log tells the components apart from the tests.
  cert kube-controller-manager "/CN=system:kube-controller-manager" "$client"
  cert kube-scheduler "/CN=system:kube-scheduler" "$client"
  cert kwok "/O=system:masters/CN=kwok-controller" "$client"
  # The operator under test gets its own user, so that the audit log can count its
  # requests apart from the tests' own (the chart's RBAC replaces system:masters later).
  cert herald-operator "/O=system:masters/CN=herald-operator" "$client"
  if [ ! -f "$pki/sa.pub" ]; then
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
}

# Every certificate and kubeconfig; each is made only if missing, so that `up` on a
# running cluster adds what a newer version of this script expects.
credentials() {
  make_pki
  local c
  for c in admin kube-controller-manager kube-scheduler kwok herald-operator; do
    [ -f "$state/$c.kubeconfig" ] || kubeconfig "$c"
  done
}

# kubeconfig NAME: a kubeconfig for the certificate NAME, with embedded credentials.
kubeconfig() {
  local name=$1 file=$state/$1.kubeconfig pki=$state/pki
  KUBECONFIG=$file kubectl config set-cluster herald-local --server="$api_url" \
    --certificate-authority="$pki/ca.crt" --embed-certs=true >/dev/null
  KUBECONFIG=$file kubectl config set-credentials "$name" \
    --client-certificate="$pki/$name.crt" --client-key="$pki/$name.key" --embed-certs=true >/dev/null
  KUBECONFIG=$file kubectl config set-context herald-local --cluster=herald-local --user="$name" >/dev/null
  KUBECONFIG=$file kubectl config use-context herald-local >/dev/null
}

# --------------------------------------------------------------------- processes

# start NAME ARGS...: starts a component in its own session, records its pid.
start() {
  local name=$1
  shift
  if alive "$name"; then return; fi
  setsid "$@" >>"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/pids/$name.pid"
}

start_etcd() {
  start etcd etcd --name herald --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "herald=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_for "etcd" 60 curl -fsS --max-time 2 "http://127.0.0.1:$etcd_port/health"
}

start_apiserver() {
  local pki=$state/pki
  start kube-apiserver kube-apiserver \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --endpoint-reconciler-type none \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC \
    --allow-privileged=true \
    --audit-policy-file "$here/audit-policy.yaml" \
    --audit-log-path "$state/logs/audit.log" --audit-log-maxsize 200 --audit-log-maxbackup 1 \
    --profiling=false
  # --allow-privileged lets PodSecurity admission be the one that refuses privileged
  # pods, as on a real cluster.
  wait_for "kube-apiserver /readyz" 120 api_ready
}

start_controller_manager() {
  local pki=$state/pki
  start kube-controller-manager kube-controller-manager \
    --kubeconfig "$state/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$state/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key"
}

start_scheduler() {
  start kube-scheduler kube-scheduler \
    --kubeconfig "$state/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$state/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false
}

# kwok refuses to start without stages; use the ones its module ships for node
# heartbeat (with lease), pod ready, pod complete and pod delete.
kwok_config() {
  local stages=$cache/kwok-$KWOK_VERSION/stage out=$state/kwok.yaml
  : >"$out"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -f "$stages/$f" ] || die "kwok stage $f not found in $stages"
    { echo "---"; cat "$stages/$f"; } >>"$out"
  done
  echo "$out"
}

start_kwok() {
  start kwok kwok --kubeconfig "$state/kwok.kubeconfig" \
    --config "$(kwok_config)" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 127.0.0.1 --node-lease-duration-seconds 40 \
    --server-address "127.0.0.1:$kwok_port"
}

# Fake nodes: two EU regions with two zones each, two adequacy regions (UK, CH) and
# two regions outside the EEA. No taint, so that ordinary Deployments schedule.
nodes=(
  eu-central-1:eu-central-1a eu-central-1:eu-central-1b
  eu-west-1:eu-west-1a eu-west-1:eu-west-1b
  eu-west-2:eu-west-2a eu-central-2:eu-central-2a
  us-east-1:us-east-1a ap-southeast-1:ap-southeast-1a
)

create_nodes() {
  local n region zone
  for n in "${nodes[@]}"; do
    region=${n%%:*} zone=${n#*:}
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-$zone
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-$zone
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/region: $region
    topology.kubernetes.io/zone: $zone
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "2000"}
  capacity: {cpu: "64", memory: 512Gi, pods: "2000"}
EOF
  done | kubectl --kubeconfig "$state/admin.kubeconfig" apply -f - >/dev/null
  kubectl --kubeconfig "$state/admin.kubeconfig" wait --for=condition=Ready node \
    -l type=kwok --timeout=120s >/dev/null
}

# ------------------------------------------------------------------------ verbs

running() {
  local c
  for c in "${components[@]}"; do alive "$c" || return 1; done
  api_ready >/dev/null 2>&1
}

cmd_up() {
  local t0=$SECONDS
  "$here/build.sh" all
  if running; then
    credentials
    log "already running ($api_url)"
    return
  fi
  # Something is half up (a crash, a reboot): start from a clean state.
  [ -d "$state" ] && cmd_down
  mkdir -p "$state/pids" "$state/logs"
  credentials
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  start_kwok
  create_nodes
  log "up in $((SECONDS - t0))s: $api_url"
  log "use it with: eval \"\$($0 env)\""
}

cmd_down() {
  local i c pid
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    c=${components[i]}
    pid=$(pid_of "$c")
    [ -n "$pid" ] || continue
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$state"
  log "down"
}

# restart COMPONENT: stops one component (SIGTERM, then SIGKILL after 10 s) and starts it
# again with the same command line, as a node reboot or a control-plane upgrade would.
# For outage tests: kube-apiserver or etcd (the others recover by themselves).
cmd_restart() {
  local c=${1:-} pid
  case "$c" in
    kube-apiserver) ;;
    etcd) ;;
    *) die "restart what? kube-apiserver or etcd" ;;
  esac
  running || die "the cluster is not up"
  pid=$(pid_of "$c")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$state/pids/$c.pid"
  case "$c" in
    kube-apiserver) start_apiserver ;;
    etcd) start_etcd; wait_for "kube-apiserver /readyz" 120 api_ready ;;
  esac
  log "$c restarted"
}

cmd_status() {
  local c ok=0
  for c in "${components[@]}"; do
    if alive "$c"; then echo "$c: running (pid $(pid_of "$c"))"; else echo "$c: stopped"; ok=1; fi
  done
  if api_ready >/dev/null 2>&1; then echo "kube-apiserver /readyz: ok ($api_url)"; else
    echo "kube-apiserver /readyz: not ready"; ok=1
  fi
  [ $ok -eq 0 ] && kubectl --kubeconfig "$state/admin.kubeconfig" get nodes -L topology.kubernetes.io/region,topology.kubernetes.io/zone
  return $ok
}

cmd_env() {
  echo "export KUBECONFIG=$state/admin.kubeconfig"
  echo "export HERALD_OPERATOR_KUBECONFIG=$state/herald-operator.kubeconfig"
  echo "export HERALD_AUDIT_LOG=$state/logs/audit.log"
  echo "export PATH=$(tr '\n' ':' < <("$here/build.sh" bin-dirs))\$PATH"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart) shift; cmd_restart "$@" ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|status|env|restart kube-apiserver|etcd" >&2; exit 2 ;;
esac
