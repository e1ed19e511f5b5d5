#!/usr/bin/env bash
# File I/O benchmarks side by side: random O_DIRECT reads (fio, glommio,
# monoio, tokio's spawn_blocking and `runtime`) and buffered sequential reads
# (`runtime` and std), everything on CPU 0. Installs fio when it is missing
# and this is root, builds `fsbench`, and runs it with the arguments given to
# this script, e.g.
#
#   benches/run-fs.sh --quick
#   benches/run-fs.sh random --qd 32 --rounds 5 --only fio --only ours-fixed
#
# The 1 GiB data file goes to $CARGO_TARGET_DIR (or target/) unless
# `--file PATH` says otherwise; it is written once and reused.
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v fio >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "run-fs: installing fio"
        apt-get update -qq
        apt-get install -y -qq fio
    else
        echo "run-fs: fio is not installed and this is not root:" \
            "the fio runs will be skipped (apt-get install fio)"
    fi
fi

cargo build -p benches --release --bin fsbench

target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/fsbench" "$@"
