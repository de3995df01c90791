#!/usr/bin/env bash
# End-to-end test of imagedrift on a kind cluster with a local registry.
#
# THIS CANNOT RUN ON THE PROJECT'S DEV MACHINES: they have no container
# engine and no cluster. It runs in GitHub Actions (.github/workflows/e2e.yml)
# and on any workstation with docker, kind, kubectl and curl. Nothing else
# exercises it, so keep it correct by reading, and change it together with
# deploy/ and tests/e2e/overlay/.
#
# What it proves:
#   0. Every scenario of tests/e2e/cluster.sh (imagedrift out of cluster, two
#      leader-elected replicas: report within one interval, remedies and the
#      ImageUpToDate that closes each episode, image volumes, kill -9 of the
#      leader), run against this kind cluster and its registry.
#   1. A Deployment (imagePullPolicy Always) runs kind-registry:5000/e2e/app:v1
#      and imagedrift judges it fresh.
#   2. The tag v1 is re-pushed with new content: imagedrift posts a StaleImage
#      Event (on the Pod and on the Deployment) and exports
#      imagedrift_container_stale == 1 for the container.
#   3. With the remedies overlay, opting the Deployment in with the annotation
#      imagedrift.io/remedy=restart makes imagedrift roll it: a new ReplicaSet
#      whose pod runs the digest the registry now serves, and the workload's
#      stale count returns to 0.
#
# Environment:
#   CLUSTER       kind cluster name (default imagedrift-e2e)
#   REG_PORT      host port of the local registry (default 5001)
#   METRICS_PORT  local port for the metrics port-forward (default 18080)
#   TIMEOUT       seconds for each wait (default 180)
#   KEEP_CLUSTER  1 = leave the cluster and registry running afterwards
#   SKIP_BUILD    1 = reuse an existing imagedrift:e2e image
#   ARTIFACTS     where diagnostics go on failure (default ./e2e-artifacts)
#   FEATURE_GATES kind featureGates for the cluster, as JSON (default
#                 {"ImageVolume": true}; add "ImageVolumeWithDigest": true on
#                 a 1.35+ node image for image volume digests)
#   NODE_IMAGE    kind node image (default: kind's)
#   SKIP_CLUSTER_SH 1 = skip step 0
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=${CLUSTER:-imagedrift-e2e}
REG_NAME=kind-registry # tests/e2e/overlay/config.yaml names it too
REG_PORT=${REG_PORT:-5001}
METRICS_PORT=${METRICS_PORT:-18080}
TIMEOUT=${TIMEOUT:-180}
ARTIFACTS=${ARTIFACTS:-$PWD/e2e-artifacts}
IMAGE=imagedrift:e2e # tests/e2e/overlay/kustomization.yaml sets it

# The same registry under two names: the host pushes through the published
# port; nodes (containerd) and imagedrift's pod reach the container by name
# on the kind network.
APP_REF=$REG_NAME:5000/e2e/app:v1
PUSH_REF=localhost:$REG_PORT/e2e/app:v1
METRICS_URL=http://127.0.0.1:$METRICS_PORT/metrics
# All four manifest types (SEMANTICS.md §2), or the registry may hand back
# something other than what the tag points to.
ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'

PF_PID=""

log() { printf '\n==> %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is required on PATH"; }

# wait_until DESCRIPTION COMMAND...: re-runs COMMAND every 2s until it
# succeeds, failing after $TIMEOUT seconds.
wait_until() {
    local what=$1 deadline=$((SECONDS + TIMEOUT))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || fail "timed out after ${TIMEOUT}s waiting for: $what"
        sleep 2
    done
}

diagnostics() {
    mkdir -p "$ARTIFACTS"
    kubectl get pods,rs,deploy -A -o wide >"$ARTIFACTS/objects.txt" 2>&1 || true
    kubectl get events -A --sort-by=.lastTimestamp >"$ARTIFACTS/events.txt" 2>&1 || true
    kubectl -n imagedrift logs deploy/imagedrift --tail=-1 >"$ARTIFACTS/imagedrift.log" 2>&1 || true
    kubectl -n imagedrift describe pods >"$ARTIFACTS/imagedrift-pods.txt" 2>&1 || true
    curl -fsS "$METRICS_URL" >"$ARTIFACTS/metrics.txt" 2>&1 || true
    echo "diagnostics in $ARTIFACTS" >&2
    tail -n 50 "$ARTIFACTS/imagedrift.log" >&2 || true
}

cleanup() {
    local status=$?
    [[ -n $PF_PID ]] && kill "$PF_PID" 2>/dev/null || true
    ((status == 0)) || diagnostics
    if [[ ${KEEP_CLUSTER:-0} != 1 ]]; then
        kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
        docker rm -f "$REG_NAME" >/dev/null 2>&1 || true
    fi
    exit "$status"
}
trap cleanup EXIT

for tool in docker kind kubectl curl python3; do need "$tool"; done

# --- 1. Registry and cluster -------------------------------------------------
log "local registry $REG_NAME on 127.0.0.1:$REG_PORT"
if [[ $(docker inspect -f '{{.State.Running}}' "$REG_NAME" 2>/dev/null || true) != true ]]; then
    docker run -d --restart=always -p "127.0.0.1:$REG_PORT:5000" --network bridge \
        --name "$REG_NAME" registry:2 >/dev/null
fi

log "kind cluster $CLUSTER"
GATES=${FEATURE_GATES:-'{"ImageVolume": true}'}
if ! kind get clusters | grep -qx "$CLUSTER"; then
    # Let containerd read per-registry hosts.toml files (not needed with kind
    # node images from v0.27 on, harmless with them).
    kind create cluster --name "$CLUSTER" --wait 120s ${NODE_IMAGE:+--image "$NODE_IMAGE"} --config=- <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
featureGates: $GATES
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
EOF
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

# Nodes pull kind-registry:5000/... over plain HTTP.
for node in $(kind get nodes --name "$CLUSTER"); do
    docker exec "$node" mkdir -p "/etc/containerd/certs.d/$REG_NAME:5000"
    docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/$REG_NAME:5000/hosts.toml" <<EOF
server = "http://$REG_NAME:5000"

[host."http://$REG_NAME:5000"]
  capabilities = ["pull", "resolve"]
EOF
done
# Put the registry on the kind network, so nodes and pods resolve its name.
if [[ $(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$REG_NAME") == null ]]; then
    docker network connect kind "$REG_NAME"
fi

# --- 0. The cluster scenarios (imagedrift out of cluster) ---------------------
# Nodes pull kind-registry:5000/...; this machine reaches it on localhost.
SCENARIOS=0
if [[ ${SKIP_CLUSTER_SH:-0} != 1 ]]; then
    log "tests/e2e/cluster.sh against kind-$CLUSTER"
    TIMEOUT=$TIMEOUT "$ROOT/tests/e2e/cluster.sh" --registry "$REG_NAME:5000" \
        --push-registry "localhost:$REG_PORT" || SCENARIOS=1
fi

# --- 2. imagedrift ------------------------------------------------------------
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building $IMAGE"
    docker build -t "$IMAGE" "$ROOT"
fi
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "installing imagedrift (tests/e2e/overlay: base + remedies)"
kubectl apply -k "$ROOT/tests/e2e/overlay"
kubectl -n imagedrift rollout status deployment/imagedrift --timeout="${TIMEOUT}s"
kubectl -n imagedrift wait --for=condition=Available deployment/imagedrift --timeout="${TIMEOUT}s"

kubectl -n imagedrift port-forward service/imagedrift "$METRICS_PORT:8080" >"${TMPDIR:-/tmp}/imagedrift-pf.log" 2>&1 &
PF_PID=$!
wait_until "metrics endpoint" curl -fsS -o /dev/null "$METRICS_URL"
curl -fsS "$METRICS_URL" | grep -q '^imagedrift_build_info{' || fail "no imagedrift_build_info on /metrics"

# series NAME LABEL=VALUE...: prints the /metrics lines of NAME carrying every
# given label (in any order); fails when there is none.
series() {
    local name=$1 lines
    shift
    lines=$(curl -fsS "$METRICS_URL" | grep -E "^${name}\{") || return 1
    for label in "$@"; do
        lines=$(grep -F "$label" <<<"$lines") || return 1
    done
    printf '%s\n' "$lines"
}
# has_value VALUE NAME LABEL=VALUE...: some matching series has VALUE.
has_value() {
    local value=$1
    shift
    series "$@" | awk -v v="$value" '$NF + 0 == v + 0 { found = 1 } END { exit !found }'
}

# --- 3. A workload on v1 --------------------------------------------------------
# push_app MARKER: builds a one-layer image that differs only by a label and
# pushes it as v1; prints the digest the registry now serves for the tag.
push_app() {
    printf 'FROM busybox:1.36\nLABEL e2e.imagedrift.io/content=%s\n' "$1" |
        docker build -q -t "$PUSH_REF" - >/dev/null
    docker push -q "$PUSH_REF" >/dev/null
    curl -fsSI -H "Accept: $ACCEPT" "http://localhost:$REG_PORT/v2/e2e/app/manifests/v1" |
        tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

log "pushing $PUSH_REF (first content)"
DIGEST_V1=$(push_app first)
[[ $DIGEST_V1 == sha256:* ]] || fail "no digest for the first push: '$DIGEST_V1'"

kubectl create namespace e2e --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: e2e
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: $APP_REF
          # Always: a restart re-resolves the tag, so restart is the remedy
          # that works (SEMANTICS.md §4).
          imagePullPolicy: Always
          command: ["sleep", "86400"]
EOF
kubectl -n e2e rollout status deployment/app --timeout="${TIMEOUT}s"
POD=$(kubectl -n e2e get pods -l app=app -o jsonpath='{.items[0].metadata.name}')
RUNNING=$(kubectl -n e2e get pod "$POD" -o jsonpath='{.status.containerStatuses[0].imageID}')
[[ $RUNNING == *"$DIGEST_V1" ]] || fail "pod $POD runs $RUNNING, expected $DIGEST_V1"

log "imagedrift judges $POD fresh"
wait_until "verdict fresh for e2e/$POD" \
    has_value 1 imagedrift_container_verdict 'namespace="e2e"' "pod=\"$POD\"" 'container="app"' 'verdict="fresh"'
has_value 0 imagedrift_container_stale 'namespace="e2e"' "pod=\"$POD\"" 'container="app"' ||
    fail "imagedrift_container_stale is not 0 for a fresh container"

# --- 4. Re-push the tag: stale ---------------------------------------------------
log "re-pushing $PUSH_REF with new content"
DIGEST_V2=$(push_app second)
[[ $DIGEST_V2 == sha256:* && $DIGEST_V2 != "$DIGEST_V1" ]] ||
    fail "the re-push did not change the digest ($DIGEST_V1 -> $DIGEST_V2)"

stale_event_on() { # KIND NAME
    kubectl -n e2e get events --field-selector "reason=StaleImage,involvedObject.kind=$1,involvedObject.name=$2" \
        -o jsonpath='{.items[*].message}' | grep -q .
}
wait_until "StaleImage Event on Pod e2e/$POD" stale_event_on Pod "$POD"
wait_until "StaleImage Event on Deployment e2e/app" stale_event_on Deployment app
kubectl -n e2e get events --field-selector reason=StaleImage -o custom-columns=OBJECT:.involvedObject.name,MESSAGE:.message

log "metrics report the stale container"
wait_until "imagedrift_container_stale == 1" \
    has_value 1 imagedrift_container_stale 'namespace="e2e"' "pod=\"$POD\"" 'container="app"' \
    'owner_kind="Deployment"' 'owner_name="app"'
has_value 1 imagedrift_workload_stale_containers 'namespace="e2e"' 'owner_kind="Deployment"' 'owner_name="app"' ||
    fail "imagedrift_workload_stale_containers is not 1 for e2e/app"
# No remedy without opting in: still the pod we started with.
[[ $(kubectl -n e2e get pods -l app=app -o jsonpath='{.items[*].metadata.name}') == "$POD" ]] ||
    fail "the workload changed before it was opted in to a remedy"

# --- 5. Opt in to restart: a new ReplicaSet with the new content --------------
OLD_RS=$(kubectl -n e2e get rs -l app=app -o jsonpath='{.items[*].metadata.name}')
log "opting e2e/app in: imagedrift.io/remedy=restart (ReplicaSets now: $OLD_RS)"
kubectl -n e2e annotate deployment/app imagedrift.io/remedy=restart --overwrite

new_replicaset() {
    local rs
    for rs in $(kubectl -n e2e get rs -l app=app -o jsonpath='{.items[*].metadata.name}'); do
        [[ " $OLD_RS " == *" $rs "* ]] || return 0
    done
    return 1
}
wait_until "a new ReplicaSet for e2e/app" new_replicaset
RESTARTED_AT=$(kubectl -n e2e get deployment app \
    -o jsonpath='{.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}')
[[ -n $RESTARTED_AT ]] || fail "the restart was not the rollout-restart annotation patch"
kubectl -n e2e rollout status deployment/app --timeout="${TIMEOUT}s"
kubectl -n e2e wait --for=delete "pod/$POD" --timeout="${TIMEOUT}s"

NEW_POD=$(kubectl -n e2e get pods -l app=app -o jsonpath='{.items[0].metadata.name}')
RUNNING=$(kubectl -n e2e get pod "$NEW_POD" -o jsonpath='{.status.containerStatuses[0].imageID}')
[[ $RUNNING == *"$DIGEST_V2" ]] || fail "new pod $NEW_POD runs $RUNNING, expected $DIGEST_V2"

log "metrics: fresh again, the remedy counted, the old pod's series gone"
workload_not_stale() { # the series is 0 or gone, from a successful scrape
    local out
    out=$(curl -fsS "$METRICS_URL") || return 1
    ! grep -E '^imagedrift_workload_stale_containers\{' <<<"$out" | grep -F 'namespace="e2e"' |
        grep -F 'owner_name="app"' | awk '$NF + 0 > 0 { f = 1 } END { exit !f }'
}
wait_until "imagedrift_workload_stale_containers back to 0" workload_not_stale
wait_until "verdict fresh for e2e/$NEW_POD" \
    has_value 1 imagedrift_container_verdict 'namespace="e2e"' "pod=\"$NEW_POD\"" 'verdict="fresh"'
series imagedrift_remedies_total 'remedy="restart"' 'result="applied"' | awk '$NF + 0 >= 1 { f = 1 } END { exit !f }' ||
    fail "imagedrift_remedies_total{remedy=\"restart\"} did not count the restart"
! series imagedrift_container_stale "pod=\"$POD\"" >/dev/null ||
    fail "series of the deleted pod $POD are still exported"

log "in-cluster install passed: StaleImage Event, stale metric, restart remedy ($DIGEST_V1 -> $DIGEST_V2)"
((SCENARIOS == 0)) || fail "tests/e2e/cluster.sh reported failures (above)"
