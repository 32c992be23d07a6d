#!/usr/bin/env bash
# The local control plane ("sandbox") on 127.0.0.1: etcd, kube-apiserver (RBAC, audit log),
# kube-controller-manager, kube-scheduler, kwok with virtual nodes, MinIO with a bucket, and the
# process runner when its binary exists. No containers; binaries come from build.sh.
#
# usage: sandbox.sh up|down|status|env
#   up      start everything (no-op when already up; restarts dead components when etcd still
#           runs; starts from scratch otherwise) and print how to use it
#   down    stop every process it started and remove the data (logs/ is kept for post-mortems)
#   status  components, pids, apiserver readiness, nodes; exit 0 when all up, 3 otherwise
#   env     print the sourceable environment (KUBECONFIG, AWS_*, ...)
#
# Settings (environment): see e2e/cluster/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${REHEARSAL_SANDBOX_DIR:-$repo/.sandbox}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac

ETCD_PORT=${REHEARSAL_ETCD_PORT:-23790}
ETCD_PEER_PORT=${REHEARSAL_ETCD_PEER_PORT:-23800}
APISERVER_PORT=${REHEARSAL_APISERVER_PORT:-16443}
KCM_PORT=${REHEARSAL_KCM_PORT:-10257}
SCHEDULER_PORT=${REHEARSAL_SCHEDULER_PORT:-10259}
KWOK_PORT=${REHEARSAL_KWOK_PORT:-10247}
MINIO_PORT=${REHEARSAL_MINIO_PORT:-19000}
MINIO_CONSOLE_PORT=${REHEARSAL_MINIO_CONSOLE_PORT:-19001}
# The API server's audit webhook backend posts batches here; a driver serves it while it runs
# (--audit-webhook-listen), and nothing listens otherwise (the batches are then dropped).
AUDIT_WEBHOOK_PORT=${REHEARSAL_AUDIT_WEBHOOK_PORT:-18440}

NODES=${REHEARSAL_VIRTUAL_NODES:-10}
NODE_CPU=${REHEARSAL_NODE_CPU:-32}
NODE_MEMORY=${REHEARSAL_NODE_MEMORY:-256Gi}
NODE_PODS=${REHEARSAL_NODE_PODS:-110}
# kwok renews each node's Lease every quarter of its duration, as a kubelet does: 1,000 nodes at
# 40 s make 100 writes/s at idle. Past 100 nodes the Lease lasts 120 s (a renewal each 30 s) and
# the node controller's grace period follows it, so a 2-core machine stays mostly idle.
if [ "$NODES" -gt 100 ]; then LEASE_DEFAULT=120; else LEASE_DEFAULT=40; fi
NODE_LEASE_SECONDS=${REHEARSAL_NODE_LEASE_SECONDS:-$LEASE_DEFAULT}
BUCKET=${REHEARSAL_S3_BUCKET:-rehearsal}
S3_ACCESS_KEY=${REHEARSAL_S3_ACCESS_KEY:-rehearsal}
S3_SECRET_KEY=${REHEARSAL_S3_SECRET_KEY:-rehearsal-secret}
TIMEOUT=${REHEARSAL_SANDBOX_TIMEOUT:-90}           # seconds, per component
STOP_TIMEOUT=${REHEARSAL_SANDBOX_STOP_TIMEOUT:-10} # seconds between TERM and KILL
RUNNER_BIN=${REHEARSAL_RUNNER_BIN:-$repo/target/debug/rehearsal-runner}
SKIP_RUNNER=${REHEARSAL_SANDBOX_SKIP_RUNNER:-0}

# Loopback, so the runner can serve a Service's ClusterIP on this machine (it plays kube-proxy
# for its node); the API server calls webhook Services at their ClusterIP.
SERVICE_CIDR=${REHEARSAL_SERVICE_CIDR:-127.2.0.0/16}
POD_CIDR=10.244.0.0/16
API=https://127.0.0.1:$APISERVER_PORT

# Start order; down stops them all at once.
CORE=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok minio)

say() { printf 'sandbox: %s\n' "$*"; }
err() { printf 'sandbox: %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# private DIR...: create the folders (and parents) and make them 0700, also when they existed
# (a sandbox from before this rule, or a wider umask): the state holds keys, tokens and Secrets.
private() { mkdir -p "$@" && chmod 700 "$@"; }

pidfile() { echo "$dir/pids/$1.pid"; }
logfile() { echo "$dir/logs/$1.log"; }

runner_wanted() { [ "$SKIP_RUNNER" != 1 ] && [ -x "$RUNNER_BIN" ]; }
expected() { printf '%s\n' "${CORE[@]}"; if runner_wanted; then echo runner; fi; }

# pid_of NAME: prints the pid when NAME's pid file names a live process that still runs the
# binary we started (a reused pid does not count).
pid_of() {
  local f=$dir/pids/$1.pid pid exe want
  [ -f "$f" ] || return 1
  pid=$(<"$f") || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1   # gone, or a zombie
  want=$(<"$dir/pids/$1.exe") 2>/dev/null || return 1
  [ "${exe% (deleted)}" = "$want" ] || return 1
  echo "$pid"
}
alive() { pid_of "$1" >/dev/null; }

# descendants PID...: the given pids and every process below them.
descendants() {
  local -A kids=()
  local p pp
  while read -r p pp; do kids[$pp]+=" $p"; done < <(ps -e -o pid=,ppid=)
  local queue=("$@") out=()
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}; queue=("${queue[@]:1}")
    out+=("$p")
    # shellcheck disable=SC2206
    [ -n "${kids[$p]:-}" ] && queue+=(${kids[$p]})
  done
  printf '%s\n' "${out[@]}"
}

tok() { awk -F, -v u="$1" '$2 == u { print $1 }' "$dir/pki/tokens.csv"; }

# ---------------------------------------------------------------------------------------------
# stopping

# stop_tier NAME...: TERM the process groups (and descendants) of these components, KILL what is
# left after STOP_TIMEOUT seconds. Prints how many processes it signalled.
stop_tier() {
  local c pid pids=() groups=()
  for c in "$@"; do
    pid=$(pid_of "$c") && groups+=("$pid")
  done
  if [ ${#groups[@]} -eq 0 ]; then echo 0; return; fi
  mapfile -t pids < <(descendants "${groups[@]}")
  for pid in "${groups[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local end=$((SECONDS + STOP_TIMEOUT)) left
  while :; do
    left=0
    for pid in "${pids[@]}"; do
      if [ -e "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then left=1; break; fi
    done
    [ $left = 0 ] && break
    if [ $SECONDS -ge $end ]; then
      for pid in "${groups[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
      kill -KILL "${pids[@]}" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  echo "${#pids[@]}"
}

# stop_all: clients first, then the apiserver, then etcd (an apiserver whose etcd is gone hangs
# in its shutdown until killed). Prints how many processes it stopped.
stop_all() {
  local n=0 c others=()
  [ -d "$dir/pids" ] || { echo 0; return; }
  for f in "$dir"/pids/*.pid; do
    [ -e "$f" ] || continue
    c=$(basename "$f" .pid)
    case $c in kube-apiserver | etcd) ;; *) others+=("$c") ;; esac
  done
  n=$((n + $(stop_tier "${others[@]}")))
  n=$((n + $(stop_tier kube-apiserver)))
  n=$((n + $(stop_tier etcd)))
  echo "$n"
}

# wipe: remove the state, keeping logs/ (for post-mortems) and the lock file.
wipe() {
  [ -d "$dir" ] || return 0
  find "$dir" -mindepth 1 -maxdepth 1 ! -name logs ! -name .lock -exec rm -rf {} +
}

# fail COMPONENT MESSAGE: one line naming the component and its log, the log's tail, then stop
# everything and exit 1.
fail() {
  local c=$1 msg=$2 log
  log=$(logfile "$c")
  err "$c $msg (log: $log)"
  if [ -s "$log" ]; then tail -n 8 "$log" | sed 's/^/    /' >&2; fi
  stop_all >/dev/null
  exit 1
}

# ---------------------------------------------------------------------------------------------
# starting

# port_owner PORT: "pid N (name)" of the process listening on 127.0.0.1/any address, if any.
port_owner() {
  local line
  line=$(ss -Hltnp "sport = :$1" 2>/dev/null | head -1) || true
  [ -n "$line" ] || return 1
  if [[ $line =~ \(\"([^\"]+)\",pid=([0-9]+) ]]; then
    echo "pid ${BASH_REMATCH[2]} (${BASH_REMATCH[1]})"
  else
    echo "another process"
  fi
}

ports_of() {
  case $1 in
    etcd) echo "$ETCD_PORT:REHEARSAL_ETCD_PORT $ETCD_PEER_PORT:REHEARSAL_ETCD_PEER_PORT" ;;
    kube-apiserver) echo "$APISERVER_PORT:REHEARSAL_APISERVER_PORT" ;;
    kube-controller-manager) echo "$KCM_PORT:REHEARSAL_KCM_PORT" ;;
    kube-scheduler) echo "$SCHEDULER_PORT:REHEARSAL_SCHEDULER_PORT" ;;
    kwok) echo "$KWOK_PORT:REHEARSAL_KWOK_PORT" ;;
    minio) echo "$MINIO_PORT:REHEARSAL_MINIO_PORT $MINIO_CONSOLE_PORT:REHEARSAL_MINIO_CONSOLE_PORT" ;;
  esac
}

# check_ports COMPONENT...: every port of the components to start must be free.
check_ports() {
  local c pv port var owner
  for c in "$@"; do
    for pv in $(ports_of "$c"); do
      port=${pv%%:*}; var=${pv#*:}
      if owner=$(port_owner "$port"); then
        err "port $port for $c is in use by $owner; stop it or set $var to another port"
        exit 1
      fi
    done
  done
}

# launch NAME BINARY ARGS...: start it in its own session and process group, log and pid file.
launch() {
  local name=$1 bin=$2; shift 2
  local log; log=$(logfile "$name")
  # appended: after a crash, the restarted component's log still shows why it died
  printf '=== %s: %s\n' "$(date -u +%FT%TZ)" "$bin $*" >>"$log"
  readlink -f "$bin" >"$dir/pids/$name.exe"
  # 9>&-: the child must not inherit (and so keep holding) the lock of this script
  setsid "$bin" "$@" >>"$log" 2>&1 </dev/null 9>&- &
  local pid=$! want i
  echo "$pid" >"$(pidfile "$name")"
  # until it has exec'ed the binary, /proc/PID/exe still shows this shell or setsid
  want=$(<"$dir/pids/$name.exe")
  for ((i = 0; i < 100; i++)); do
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" != "$want" ] || return 0
    [ -e "/proc/$pid" ] || return 0
    sleep 0.05
  done
}

# wait_until COMPONENT WHAT SECONDS CMD...: poll CMD until it succeeds; fail when COMPONENT's
# process dies or the deadline passes.
wait_until() {
  local c=$1 what=$2 limit=$3; shift 3
  local end; end=$(($(date +%s) + limit))
  until "$@" >/dev/null 2>&1; do
    alive "$c" || fail "$c" "exited while starting"
    [ "$(date +%s)" -lt "$end" ] || fail "$c" "did not become $what within ${limit}s"
    sleep 0.2
  done
}

http_ok() { curl -sf --max-time 2 -o /dev/null "$@"; }
api_ready() { http_ok --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $(tok rehearsal-admin)" "$API/readyz"; }
k() { "$KUBECTL" --kubeconfig "$dir/kubeconfig" "$@"; }

resolve_bins() {
  local b
  b=$("$here/build.sh" k8s) || exit 1
  KUBE_BIN=$b; KUBECTL=$b/kubectl
  ETCD_BIN=$("$here/build.sh" etcd)/etcd || exit 1
  KWOK_BIN=$("$here/build.sh" kwok)/kwok || exit 1
  MINIO_BIN=$("$here/build.sh" minio)/minio || exit 1
}

gen_pki() {
  local p=$dir/pki days=3650
  private "$p"
  (
    umask 077 # keys and tokens are never readable by others, not even while being written
    cd "$p"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days $days -keyout ca.key -out ca.crt \
      -subj "/CN=rehearsal-sandbox-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    cat >apiserver.ext <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1
EOF
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days $days -sha256 \
      -extfile apiserver.ext -out apiserver.crt
    # the aggregation layer's client (kube-apiserver --proxy-client-*), trusted via requestheader
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout front-proxy-client.key -out front-proxy-client.csr \
      -subj "/CN=front-proxy-client"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in front-proxy-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days $days -sha256 \
      -extfile client.ext -out front-proxy-client.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    rm -f ./*.csr
    # Static tokens, one identity per component, so audit events say who did what.
    t() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }
    {
      echo "$(t),rehearsal-admin,uid-admin,\"system:masters\""
      echo "$(t),system:kube-controller-manager,uid-kube-controller-manager"
      echo "$(t),system:kube-scheduler,uid-kube-scheduler"
      echo "$(t),kwok-controller,uid-kwok-controller,\"system:masters\""
    } >tokens.csv
    chmod 600 ./*.key tokens.csv
    # (set -e does not apply inside a `||` list: check the result instead)
    openssl verify -CAfile ca.crt apiserver.crt && [ -s sa.pub ] && [ -s tokens.csv ]
  ) >"$dir/logs/pki.log" 2>&1 || fail pki "certificate generation failed"
  kubeconfig rehearsal-admin "$dir/kubeconfig"
  kubeconfig system:kube-controller-manager "$dir/kubeconfigs/kube-controller-manager.kubeconfig"
  kubeconfig system:kube-scheduler "$dir/kubeconfigs/kube-scheduler.kubeconfig"
  kubeconfig kwok-controller "$dir/kubeconfigs/kwok.kubeconfig"
}

# kubeconfig USER FILE: a kubeconfig with USER's static token, 0600.
kubeconfig() {
  private "$(dirname "$2")"
  (umask 077 && cat >"$2") <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rehearsal-sandbox
  cluster:
    server: $API
    certificate-authority: $dir/pki/ca.crt
users:
- name: $1
  user:
    token: $(tok "$1")
contexts:
- name: rehearsal-sandbox
  context:
    cluster: rehearsal-sandbox
    user: $1
current-context: rehearsal-sandbox
EOF
  chmod 600 "$2"
}

start_etcd() {
  launch etcd "$ETCD_BIN" --name=sandbox --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="sandbox=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --auto-compaction-mode=periodic --auto-compaction-retention=5m --log-level=warn
  wait_until etcd healthy "$TIMEOUT" http_ok "http://127.0.0.1:$ETCD_PORT/health"
}

start_kube_apiserver() {
  private "$dir/audit" # who did what, and the webhook backend's kubeconfig
  (umask 077 && cat >"$dir/audit/webhook.kubeconfig") <<EOF
apiVersion: v1
kind: Config
clusters:
- name: driver
  cluster: {server: "http://127.0.0.1:$AUDIT_WEBHOOK_PORT/audit"}
contexts:
- name: driver
  context: {cluster: driver, user: driver}
current-context: driver
users:
- name: driver
  user: {}
EOF
  launch kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
    --client-ca-file="$dir/pki/ca.crt" --token-auth-file="$dir/pki/tokens.csv" \
    --requestheader-client-ca-file="$dir/pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$dir/pki/front-proxy-client.crt" --proxy-client-key-file="$dir/pki/front-proxy-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/pki/sa.pub" --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=RBAC --allow-privileged=true \
    --audit-policy-file="$here/audit-policy.yaml" --audit-log-path="$dir/audit/audit.log" \
    --audit-log-format=json \
    --audit-webhook-config-file="$dir/audit/webhook.kubeconfig" --audit-webhook-batch-max-wait=1s \
    --audit-webhook-initial-backoff=1s
  wait_until kube-apiserver ready "$TIMEOUT" api_ready
}

start_kube_controller_manager() {
  local kc=$dir/kubeconfigs/kube-controller-manager.kubeconfig
  launch kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
    --use-service-account-credentials=true --service-account-private-key-file="$dir/pki/sa.key" \
    --root-ca-file="$dir/pki/ca.crt" \
    --cluster-signing-cert-file="$dir/pki/ca.crt" --cluster-signing-key-file="$dir/pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --kube-api-qps=100 --kube-api-burst=200 \
    --node-monitor-grace-period="$((NODE_LEASE_SECONDS + 10))s"
  wait_until kube-controller-manager healthy "$TIMEOUT" http_ok -k "https://127.0.0.1:$KCM_PORT/healthz"
  # its controllers work once the service-account controller created the default account
  wait_until kube-controller-manager "working (no default service account)" "$TIMEOUT" \
    k get serviceaccount default -n default
}

start_kube_scheduler() {
  local kc=$dir/kubeconfigs/kube-scheduler.kubeconfig
  launch kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false
  wait_until kube-scheduler ready "$TIMEOUT" http_ok -k "https://127.0.0.1:$SCHEDULER_PORT/readyz"
}

start_kwok() {
  private "$dir/kwok"
  # KWOK_WORKDIR keeps kwok from also loading ~/.kwok/kwok.yaml
  KWOK_WORKDIR=$dir/kwok launch kwok "$KWOK_BIN" \
    --kubeconfig="$dir/kubeconfigs/kwok.kubeconfig" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds="$NODE_LEASE_SECONDS" --config="$here/kwok-stages.yaml" \
    --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --server-address="127.0.0.1:$KWOK_PORT" \
    --cidr="$POD_CIDR"
  wait_until kwok ready "$TIMEOUT" http_ok "http://127.0.0.1:$KWOK_PORT/healthz"
}

s3() { curl -sS --max-time 5 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "$@"; }

start_minio() {
  private "$dir/minio"
  MINIO_ROOT_USER=$S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$S3_SECRET_KEY MINIO_UPDATE=off \
    MINIO_BROWSER_REDIRECT=off \
    launch minio "$MINIO_BIN" server "$dir/minio" \
    --address "127.0.0.1:$MINIO_PORT" --console-address "127.0.0.1:$MINIO_CONSOLE_PORT" --quiet
  wait_until minio ready "$TIMEOUT" http_ok "http://127.0.0.1:$MINIO_PORT/minio/health/ready"
}

# make_bucket: 0 when the bucket is there; 1 to try again (MinIO can answer 503
# XMinioServerNotInitialized for a while after its ready endpoint says 200, seen in CI); any other
# answer fails the sandbox.
make_bucket() {
  local code
  code=$(s3 -o "$dir/logs/bucket.out" -w '%{http_code}' -X PUT "http://127.0.0.1:$MINIO_PORT/$BUCKET" 2>&1) || true
  case $code in
    200 | 409) return 0 ;; # created, or exists already (BucketAlreadyOwnedByYou)
    503 | 000) return 1 ;;
    *) fail minio "could not create bucket '$BUCKET' (HTTP $code: $(tr -d '\n' <"$dir/logs/bucket.out" 2>/dev/null | head -c 200))" ;;
  esac
}

ensure_bucket() {
  # Not wait_until: its command's output is discarded, and a refusal must fail with its message.
  local end; end=$(($(date +%s) + TIMEOUT))
  until make_bucket; do
    alive minio || fail minio "exited while starting"
    [ "$(date +%s)" -lt "$end" ] ||
      fail minio "could not create bucket '$BUCKET' within ${TIMEOUT}s ($(tr -d '\n' <"$dir/logs/bucket.out" 2>/dev/null | head -c 200))"
    sleep 0.2
  done
}

# Instance types, zones and capacity types spread as in a real cluster: mostly general purpose,
# a third spot. Labels only: every node has the same capacity (NODE_CPU, ...), so tests can rely
# on it.
INSTANCE_TYPES=(m5.large m5.large m5.xlarge m5.xlarge m5.2xlarge c5.xlarge c5.2xlarge r5.large r5.xlarge m6i.4xlarge)

# nodes_yaml [FIRST [STEP]]: every STEP-th node from FIRST, as YAML documents.
nodes_yaml() {
  local i zones=(zone-a zone-b zone-c) capacity
  for ((i = ${1:-0}; i < NODES; i += ${2:-1})); do
    capacity=on-demand
    [ $((i % 3)) -eq 1 ] && capacity=spot
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    type: virtual
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node.kubernetes.io/instance-type: ${INSTANCE_TYPES[(i * 7) % ${#INSTANCE_TYPES[@]}]}
    topology.kubernetes.io/zone: ${zones[i % 3]}
    karpenter.sh/capacity-type: $capacity
spec:
  taints:
  - key: kwok-provider
    value: "true"
    effect: NoSchedule
# kept on create (not on later updates); kwok's node-initialize stage keeps it
status:
  capacity: {cpu: "$NODE_CPU", memory: "$NODE_MEMORY", pods: "$NODE_PODS"}
  allocatable: {cpu: "$NODE_CPU", memory: "$NODE_MEMORY", pods: "$NODE_PODS"}
EOF
  done
}

nodes_ready() {
  local n
  n=$(k get nodes -l type=virtual -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{.spec.taints[*].key}{"\n"}{end}' |
    awk '$1 == "True" && !/node.kubernetes.io\/not-ready/' | wc -l)
  [ "$n" -ge "$NODES" ]
}

create_nodes() {
  [ "$NODES" -gt 0 ] || return 0
  # kubectl applies one object after the other: four at once for a thousand nodes.
  local part parts=1 pids=()
  [ "$NODES" -gt 50 ] && parts=4
  for ((part = 0; part < parts; part++)); do
    nodes_yaml "$part" "$parts" | k apply --server-side --force-conflicts --field-manager=rehearsal-sandbox -f - \
      >"$dir/logs/nodes-$part.log" 2>&1 &
    pids+=($!)
  done
  for part in "${pids[@]}"; do
    wait "$part" || fail nodes "could not be created (see $dir/logs/nodes-*.log)"
  done
  # Ready (kwok) and the not-ready taint removed (node lifecycle controller): pods can schedule
  wait_until kwok "$NODES virtual nodes Ready" "$TIMEOUT" nodes_ready
}

runner_ready() {
  [ "$(k get node rehearsal-runner -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

start_runner() {
  private "$dir/runner" # pods' tokens, kubeconfigs and Secret volumes (the runner makes it 0700 too)
  launch runner "$RUNNER_BIN" --kubeconfig "$dir/kubeconfig" --node-name rehearsal-runner --shutdown-grace-seconds 5 \
    --state-dir "$dir/runner" --bin-dir "$(dirname "$RUNNER_BIN")"
  wait_until runner "Ready (node rehearsal-runner)" 60 runner_ready
}

# write_env: the sourceable environment, 0600 (it holds the S3 secret key).
write_env() {
  (umask 077 && cat >"$dir/env") <<EOF
# source this file: the local control plane and its S3 server (e2e/cluster/sandbox.sh)
export REHEARSAL_SANDBOX_DIR="$dir"
export KUBECONFIG="$dir/kubeconfig"
export PATH="$KUBE_BIN:\$PATH"
export AWS_ENDPOINT_URL="http://127.0.0.1:$MINIO_PORT"
export AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY"
export AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
export AWS_REGION="us-east-1"
export REHEARSAL_S3_BUCKET="$BUCKET"
export REHEARSAL_AUDIT_LOG="$dir/audit/audit.log"
export REHEARSAL_AUDIT_WEBHOOK_LISTEN="127.0.0.1:$AUDIT_WEBHOOK_PORT"
EOF
  chmod 600 "$dir/env"
}

usage_hint() {
  local rel=$dir
  case $dir in "$PWD"/*) rel=${dir#"$PWD"/} ;; esac
  say "use it with:  source $rel/env     (or: export KUBECONFIG=$dir/kubeconfig)"
  say "kubectl:      $KUBECTL   apiserver: $API   S3: http://127.0.0.1:$MINIO_PORT bucket '$BUCKET'"
}

all_up() {
  local c
  for c in $(expected); do alive "$c" || return 1; done
  [ -f "$dir/pki/tokens.csv" ] && api_ready
}

cmd_up() {
  local t0 c todo=()
  t0=$(now)
  resolve_bins
  # From here on every file the sandbox or its components create (keys, tokens, kubeconfigs, the
  # env file, etcd's and MinIO's data, the audit log, logs, the runner's pod folders) is private
  # to this user; the binaries built above keep the usual modes.
  umask 077
  if all_up; then
    say "already up (nothing to do)"
    write_env
    usage_hint
    return 0
  fi

  if alive etcd && [ -f "$dir/pki/tokens.csv" ] && [ -f "$dir/kubeconfig" ]; then
    # etcd still holds the cluster state: keep what runs, restart what died
    for c in $(expected); do alive "$c" || todo+=("$c"); done
    check_ports "${todo[@]}"
    say "recovering: restarting ${todo[*]} (etcd and its data kept)"
  else
    local n
    n=$(stop_all)
    mapfile -t todo < <(expected)
    check_ports "${todo[@]}"
    if [ -n "$(find "$dir" -mindepth 1 -maxdepth 1 ! -name logs ! -name .lock 2>/dev/null)" ]; then
      say "cleaning up an earlier run (stopped $n leftover processes)"
    fi
    wipe
    rm -rf "$dir/logs"
  fi
  private "$dir" "$dir/pids" "$dir/logs" "$dir/kubeconfigs"
  trap 'err "interrupted: stopping what was started"; stop_all >/dev/null; exit 130' INT TERM

  [ -f "$dir/pki/tokens.csv" ] || gen_pki
  local t
  for c in "${CORE[@]}"; do
    t=$(now)
    if [[ " ${todo[*]} " == *" $c "* ]]; then
      "start_${c//-/_}"
      say "$(printf '%-24s up  (pid %s, %.1f s)' "$c" "$(pid_of "$c")" "$(elapsed "$t")")"
    else
      # kept from before: it must still answer
      case $c in kube-apiserver) wait_until "$c" ready "$TIMEOUT" api_ready ;; esac
    fi
  done
  ensure_bucket
  t=$(now)
  create_nodes
  say "$(printf '%-24s %s Ready (%.1f s)' "virtual nodes" "$NODES" "$(elapsed "$t")")"
  if runner_wanted; then
    if [[ " ${todo[*]} " == *" runner "* ]]; then
      t=$(now)
      start_runner
      say "$(printf '%-24s up  (pid %s, %.1f s)' runner "$(pid_of runner)" "$(elapsed "$t")")"
    fi
  elif [ "$SKIP_RUNNER" = 1 ]; then
    say "runner skipped (REHEARSAL_SANDBOX_SKIP_RUNNER=1)"
  else
    say "runner not started: no binary at $RUNNER_BIN (cargo build -p rehearsal-runner)"
  fi
  trap - INT TERM
  write_env
  say "$(printf 'up in %.1f s' "$(elapsed "$t0")")"
  usage_hint
}

cmd_down() {
  local n
  n=$(stop_all)
  wipe
  if [ "$n" -gt 0 ]; then say "down (stopped $n processes, data removed; logs kept in $dir/logs)"
  else say "down (nothing was running)"; fi
}

cmd_status() {
  local c pid ok=0 kubectl=""
  for c in "${CORE[@]}" runner; do
    if pid=$(pid_of "$c"); then
      printf '%-24s running  pid %s\n' "$c" "$pid"
    elif [ "$c" = runner ] && [ "$SKIP_RUNNER" = 1 ]; then
      printf '%-24s -        (skipped: REHEARSAL_SANDBOX_SKIP_RUNNER=1)\n' "$c"
    elif [ "$c" = runner ] && ! runner_wanted; then
      printf '%-24s -        (not started: no binary at %s)\n' "$c" "$RUNNER_BIN"
    else
      printf '%-24s stopped\n' "$c"; ok=3
    fi
  done
  if [ -f "$dir/pki/tokens.csv" ] && api_ready; then
    echo "kube-apiserver: ready at $API"
    # shellcheck disable=SC2016 # a literal $PATH in the env file
    kubectl=$(sed -n 's/^export PATH="\(.*\):\$PATH"$/\1/p' "$dir/env" 2>/dev/null)/kubectl
    if [ -x "$kubectl" ]; then "$kubectl" --kubeconfig "$dir/kubeconfig" get nodes -o wide 2>&1 || true; fi
  else
    echo "kube-apiserver: not ready"; ok=3
  fi
  return $ok
}

cmd_env() {
  if [ -f "$dir/env" ]; then cat "$dir/env"
  else err "not up: no $dir/env (run: $0 up)"; return 3; fi
}

main() {
  local cmd=${1:-}
  case $cmd in
    up | down)
      private "$dir"
      exec 9>"$dir/.lock"
      flock -w 600 9 || { err "another sandbox.sh $cmd holds $dir/.lock"; exit 1; }
      "cmd_$cmd" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
  esac
}

main "$@"
