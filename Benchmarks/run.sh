#!/usr/bin/env bash
# Runs Micropay's benchmarks in release and keeps the results.
#
#   Benchmarks/run.sh                          # all benchmarks, MICROPAY_BENCH_SCALE=1.0 (10 M-payment batches)
#   MICROPAY_BENCH_SCALE=0.01 Benchmarks/run.sh  # a quick run (100 k payments)
#   Benchmarks/run.sh --filter 'chain steps.*'   # extra arguments go to `swift package benchmark`
#
# Environment: MICROPAY_BENCH_SCALE (default 1.0), MICROPAY_BENCH_RUNS
# (measured runs per end-to-end benchmark, default 3), MICROPAY_BENCH_CACHE
# (generated batches, default $TMPDIR/micropay-bench or /tmp/micropay-bench;
# about 3 GB at scale 1.0), MICROPAY_BENCH_THREADS (threads of the
# merchant's batch verifier, default 1).
#
# The run is stored as a package-benchmark baseline named after the date and
# scale (Benchmarks/.benchmarkBaselines/MicropayBenchmarks/<name>/results.json,
# the tool's own format), and Benchmarks/results/<name>/ receives:
#   run-info.txt   date, commit, scale, CPU, load before and after
#   run.log        the run's log (batch generation, sizes, any failed check)
#   raw.jsonl      every measured iteration: benchmark, items, seconds, rate
#   benchmarks.md  the tool's tables (p0..p100 of every metric), read back
#                  from the baseline without running again
#   summary.txt    summarize.py: medians, ratios to the naive baselines, mallocs
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
export MICROPAY_BENCH_SCALE="${MICROPAY_BENCH_SCALE:-1.0}"
name="${MICROPAY_BENCH_NAME:-run-$(date -u +%Y%m%dT%H%M%SZ)-scale${MICROPAY_BENCH_SCALE}}"
out="$here/results/$name"
mkdir -p "$out"

bench() {
    swift package --package-path "$here" --allow-writing-to-package-directory benchmark "$@"
}

echo "== Micropay benchmarks: scale $MICROPAY_BENCH_SCALE, runs ${MICROPAY_BENCH_RUNS:-3}, results in $out" >&2
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "scale: $MICROPAY_BENCH_SCALE runs: ${MICROPAY_BENCH_RUNS:-3} threads: ${MICROPAY_BENCH_THREADS:-1}"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "arguments: $*"
} > "$out/run-info.txt"

# Build first, so that the build's output and time stay out of the run.
swift build --package-path "$here" -c release --product MicropayBenchmarks 2>&1 | tail -3

export MICROPAY_BENCH_RESULTS="$out/raw.jsonl"
start=$(date +%s)
bench baseline update "$name" --no-progress "$@" 2>&1 | tee "$out/run.log"
echo "elapsed: $(( $(date +%s) - start )) s, load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/run-info.txt"

bench baseline read "$name" --format markdown --no-progress 2>/dev/null \
    | sed -n '/^## Baseline/,$p' > "$out/benchmarks.md"
python3 "$here/summarize.py" "$out" | tee "$out/summary.txt"
