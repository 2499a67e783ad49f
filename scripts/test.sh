#!/usr/bin/env bash
# Runs every check and test of the project. Installs what the tests need on a
# machine that has only the Rust toolchain, Python 3 with pip and Node.js with
# npm: cargo-nextest, openssh-server, Slurm, munge, Prometheus and Chromium when missing; each client suite installs its own pinned
# packages into target/venvs/ or node_modules/, and the chart suite installs helm.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "Installing cargo-nextest..."
    cargo install --locked cargo-nextest
fi

# Real OpenSSH servers are the SSH tests' hosts (the tests run as root and
# start and stop them themselves).
if [ ! -x /usr/sbin/sshd ]; then
    echo "Installing openssh-server..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q openssh-server >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q openssh-server; }
fi

# A real Slurm (controller, node daemons, client commands and munge) is the
# Slurm tests' cluster; the tests start their own daemons, with their own
# configuration, ports and key, and stop them (none of the packages' services).
if [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/slurmd ] || [ ! -x /usr/bin/srun ] || [ ! -x /usr/sbin/munged ]; then
    echo "Installing Slurm and munge..."
    export DEBIAN_FRONTEND=noninteractive
    packages="slurmctld slurmd slurm-client munge"
    apt-get install -y -q $packages >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q $packages; }
fi

# A real browser (Chromium, headless, started by the tests) drives the dashboard.
if [ ! -x /usr/bin/chromium ]; then
    echo "Installing chromium..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; }
fi

# A real Prometheus scrapes the server's metrics in a test (started by the test).
if [ ! -x /usr/bin/prometheus ]; then
    echo "Installing prometheus..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q prometheus >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q prometheus; }
fi

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings

# The benchmark must run and print every figure (debug build: figures are not meaningful).
cargo build --locked --bin sky --bin sky-bench
target/debug/sky-bench --quick

# Rust: unit, server, CLI, crash and fuzz tests.
cargo nextest run --locked --no-fail-fast

# Everything else runs against the real `sky` binary built above.
export SKY_BIN="$PWD/target/debug/sky"
failed=()
for suite in python-client typescript-client airflow temporal chart; do
    echo "=== scripts/test-$suite.sh"
    if ! bash "scripts/test-$suite.sh"; then
        failed+=("$suite")
    fi
done
if ((${#failed[@]})); then
    echo "failed suites: ${failed[*]}" >&2
    exit 1
fi
echo "all tests passed"
