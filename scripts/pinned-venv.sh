# Sourced by the test scripts: pinned_venv VENV REQUIREMENTS
# Creates (or reuses) the Python venv VENV with the packages pinned in
# REQUIREMENTS, installed again whenever that file changes (a checksum of it is
# kept in the venv). The interpreter is $PYTHON, default python3.
pinned_venv() {
    local venv="$1" requirements="$2" want stamp
    want="$(sha256sum "$requirements" | cut -d' ' -f1)"
    stamp="$venv/.requirements.sha256"
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
        return
    fi
    echo "Installing $(basename "$requirements") into $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
}
