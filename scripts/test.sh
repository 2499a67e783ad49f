#!/usr/bin/env bash
# Runs every check and test of the project. Installs what the tests need on a
# machine that has only the Rust toolchain (cargo-nextest when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "Installing cargo-nextest..."
    cargo install --locked cargo-nextest
fi

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings

# The benchmark must run and print every figure (debug build: figures are not meaningful).
cargo build --locked --bin sky --bin sky-bench
target/debug/sky-bench --quick

cargo nextest run --locked --no-fail-fast
