#!/usr/bin/env bash
# Generates the Python modules of proto/skypilot/v1 into
# src/skypilot_client/_gen/skypilot/v1/ with pinned grpcio-tools
# (scripts/requirements-codegen.txt, installed into their own venv), and checks
# that the hand-written proto/google files are wire-compatible with the
# google.longrunning / google.rpc modules of the googleapis-common-protos package,
# which the generated code imports at run time.
#
#   scripts/generate.sh           regenerate the committed modules
#   scripts/generate.sh --check   regenerate into a temporary folder and fail,
#                                 showing the diff, when the committed modules
#                                 differ from what the protos produce
#
# Environment: PYTHON (interpreter for the venv, default python3),
# SKY_CODEGEN_VENV (default <repo>/target/venvs/python-codegen).
#
# protoc writes `from skypilot.v1 import x_pb2` and registers the classes
# under the module `skypilot.v1.x_pb2`; both are rewritten to
# `skypilot_client._gen.skypilot.v1`, so that the package claims no top-level
# `skypilot` import name (SkyPilot itself uses it). Descriptor file names stay
# `skypilot/v1/*.proto`, as the server's reflection reports them.
set -euo pipefail
export LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PKG="$(cd "$HERE/.." && pwd)"
ROOT="$(cd "$PKG/../.." && pwd)"
PROTO="$ROOT/proto"
GEN="$PKG/src/skypilot_client/_gen"
REQS="$HERE/requirements-codegen.txt"
VENV="${SKY_CODEGEN_VENV:-$ROOT/target/venvs/python-codegen}"

mode=write
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    -h | --help)
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: $0 [--check]" >&2
        exit 2
        ;;
esac

# The pinned generators, in a venv of their own (their protobuf pin must not
# meet the runtime's).
source "$ROOT/scripts/pinned-venv.sh"
pinned_venv "$VENV" "$REQS"
PY="$VENV/bin/python"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
out="$tmp/_gen"
mkdir -p "$out"

cd "$PROTO"
skypilot_protos=(skypilot/v1/*.proto)
google_protos=(google/longrunning/operations.proto google/rpc/status.proto google/rpc/error_details.proto)

"$PY" -m grpc_tools.protoc -I. \
    --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
    "${skypilot_protos[@]}"

# Descriptor sets for the compatibility check.
"$PY" -m grpc_tools.protoc -I. --descriptor_set_out="$tmp/skypilot.binpb" "${skypilot_protos[@]}"
"$PY" -m grpc_tools.protoc -I. --descriptor_set_out="$tmp/google.binpb" "${google_protos[@]}"
"$PY" "$HERE/check_google_protos.py" "$tmp/google.binpb" "$tmp/skypilot.binpb"

# Imports and module names under skypilot_client._gen.
for file in "$out"/skypilot/v1/*.py "$out"/skypilot/v1/*.pyi; do
    sed -E -i \
        -e 's/^from skypilot\.v1 import /from skypilot_client._gen.skypilot.v1 import /' \
        -e "s/'skypilot\.v1\.([A-Za-z0-9_]+_pb2)'/'skypilot_client._gen.skypilot.v1.\1'/" \
        "$file"
done
if grep -n -E "(^|[^.])\bskypilot\.v1\.[A-Za-z0-9_]+_pb2\b|^from skypilot\.|^import skypilot\." \
    "$out"/skypilot/v1/*.py "$out"/skypilot/v1/*.pyi | grep -v "skypilot_client\._gen\.skypilot\.v1"; then
    echo "generate.sh: a generated import of skypilot.v1 was not rewritten (see above)" >&2
    exit 1
fi

cat >"$out/__init__.py" <<'EOF'
"""Generated from proto/skypilot/v1 by scripts/generate.sh: do not edit.

The modules live in skypilot_client._gen.skypilot.v1 (their imports are rewritten
there), so the package claims no top-level `skypilot` name. google.longrunning and
google.rpc come from the googleapis-common-protos package.
"""
EOF
printf '"""Generated: do not edit."""\n' >"$out/skypilot/__init__.py"
"$PY" "$HERE/write_v1_init.py" "$tmp/skypilot.binpb" "$out/skypilot/v1/__init__.py"

if [ "$mode" = check ]; then
    if ! diff -ru -x __pycache__ "$GEN" "$out"; then
        echo "generate.sh --check: the committed modules in ${GEN#"$ROOT"/} differ from" \
            "what proto/ produces (diff above); run clients/python/scripts/generate.sh" >&2
        exit 1
    fi
    echo "generate.sh --check: generated modules are up to date" >&2
else
    rm -rf "$GEN"
    cp -r "$out" "$GEN"
    echo "generate.sh: wrote ${GEN#"$ROOT"/}" >&2
fi
