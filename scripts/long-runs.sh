#!/usr/bin/env bash
# The long runs on record (issue 21): 10,000 simulation seeds, 100 server SIGKILLs
# under concurrent sync, and 10^7 executions of every fuzz target, in release builds.
# Prints each run's own summary line and keeps the logs in target/long-runs/<time>/.
#
#   scripts/long-runs.sh                     everything, at the sizes above
#   SEEDS=1000 KILLS=10 FUZZ_RUNS=100000 scripts/long-runs.sh    smaller
#   scripts/long-runs.sh simulation kills    some of: simulation kills fuzz
#
# On two cores the whole of it takes hours; the simulation runs in two shards at once.
set -euo pipefail
cd "$(dirname "$0")/.."

seeds=${SEEDS:-10000}
kills=${KILLS:-100}
fuzz_runs=${FUZZ_RUNS:-10000000}
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(simulation kills fuzz)
logs="target/long-runs/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$logs"
summary="$logs/summary.txt"
status=0

wants() { [[ " ${parts[*]} " == *" $1 "* ]]; }

if wants simulation || wants kills; then
    cargo build --release -p branchline-tests --tests --bins
fi

if wants simulation; then
    echo "== simulation: $seeds seeds in two shards"
    half=$((seeds / 2))
    started=$(date +%s)
    BRANCHLINE_SIM_FIRST_SEED=0 BRANCHLINE_SIM_SEEDS=$half \
        cargo test -q --release -p branchline-tests --test simulation -- --nocapture \
        > "$logs/simulation-0.log" 2>&1 &
    first=$!
    BRANCHLINE_SIM_FIRST_SEED=$half BRANCHLINE_SIM_SEEDS=$((seeds - half)) \
        cargo test -q --release -p branchline-tests --test simulation -- --nocapture \
        > "$logs/simulation-1.log" 2>&1 &
    second=$!
    wait "$first" || status=1
    wait "$second" || status=1
    {
        echo "simulation, seeds 0..$half and $half..$seeds, $(( $(date +%s) - started )) s:"
        grep -h '^simulation:\|FAILED' "$logs"/simulation-*.log
    } | tee -a "$summary"
fi

if wants kills; then
    echo "== $kills server SIGKILLs under concurrent sync"
    BRANCHLINE_CRASH_KILLS=$kills \
        cargo test -q --release -p branchline-tests --test crashes \
        server_killed_repeatedly_during_concurrent_syncs -- --nocapture \
        > "$logs/kills.log" 2>&1 || status=1
    grep -h 'server kills survived\|FAILED\|Error' "$logs/kills.log" | tee -a "$summary"
fi

if wants fuzz; then
    echo "== fuzzing: $fuzz_runs executions per target"
    scripts/fuzz.sh --runs "$fuzz_runs" --jobs 2 > "$logs/fuzz.log" 2>&1 || status=1
    sed -n '/^target /,$p' "$logs/fuzz.log" | tee -a "$summary"
fi

echo "logs and summary: $logs"
exit "$status"
