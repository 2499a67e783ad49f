#!/usr/bin/env bash
# Checks and tests the TypeScript client (clients/typescript) and the protocol's
# hygiene: install the pinned dependencies, build, check that the committed
# generated code matches proto/, `buf lint`, `buf breaking` against the last
# released protocol (proto/released/skypilot-v1.json), check that the
# dashboard's committed build matches its sources, then run the tests against
# real API servers started from $SKY_BIN (default target/debug/sky); the
# dashboard's tests drive it in Debian's chromium (/usr/bin/chromium).
#
#   SKY_BIN=/path/to/sky bash scripts/test-typescript-client.sh
#
# Needs Node.js 20+ with npm; everything else comes from the npm registry.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
client="$root/clients/typescript"

SKY_BIN="${SKY_BIN:-$root/target/debug/sky}"
if [[ "$SKY_BIN" != /* ]]; then SKY_BIN="$PWD/$SKY_BIN"; fi
if [[ ! -x "$SKY_BIN" ]]; then
  echo "error: no sky binary at $SKY_BIN: build it (cargo build) or set SKY_BIN" >&2
  exit 1
fi
export SKY_BIN

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "error: Node.js 20 or newer is needed, found $(node --version)" >&2
  exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

cd "$client"
step "npm ci"
npm ci --no-audit --no-fund

step "build"
npm run --silent build

step "generated code is current"
npm run --silent check:generated

step "the dashboard type-checks and its committed build (embedded in the server) matches its sources"
npm run --silent check:dashboard

buf="$client/node_modules/.bin/buf"
cd "$root"
step "buf lint"
"$buf" lint
step "buf breaking against proto/released/skypilot-v1.json"
"$buf" breaking proto --against proto/released/skypilot-v1.json

cd "$client"
step "tests (SKY_BIN=$SKY_BIN)"
npm run --silent test
