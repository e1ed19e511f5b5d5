#!/usr/bin/env bash
# Network benchmarks side by side: echo and HTTP servers of `runtime` and its
# peers, each on CPU 0, loaded from CPU 1. Installs wrk when it is missing
# and this is root, builds the `hello` example and `netbench`, and runs
# `netbench all` with the arguments given to this script, e.g.
#
#   benches/run-net.sh --quick
#   benches/run-net.sh --rounds 5 --only ours --only tokio-ct
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "run-net: installing wrk"
        apt-get update -qq
        apt-get install -y -qq wrk
    else
        echo "run-net: wrk is not installed and this is not root:" \
            "the HTTP part will be skipped (apt-get install wrk)"
    fi
fi

cargo build --release --example hello
cargo build -p benches --release --bin netbench

target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/netbench" all --hello "$target_dir/release/examples/hello" "$@"
