#!/usr/bin/env bash
# Runs the coverage-guided fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) on the
# stable toolchain: cargo-fuzz passes -Z flags, which stable rustc takes with
# RUSTC_BOOTSTRAP=1.
#
#   scripts/fuzz.sh                          every target, 60 s each
#   scripts/fuzz.sh --time 600 frame_decoder one target, ten minutes
#   scripts/fuzz.sh --runs 10000000 --jobs 2 every target to 10^7 executions, two at once
#   scripts/fuzz.sh --brief                  CI: build and run each for 10 s; when no fuzz
#                                            toolchain works here, say why and stop (exit 0)
#
# Each target starts from its seeds (fuzz/seeds/<target>, in the repository) and keeps
# what it finds in fuzz/corpus/<target> (not in the repository). A crash leaves its input
# in fuzz/artifacts/<target>/ and the run exits 1; replay it with
# `fuzz/target/x86_64-unknown-linux-gnu/release/<target> <file>`. Logs go to
# fuzz/logs/<target>.log; the summary table gives executions, time and rate per target.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1

limit=(-max_total_time=60)
jobs=1
brief=false
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) limit=(-max_total_time="$2"); shift 2 ;;
        --runs) limit=(-runs="$2"); shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --brief) brief=true; limit=(-max_total_time=10); shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

# Without a fuzz toolchain, CI says so and goes on; a person asking for a run is told.
cannot() {
    if $brief; then
        echo "== fuzzing skipped: $1"
        exit 0
    fi
    echo "cannot fuzz: $1" >&2
    exit 1
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || cannot "cargo-fuzz is not installed and cannot be installed"
fi
# The instrumentation cargo-fuzz asks of rustc, on an empty library compiled to an
# object only (linking needs libFuzzer's hooks, which the real build brings).
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'pub fn probe() {}' > "$probe/probe.rs"
rustc --crate-type lib --emit obj -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -o "$probe/probe.o" "$probe/probe.rs" \
    >/dev/null 2>&1 || cannot "rustc does not take the coverage instrumentation flags"

# A build failure from here on is the project's, and fails the run. The instrumented
# build keeps its own target directory, also when CI points CARGO_TARGET_DIR at the
# workspace's: its flags differ, so sharing would only rebuild both.
export CARGO_TARGET_DIR="$PWD/fuzz/target"
(cd fuzz && cargo fuzz build -O --sanitizer none)
bin=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
mkdir -p fuzz/logs

run_one() {
    local target=$1
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    "$bin/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" "${limit[@]}" \
        -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 \
        -max_len=65536 -rss_limit_mb=4096 -timeout=30 \
        > "fuzz/logs/$target.log" 2>&1
}

failed=()
running=0
for target in "${targets[@]}"; do
    echo "== fuzzing $target (${limit[*]})"
    run_one "$target" &
    pids[$!]=$target
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        if ! wait -n -p done_pid; then failed+=("${pids[$done_pid]}"); fi
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    if ! wait -n -p done_pid; then failed+=("${pids[$done_pid]}"); fi
    running=$((running - 1))
done

printf '\n%-18s %14s %9s %10s %8s  %s\n' target executions seconds "per second" corpus outcome
for target in "${targets[@]}"; do
    log="fuzz/logs/$target.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    outcome="no crash"
    for f in "${failed[@]}"; do
        if [ "$f" = "$target" ]; then outcome="FAILED: see $log and fuzz/artifacts/$target/"; fi
    done
    printf '%-18s %14s %9s %10s %8s  %s\n' "$target" "${runs:-?}" "${secs:-?}" "${rate:-?}" "$corpus" "$outcome"
done
[ ${#failed[@]} -eq 0 ]
