#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need first (Debian:
# the CNCF distribution registry, promtool, htpasswd), so on a fresh Debian
# machine with Rust this one command is enough. Needs root (or sudo) only
# when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v promtool >/dev/null || need+=(prometheus)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  echo "scripts/test.sh: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian package starts a registry service on :5000; the tests start
  # their own on free ports and don't need it.
  $sudo systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# What ships besides the binary: alert rules and their unit tests (promtool),
# the dashboard's queries, and every kustomize overlay rendered by kubectl.
bash .ci/deploy-checks.sh

if cargo nextest --version >/dev/null 2>&1; then
  cargo test --doc
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
