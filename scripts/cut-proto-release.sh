#!/usr/bin/env bash
# Records the protocol as released: writes proto/released/skypilot-v1.json, the
# buf image (JSON) that `buf breaking proto --against proto/released/skypilot-v1.json`
# compares every later change with. Run it when cutting a release, and commit
# the image with the release.
#
#   bash scripts/cut-proto-release.sh [OUTPUT]     (default proto/released/skypilot-v1.json)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-proto/released/skypilot-v1.json}"
buf="$root/clients/typescript/node_modules/.bin/buf"

if [[ ! -x "$buf" ]]; then
  echo "Installing buf (npm ci in clients/typescript)..." >&2
  (cd "$root/clients/typescript" && npm ci --no-audit --no-fund)
fi

cd "$root"
"$buf" lint
mkdir -p "$(dirname "$out")"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
# No source info: comments may change freely without touching the image.
"$buf" build proto --exclude-source-info -o "$tmp#format=json"
# One field per line, so that the next release's diff is readable.
node -e 'const fs = require("fs"); const [src, dst] = process.argv.slice(1);
fs.writeFileSync(dst, JSON.stringify(JSON.parse(fs.readFileSync(src, "utf8")), null, 1) + "\n");' "$tmp" "$out"
"$buf" breaking proto --against "$out"
echo "Wrote $out" >&2
