#!/usr/bin/env bash
# End-to-end tests on a real kind cluster (real kubelet, real container runtime).
# They need a Docker engine and kind; where either is missing they are skipped, and
# this script says why. The integration suite (make test) covers the same behaviour
# on the embedded control plane with a simulated kubelet.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kind >/dev/null 2>&1; then
  echo "e2e skipped: kind is not installed (https://kind.sigs.k8s.io)"
  exit 0
fi
if ! docker info >/dev/null 2>&1; then
  echo "e2e skipped: no Docker engine is reachable ('docker info' failed); kind needs one"
  exit 0
fi

cluster="secretrotation-e2e-$$"
kubeconfig="$(mktemp)"
trap 'kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; rm -f "$kubeconfig"' EXIT
kind create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 120s
SECRETROTATION_TEST_KUBECONFIG="$kubeconfig" .venv/bin/python -m pytest e2e -p no:cacheprovider -q
