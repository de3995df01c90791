#!/usr/bin/env bash
# End-to-end test of imagedrift against a real cluster: whatever cluster the
# kubeconfig names, and a plain-HTTP registry its nodes pull from. imagedrift
# runs out of cluster, as two `run --leader-elect` replicas of this checkout.
# Not part of CI (CI has no cluster); tests/e2e/kind.sh is one user of it.
#
#   tests/e2e/cluster.sh --registry HOST:PORT [--push-registry HOST:PORT]
#                        [--kubeconfig FILE] [--volume-gate on|off|auto]
#
#   --registry       the registry as the nodes name it in images (e.g.
#                    127.0.0.1:5555, or kind-registry:5000 for kind)
#   --push-registry  where this machine reaches the same registry (pushes,
#                    and imagedrift's lookups); default: --registry
#   --kubeconfig     default: $KUBECONFIG, else ~/.kube/config
#   --volume-gate    whether the kubelet reports image volume digests
#                    (feature gate ImageVolumeWithDigest): `on` and `off`
#                    are asserted, `auto` (default) detects it
#
# Environment: IMAGEDRIFT (binary; default: `cargo build` of this checkout),
# INTERVAL (default 15s), TIMEOUT (seconds per wait, default 150),
# METRICS_PORT (first of two local ports, default 18181), KEEP=1 (keep the
# namespace and the logs), WORK (logs and config; default a temp dir).
#
# What it checks, each as one `ok`/`not ok` line, then `N passed, M failed`:
#   1. a re-pushed tag is reported (StaleImage on Pod and Deployment) within
#      one interval, under IfNotPresent and under Always;
#   2. refresh+restart under IfNotPresent and restart under Always leave the
#      pods on the new digest, each workload gets one ImageUpToDate naming
#      the remedies, and imagedrift_remedies_total counts them `verified`
#      (none `failed`);
#   3. image volumes: with the gate on, a re-pushed volume image is reported
#      stale (kind="image_volume") and refresh+restart fixes it; with the gate
#      off, the volume is Unknown (volume_digest_not_reported), never stale,
#      and DriftCheckFailed says why; then (where the API server keeps
#      volumeStatus) a pod on a fake node whose status is written as a kubelet
#      with the gate would: stale after a re-push, ImageUpToDate after;
#   4. kill -9 of the leader while only the follower saw a drift: the new
#      leader announces it (once), duplicates nothing the old leader wrote,
#      and exports imagedrift_leader 1;
#   5. SIGTERM to the leader: it releases the Lease and the follower takes it
#      within a retry period, not at expiry;
#   6. SIGSTOP of the leader past its lease while a tag moves: the other
#      replica announces it, and the resumed one writes nothing.
# Exit 0 when every check passed, 1 otherwise, 2 on a usage error.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REGISTRY="" PUSH_REGISTRY="" GATE=auto
while (($#)); do
    case $1 in
    --registry) REGISTRY=$2; shift 2 ;;
    --push-registry) PUSH_REGISTRY=$2; shift 2 ;;
    --kubeconfig) export KUBECONFIG=$2; shift 2 ;;
    --volume-gate) GATE=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -n $REGISTRY ]] || { echo "cluster.sh: --registry HOST:PORT is required" >&2; exit 2; }
[[ $GATE =~ ^(on|off|auto)$ ]] || { echo "cluster.sh: --volume-gate must be on, off or auto" >&2; exit 2; }
PUSH_REGISTRY=${PUSH_REGISTRY:-$REGISTRY}
INTERVAL=${INTERVAL:-15s}
TIMEOUT=${TIMEOUT:-150}
PORT_A=${METRICS_PORT:-18181}
PORT_B=$((PORT_A + 1))
PUSH="python3 $ROOT/tests/e2e/push_image.py $PUSH_REGISTRY"
for tool in kubectl curl python3; do
    command -v "$tool" >/dev/null || { echo "cluster.sh: $tool is required on PATH" >&2; exit 2; }
done
secs() { # 15s, 2m, 90 -> seconds
    case $1 in *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;; esac
}
INTERVAL_S=$(secs "$INTERVAL")
LEASE_S=10
TAG_TTL_S=5

RUN=$(date +%s)
NS=imagedrift-e2e-$RUN
REPO=e2e-$RUN # fresh repositories: nodes keep their image cache across runs
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
PASSED=0 FAILED=0
declare -A PIDS=()

log() { printf '\n== %s\n' "$*"; }
ok() { PASSED=$((PASSED + 1)); printf 'ok - %s\n' "$*"; }
not_ok() { FAILED=$((FAILED + 1)); printf 'not ok - %s\n' "$*"; }
# check DESCRIPTION COMMAND...: one result line.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# wait_for SECONDS DESCRIPTION COMMAND...: polls every 2 s, bounded; one
# result line with the time it took.
wait_for() {
    local limit=$1 what=$2 start=$SECONDS
    shift 2
    until "$@"; do
        if ((SECONDS - start >= limit)); then
            not_ok "$what (not within ${limit}s)"
            return 1
        fi
        sleep 2
    done
    ok "$what (after $((SECONDS - start))s)"
}
# poll SECONDS COMMAND...: like wait_for, silent.
poll() {
    local limit=$1 start=$SECONDS
    shift
    until "$@"; do
        ((SECONDS - start < limit)) || return 1
        sleep 2
    done
}

cleanup() {
    local name
    for name in "${!PIDS[@]}"; do
        kill "${PIDS[$name]}" 2>/dev/null || true
    done
    for name in "${!PIDS[@]}"; do
        wait "${PIDS[$name]}" 2>/dev/null || true
    done
    if ((FAILED > 0)) || [[ ${KEEP:-0} == 1 ]]; then
        echo "logs and config kept in $WORK"
        kubectl -n "$NS" get pods -o wide >"$WORK/pods.txt" 2>&1 || true
        kubectl -n "$NS" get events --sort-by=.lastTimestamp >"$WORK/events.txt" 2>&1 || true
    fi
    if [[ ${KEEP:-0} != 1 ]]; then
        kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# --- imagedrift --------------------------------------------------------------
if [[ -z ${IMAGEDRIFT:-} ]]; then
    log "building imagedrift (cargo build)"
    (cd "$ROOT" && cargo build -q --bin imagedrift) || { echo "cargo build failed" >&2; exit 2; }
    IMAGEDRIFT=${CARGO_TARGET_DIR:-$ROOT/target}/debug/imagedrift
fi
[[ -x $IMAGEDRIFT ]] || { echo "cluster.sh: $IMAGEDRIFT is not executable" >&2; exit 2; }

# The registry as the nodes name it, reached where this machine reaches it.
if [[ $PUSH_REGISTRY != "$REGISTRY" ]]; then
    HOSTS="    \"$REGISTRY\": {endpoint: \"http://$PUSH_REGISTRY\"}"
else
    HOSTS="    \"$REGISTRY\": {insecureHttp: true}"
    [[ $REGISTRY == 127.* || $REGISTRY == localhost:* ]] && HOSTS="    {}"
fi
cat >"$WORK/imagedrift.yaml" <<EOF
interval: $INTERVAL
jitter: 0.1
driftCheckFailedAfter: 30s
leaderElection:
  leaseDuration: ${LEASE_S}s
registries:
  defaults:
    tagTtl: ${TAG_TTL_S}s
    failureTtl: 5s
  hosts:
$HOSTS
remedies:
  cooldown: 1m
  verifyTimeout: 2m
  refresh:
    timeout: 100s
EOF
python3 - "$WORK/imagedrift.yaml" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read().replace("  hosts:\n    {}\n", "  hosts: {}\n")
open(p, "w").write(s)
EOF

# start_replica NAME PORT [ARGS...]: one `imagedrift run --leader-elect`.
start_replica() {
    local name=$1 port=$2
    shift 2
    POD_NAME=$name POD_NAMESPACE=$NS RUST_LOG=${RUST_LOG:-info} \
        "$IMAGEDRIFT" run --config "$WORK/imagedrift.yaml" --leader-elect \
        --lease-namespace "$NS" --namespace "$NS" --enable-remedies \
        --listen "127.0.0.1:$port" "$@" >>"$WORK/$name.log" 2>&1 &
    PIDS[$name]=$!
}
metrics() { curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics"; }
# readyz PORT: /readyz answers 200 (quiet: polled while the replica starts).
readyz() { curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$1/readyz" 2>/dev/null; }
# no_failed_remedy PORT: no imagedrift_remedies_total{result="failed"} above 0.
no_failed_remedy() {
    local m
    m=$(metrics "$1") || return 1
    ! grep -E '^imagedrift_remedies_total\{' <<<"$m" | grep -F 'result="failed"' | awk '$NF + 0 > 0 { f = 1 } END { exit !f }'
}
# has_series PORT VALUE NAME LABEL...: a series of NAME with every label has VALUE.
has_series() {
    local port=$1 value=$2 name=$3 lines label
    shift 3
    lines=$(metrics "$port" | grep -E "^${name}(\{| )") || return 1
    for label in "$@"; do
        lines=$(grep -F -- "$label" <<<"$lines") || return 1
    done
    awk -v v="$value" '$NF + 0 == v + 0 { f = 1 } END { exit !f }' <<<"$lines"
}
# has_series_at_least PORT VALUE NAME LABEL...: like has_series, >= VALUE.
has_series_at_least() {
    local port=$1 value=$2 name=$3 lines label
    shift 3
    lines=$(metrics "$port" | grep -E "^${name}(\{| )") || return 1
    for label in "$@"; do
        lines=$(grep -F -- "$label" <<<"$lines") || return 1
    done
    awk -v v="$value" '$NF + 0 >= v + 0 { f = 1 } END { exit !f }' <<<"$lines"
}
holder() { kubectl -n "$NS" get lease imagedrift -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
is_holder() { [[ $(holder) == "$1" ]]; }
# events REASON KIND NAME: the messages of those Events, one per line.
events() {
    kubectl -n "$NS" get events \
        --field-selector "reason=$1,involvedObject.kind=$2,involvedObject.name=$3" \
        -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' 2>/dev/null
}
# by_instance REASON KIND NAME INSTANCE [TEXT]: how many Events of REASON on
# KIND/NAME INSTANCE wrote (whose note contains TEXT).
by_instance() {
    kubectl -n "$NS" get events.events.k8s.io \
        -o jsonpath='{range .items[*]}{.reason} {.regarding.kind}/{.regarding.name} {.reportingInstance} {.note}{"\n"}{end}' 2>/dev/null |
        grep "^$1 $2/$3 $4 " | grep -cF -- "${5:-}" || true
}
has_event() { [[ -n $(events "$@") ]]; }
event_count() { events "$@" | grep -c . || true; }
pods_of() { kubectl -n "$NS" get pods -l "app=$1" --field-selector=status.phase=Running -o jsonpath='{.items[*].metadata.name}'; }
image_ids() { kubectl -n "$NS" get pods -l "app=$1" -o jsonpath='{range .items[*]}{.status.containerStatuses[0].imageID}{"\n"}{end}'; }
volume_refs() {
    kubectl -n "$NS" get pods -l "app=$1" -o jsonpath='{range .items[*]}{.status.containerStatuses[0].volumeMounts[?(@.name=="model")].volumeStatus.image.imageRef}{"\n"}{end}'
}
# only_on DIGEST LINES: every line ends with DIGEST (and there is one).
only_on() {
    local want=$1 lines=$2
    [[ -n $lines ]] && ! grep -v -- "@$want\$" <<<"$lines" | grep -q .
}
all_pods_on() { only_on "$2" "$(image_ids "$1")" && [[ $(kubectl -n "$NS" get pods -l "app=$1" --no-headers 2>/dev/null | wc -l) == "$(kubectl -n "$NS" get deploy "$1" -o jsonpath='{.spec.replicas}')" ]]; }
all_volumes_on() { only_on "$2" "$(volume_refs "$1")" && [[ $(kubectl -n "$NS" get pods -l "app=$1" --no-headers 2>/dev/null | wc -l) == "$(kubectl -n "$NS" get deploy "$1" -o jsonpath='{.spec.replicas}')" ]]; }

# deployment NAME IMAGE POLICY [LABEL=VALUE]: two replicas of `sleep`.
deployment() {
    local labels="app: $1"
    [[ -n ${4:-} ]] && labels="$labels, ${4%%=*}: \"${4#*=}\""
    kubectl apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, namespace: $NS}
spec:
  replicas: 2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {$labels}}
    spec:
      terminationGracePeriodSeconds: 0
      tolerations: [{operator: Exists}]
      containers:
        - name: app
          image: $2
          imagePullPolicy: $3
          command: ["/bin/sleep", "86400"]
EOF
}

log "imagedrift e2e on $(kubectl config current-context 2>/dev/null || echo '?'): namespace $NS, registry $REGISTRY (push $PUSH_REGISTRY), interval $INTERVAL"
"$IMAGEDRIFT" --version 2>/dev/null || true
kubectl version 2>/dev/null | sed 's/^/  /' || true
kubectl create namespace "$NS" >/dev/null || { echo "cannot create namespace $NS" >&2; exit 2; }

# --- 0. Workloads on v1, two replicas -----------------------------------------
log "0. workloads on their first content"
D_IFNP1=$($PUSH "$REPO/ifnp:v1" --label "$REPO ifnp one")
D_ALW1=$($PUSH "$REPO/always:v1" --label "$REPO always one")
D_HID1=$($PUSH "$REPO/hidden:v1" --label "$REPO hidden one")
D_APP=$($PUSH "$REPO/app:v1" --label "$REPO app")
D_MOD1=$($PUSH "$REPO/model:v1" --label "$REPO model one")
for d in "$D_IFNP1" "$D_ALW1" "$D_HID1" "$D_APP" "$D_MOD1"; do
    [[ $d == sha256:* ]] || { echo "push failed: '$d'" >&2; exit 2; }
done
deployment ifnp "$REGISTRY/$REPO/ifnp:v1" IfNotPresent
deployment always "$REGISTRY/$REPO/always:v1" Always
# Only the follower watches this one (the leader runs with a selector that
# excludes it): its drift is seen by the follower alone until fail-over.
deployment hidden "$REGISTRY/$REPO/hidden:v1" Always e2e.imagedrift.io/hidden=yes
kubectl apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: vol, namespace: $NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: vol}}
  template:
    metadata: {labels: {app: vol}}
    spec:
      terminationGracePeriodSeconds: 0
      tolerations: [{operator: Exists}]
      volumes:
        - name: model
          image: {reference: "$REGISTRY/$REPO/model:v1", pullPolicy: IfNotPresent}
      containers:
        - name: app
          image: $REGISTRY/$REPO/app:v1
          imagePullPolicy: IfNotPresent
          command: ["/bin/sleep", "86400"]
          volumeMounts: [{name: model, mountPath: /model}]
EOF
for w in ifnp always hidden vol; do
    if kubectl -n "$NS" rollout status "deployment/$w" --timeout="${TIMEOUT}s" >/dev/null; then
        ok "deployment $w rolled out"
    else
        not_ok "deployment $w rolled out"
    fi
done
check "pods of ifnp run $D_IFNP1" all_pods_on ifnp "$D_IFNP1"
check "pods of always run $D_ALW1" all_pods_on always "$D_ALW1"

# --- replicas: A leads (it does not watch `hidden`), B follows ----------------
log "two replicas: A (leader, selector e2e.imagedrift.io/hidden!=yes), B (follower)"
start_replica e2e-a "$PORT_A" --selector 'e2e.imagedrift.io/hidden!=yes'
wait_for 60 "replica A holds the Lease" is_holder e2e-a
start_replica e2e-b "$PORT_B"
wait_for 60 "replica B serves /readyz" readyz "$PORT_B"
check "Lease still held by A after B started" is_holder e2e-a
wait_for 60 "imagedrift_leader is 1 on A" has_series "$PORT_A" 1 imagedrift_leader
wait_for 60 "imagedrift_leader is 0 on B" has_series "$PORT_B" 0 imagedrift_leader
for w in ifnp always; do
    wait_for "$TIMEOUT" "A judges $w fresh" has_series "$PORT_A" 1 imagedrift_container_verdict 'kind="container"' 'verdict="fresh"' "pod=\"$w-"
done
wait_for "$TIMEOUT" "B judges hidden fresh" has_series "$PORT_B" 1 imagedrift_container_verdict 'verdict="fresh"' 'pod="hidden-'

# --- 1. Report within one interval -------------------------------------------
log "1. re-push ifnp:v1 and always:v1: reported within one interval"
D_IFNP2=$($PUSH "$REPO/ifnp:v1" --label "$REPO ifnp two")
D_ALW2=$($PUSH "$REPO/always:v1" --label "$REPO always two")
# One interval (with its jitter), plus the tag cache's TTL, plus the time
# an Event takes to be written and listed.
WITHIN=$((INTERVAL_S * 11 / 10 + TAG_TTL_S + 10))
wait_for "$WITHIN" "StaleImage on Deployment ifnp within one interval" has_event StaleImage Deployment ifnp
wait_for "$WITHIN" "StaleImage on Deployment always within one interval" has_event StaleImage Deployment always
for w in ifnp always; do
    for p in $(pods_of "$w"); do
        wait_for 10 "StaleImage on Pod $p" has_event StaleImage Pod "$p"
    done
    check "imagedrift_workload_stale_containers counts $w" has_series "$PORT_A" 2 imagedrift_workload_stale_containers "owner_name=\"$w\""
done
check "the Deployment Event counts pods: '2 of 2 pods of Deployment ifnp run stale content'" \
    grep -q "2 of 2 pods of Deployment ifnp run stale content" <<<"$(events StaleImage Deployment ifnp)"
check "the follower wrote nothing of its own (one StaleImage on Deployment always)" \
    test "$(event_count StaleImage Deployment always)" = 1

# --- 2. Remedies and the episodes they close ----------------------------------
log "2. refresh+restart under IfNotPresent, restart under Always"
kubectl -n "$NS" annotate deployment/ifnp imagedrift.io/remedy=refresh,restart --overwrite >/dev/null
kubectl -n "$NS" annotate deployment/always imagedrift.io/remedy=restart --overwrite >/dev/null
wait_for "$TIMEOUT" "ifnp's pods run $D_IFNP2 (refresh, then restart)" all_pods_on ifnp "$D_IFNP2"
wait_for "$TIMEOUT" "always's pods run $D_ALW2 (restart)" all_pods_on always "$D_ALW2"
wait_for "$TIMEOUT" "ImageUpToDate on Deployment ifnp" has_event ImageUpToDate Deployment ifnp
wait_for "$TIMEOUT" "ImageUpToDate on Deployment always" has_event ImageUpToDate Deployment always
check "RemedyRefresh Event on ifnp" has_event RemedyRefresh Deployment ifnp
check "RemedyRestart Event on always" has_event RemedyRestart Deployment always
wait_for 60 "imagedrift_remedies_total{remedy=\"refresh\",result=\"verified\"} >= 1" \
    has_series_at_least "$PORT_A" 1 imagedrift_remedies_total 'remedy="refresh"' 'result="verified"'
wait_for 60 "imagedrift_remedies_total{remedy=\"restart\",result=\"verified\"} >= 2" \
    has_series_at_least "$PORT_A" 2 imagedrift_remedies_total 'remedy="restart"' 'result="verified"'
check "no remedy counted failed" no_failed_remedy "$PORT_A"
check "ImageUpToDate on ifnp names the remedies: 'after refresh,restart by imagedrift'" \
    grep -q "its pods run the current digest after refresh,restart by imagedrift" <<<"$(events ImageUpToDate Deployment ifnp)"
check "ImageUpToDate on always names the remedy: 'after restart by imagedrift'" \
    grep -q "its pods run the current digest after restart by imagedrift" <<<"$(events ImageUpToDate Deployment always)"
check "one ImageUpToDate on Deployment ifnp" test "$(event_count ImageUpToDate Deployment ifnp)" = 1
check "no RemedyFailed Event on ifnp or always" \
    test "$(event_count RemedyFailed Deployment ifnp)$(event_count RemedyFailed Deployment always)" = 00
wait_for 30 "no refresh pod left" test -z "$(kubectl -n "$NS" get pods -l app.kubernetes.io/managed-by=imagedrift -o name)"

# --- 3. Image volumes -----------------------------------------------------------
log "3. image volumes"
VOL_POD=$(pods_of vol)
volume_reported() { [[ -n $(volume_refs vol) ]]; }
if poll 30 volume_reported; then SEEN=on; else SEEN=off; fi
echo "   the kubelet reports image volume digests: $SEEN (asked: $GATE)"
[[ $GATE == auto ]] || check "image volume digests reported matches --volume-gate $GATE" test "$SEEN" = "$GATE"
if [[ $SEEN == on ]]; then
    check "vol's volume runs $D_MOD1" all_volumes_on vol "$D_MOD1"
    wait_for "$TIMEOUT" "A judges the image volume fresh" has_series "$PORT_A" 1 imagedrift_container_verdict 'kind="image_volume"' 'container="model"' 'verdict="fresh"'
    D_MOD2=$($PUSH "$REPO/model:v1" --label "$REPO model two")
    wait_for "$WITHIN" "StaleImage on Pod $VOL_POD names the image volume" \
        bash -c "kubectl -n '$NS' get events --field-selector reason=StaleImage,involvedObject.name='$VOL_POD' -o jsonpath='{.items[*].message}' | grep -q 'Image volume model runs stale content'"
    check "imagedrift_container_stale{kind=\"image_volume\",container=\"model\"} is 1" \
        has_series "$PORT_A" 1 imagedrift_container_stale 'kind="image_volume"' 'container="model"'
    check "the container of the same pod stays fresh" \
        has_series "$PORT_A" 0 imagedrift_container_stale 'kind="container"' "pod=\"$VOL_POD\""
    check "explain names the stale image volume" \
        bash -c "'$IMAGEDRIFT' explain '$VOL_POD' -n '$NS' --config '$WORK/imagedrift.yaml' | grep -A12 '^Image volume model' | grep -q 'verdict: *stale'"
    kubectl -n "$NS" annotate deployment/vol imagedrift.io/remedy=refresh,restart --overwrite >/dev/null
    wait_for "$TIMEOUT" "vol's new pod mounts $D_MOD2 (refresh pod mounting the volume, then restart)" all_volumes_on vol "$D_MOD2"
    wait_for "$TIMEOUT" "ImageUpToDate on Deployment vol" has_event ImageUpToDate Deployment vol
    check "ImageUpToDate on vol names the remedies" \
        grep -q "after refresh,restart by imagedrift" <<<"$(events ImageUpToDate Deployment vol)"
    wait_for 60 "imagedrift_remedies_total{remedy=\"refresh\",result=\"verified\"} >= 2 (ifnp, vol)" \
        has_series_at_least "$PORT_A" 2 imagedrift_remedies_total 'remedy="refresh"' 'result="verified"'
else
    wait_for "$TIMEOUT" "the image volume is unknown: volume_digest_not_reported" \
        has_series "$PORT_A" 1 imagedrift_container_verdict 'kind="image_volume"' 'container="model"' 'reason="volume_digest_not_reported"'
    D_MOD2=$($PUSH "$REPO/model:v1" --label "$REPO model two")
    sleep_one() { sleep $((INTERVAL_S + TAG_TTL_S + 5)); }
    sleep_one # one full check after the re-push: still never stale
    check "after a re-push the volume is still not stale" \
        has_series "$PORT_A" 0 imagedrift_container_stale 'kind="image_volume"' 'container="model"'
    check "no StaleImage on Deployment vol" test "$(event_count StaleImage Deployment vol)" = 0
    wait_for 90 "DriftCheckFailed on Pod $VOL_POD says the digest is not reported" \
        bash -c "kubectl -n '$NS' get events --field-selector reason=DriftCheckFailed,involvedObject.name='$VOL_POD' -o jsonpath='{.items[*].message}' | grep -q 'ImageVolumeWithDigest'"
    scan=$("$IMAGEDRIFT" scan -n "$NS" -o json --config "$WORK/imagedrift.yaml" 2>"$WORK/scan.err")
    check "scan lists the volume with reason volume_digest_not_reported" \
        python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(not any(i["containerType"]=="image_volume" and i["container"]=="model" and i["reason"]=="volume_digest_not_reported" for i in d["items"]))' <<<"$scan"
fi

# --- 3b. Image volume digests, as a kubelet with the gate reports them --------
# kubelet 1.36 with containerd 2.3 reports no volume digest even with the
# gate on ("image was not found" in its log). A pod bound to a fake node,
# whose status this script writes as such a kubelet would, stands in: the
# API server keeps volumeStatus only with the gate on, and imagedrift reads
# it through the same watch. Skipped where the API server drops the field.
log "3b. reported image volume digests (a pod on a fake node; status written as a kubelet with the gate would)"
FAKE_NODE=imagedrift-e2e-fake-$RUN
D_SIM1=$($PUSH "$REPO/simmodel:v1" --label "$REPO simmodel one")
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $FAKE_NODE
  labels: {kubernetes.io/os: linux, kubernetes.io/arch: amd64, kubernetes.io/hostname: $FAKE_NODE}
EOF
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: volsim, namespace: $NS, labels: {app: volsim}}
spec:
  nodeName: $FAKE_NODE
  terminationGracePeriodSeconds: 0
  tolerations: [{operator: Exists}]
  volumes:
    - name: model
      image: {reference: "$REGISTRY/$REPO/simmodel:v1", pullPolicy: IfNotPresent}
  containers:
    - name: app
      image: $REGISTRY/$REPO/app:v1
      imagePullPolicy: IfNotPresent
      command: ["/bin/sleep", "86400"]
      volumeMounts: [{name: model, mountPath: /model}]
EOF
# sim_status DIGEST: the status a kubelet with the gate writes for volsim.
sim_status() {
    kubectl -n "$NS" patch pod volsim --subresource=status --type=merge -p "$(
        cat <<EOF
{"status": {"phase": "Running", "containerStatuses": [{
  "name": "app", "image": "$REGISTRY/$REPO/app:v1", "imageID": "$REGISTRY/$REPO/app@$D_APP",
  "ready": true, "started": true, "restartCount": 0,
  "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
  "volumeMounts": [{"name": "model", "mountPath": "/model",
                    "volumeStatus": {"image": {"imageRef": "$REGISTRY/$REPO/simmodel@$1"}}}]}]}}
EOF
    )" >/dev/null
}
sim_ref() { kubectl -n "$NS" get pod volsim -o jsonpath='{.status.containerStatuses[0].volumeMounts[0].volumeStatus.image.imageRef}' 2>/dev/null; }
if ! sim_status "$D_SIM1" || [[ -z $(sim_ref) ]]; then
    echo "   skipped: the API server drops volumeStatus (feature gate ImageVolumeWithDigest off there)"
else
    ok "the API server keeps volumeStatus.image.imageRef ($(sim_ref))"
    wait_for "$TIMEOUT" "A judges volsim's image volume fresh" \
        has_series "$PORT_A" 1 imagedrift_container_verdict 'pod="volsim"' 'kind="image_volume"' 'container="model"' 'verdict="fresh"'
    D_SIM2=$($PUSH "$REPO/simmodel:v1" --label "$REPO simmodel two")
    wait_for "$WITHIN" "StaleImage on Pod volsim names the image volume and both digests" \
        bash -c "kubectl -n '$NS' get events --field-selector reason=StaleImage,involvedObject.name=volsim -o jsonpath='{.items[*].message}' | grep 'Image volume model runs stale content' | grep -F '$D_SIM1' | grep -qF '$D_SIM2'"
    check "imagedrift_container_stale{pod=\"volsim\",kind=\"image_volume\"} is 1" \
        has_series "$PORT_A" 1 imagedrift_container_stale 'pod="volsim"' 'kind="image_volume"' 'container="model"'
    check "scan -o json lists volsim's volume stale with its pinned reference" \
        bash -c "'$IMAGEDRIFT' scan -n '$NS' -o json --config '$WORK/imagedrift.yaml' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(not any(i[\"pod\"]==\"volsim\" and i[\"containerType\"]==\"image_volume\" and i[\"verdict\"]==\"stale\" and i.get(\"pinnedReference\",\"\").endswith(\"@$D_SIM2\") for i in d[\"items\"]))'"
    # The node pulls the new content (as a kubelet after a refresh would report it).
    sim_status "$D_SIM2"
    wait_for "$WITHIN" "ImageUpToDate on Pod volsim once the volume runs $D_SIM2" has_event ImageUpToDate Pod volsim
    check "imagedrift_container_stale{pod=\"volsim\",kind=\"image_volume\"} is 0" \
        has_series "$PORT_A" 0 imagedrift_container_stale 'pod="volsim"' 'kind="image_volume"' 'container="model"'
fi
kubectl -n "$NS" delete pod volsim --grace-period=0 --force >/dev/null 2>&1 || true
kubectl delete node "$FAKE_NODE" >/dev/null 2>&1 || true

# --- 4. kill -9 of the leader, drift seen only by the follower -----------------
log "4. re-push hidden:v1 (only B watches it), then kill -9 the leader A"
D_HID2=$($PUSH "$REPO/hidden:v1" --label "$REPO hidden two")
echo "   hidden:v1 now serves $D_HID2"
wait_for "$WITHIN" "B (follower) judges hidden stale" has_series "$PORT_B" 1 imagedrift_container_stale 'pod="hidden-'
check "nobody announced it yet (B follows, A does not watch it)" test "$(event_count StaleImage Deployment hidden)" = 0
check "Lease still held by A" is_holder e2e-a
before_always=$(event_count StaleImage Deployment always)
before_uptodate=$(event_count ImageUpToDate Deployment always)
kill -9 "${PIDS[e2e-a]}"
wait "${PIDS[e2e-a]}" 2>/dev/null
unset 'PIDS[e2e-a]'
wait_for $((LEASE_S * 3 + 10)) "B takes the Lease after A's expires" is_holder e2e-b
wait_for 30 "imagedrift_leader is 1 on B" has_series "$PORT_B" 1 imagedrift_leader
wait_for $((INTERVAL_S + 30)) "new leader B writes StaleImage on Deployment hidden" has_event StaleImage Deployment hidden
for p in $(pods_of hidden); do
    wait_for 10 "new leader B writes StaleImage on Pod $p" has_event StaleImage Pod "$p"
done
sleep $((INTERVAL_S + 5)) # a full check by B as leader
check "hidden announced once" test "$(event_count StaleImage Deployment hidden)" = 1
check "nothing A wrote is written again (StaleImage on always: $before_always)" \
    test "$(event_count StaleImage Deployment always)" = "$before_always"
check "nothing A wrote is written again (ImageUpToDate on always: $before_uptodate)" \
    test "$(event_count ImageUpToDate Deployment always)" = "$before_uptodate"

# --- 5. Graceful hand-over --------------------------------------------------
log "5. A follows again; SIGTERM to the leader B: A takes the Lease within a retry period"
start_replica e2e-a "$PORT_A" --selector 'e2e.imagedrift.io/hidden!=yes'
wait_for 60 "A serves /readyz again" readyz "$PORT_A"
wait_for 30 "imagedrift_leader is 0 on A (follower)" has_series "$PORT_A" 0 imagedrift_leader
kill -TERM "${PIDS[e2e-b]}"
start=$SECONDS
until is_holder e2e-a || ((SECONDS - start > LEASE_S * 2)); do sleep 0.5; done
took=$((SECONDS - start))
check "A holds the Lease ${took}s after B's SIGTERM (lease ${LEASE_S}s; B released it)" test "$took" -lt "$LEASE_S"
wait "${PIDS[e2e-b]}" 2>/dev/null
check "B exited 0 and logged the release" grep -q "released the lease" "$WORK/e2e-b.log"
unset 'PIDS[e2e-b]'
wait_for 10 "imagedrift_leader is 1 on A" has_series "$PORT_A" 1 imagedrift_leader

# --- 6. A paused leader does not write after it resumes --------------------
log "6. SIGSTOP the leader A past its lease, re-push always:v1, B leads; SIGCONT A: A writes nothing"
start_replica e2e-b "$PORT_B"
wait_for 60 "B serves /readyz again" readyz "$PORT_B"
wait_for 30 "imagedrift_leader is 0 on B (follower)" has_series "$PORT_B" 0 imagedrift_leader
a_wrote=$(by_instance StaleImage Deployment always e2e-a)
kill -STOP "${PIDS[e2e-a]}"
D_ALW3=$($PUSH "$REPO/always:v1" --label "$REPO always three")
echo "   always:v1 now serves $D_ALW3"
wait_for $((LEASE_S * 3 + 10)) "B takes the Lease while A is stopped" is_holder e2e-b
announced_by_b() { (($(by_instance StaleImage Deployment always e2e-b "$D_ALW3") >= 1)); }
wait_for "$WITHIN" "B announces always's new drift (StaleImage naming $D_ALW3)" announced_by_b
kill -CONT "${PIDS[e2e-a]}"
sleep $((INTERVAL_S + 5)) # A's overdue checks run as soon as it resumes
check "A logged that it lost leadership" grep -q "lost leadership" "$WORK/e2e-a.log"
check "A wrote no StaleImage on Deployment always after resuming ($a_wrote before)" test "$(by_instance StaleImage Deployment always e2e-a)" = "$a_wrote"
check "imagedrift_leader is 0 on A" has_series "$PORT_A" 0 imagedrift_leader

printf '\n%d passed, %d failed\n' "$PASSED" "$FAILED"
((FAILED == 0))
