#!/usr/bin/env bash
# Write latency during an online backup: a release server on sled is
# loaded with 1 million exposed visitors and 5 million events (the memory
# bench's load), then wrk (1 thread, 8 connections, one durable event per
# request, benches/events.lua) runs for 10 s twice: alone, and while
# `offerlab backup --url` streams the whole store; then, as a control, for
# 10 s beside a process that only spins at the lowest priority Linux has
# (SCHED_IDLE): what any work sharing the cores costs the writes, before
# the backup's own part. Prints the p50 and p99 of each run, the p99
# ratios to the writes alone, and the backup's own time and size.
# Talks only to 127.0.0.1 and stops by itself.
# Run: bash benches/backup_load.sh   (OFFERLAB_BENCH_VISITORS=200000 for a shorter one)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
cargo build --release -q --bin offerlab
cargo bench --bench memory --no-run -q 2>/dev/null
memory=$(ls -t target/release/deps/memory-* | grep -v '\.d$' | head -1)
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$data"' EXIT
./target/release/offerlab serve --bind 127.0.0.1:18090 --data "$data/store" --workers 2 2>/dev/null >/dev/null &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18090/healthz >/dev/null && break; sleep 0.1; done
OFFERLAB_BENCH_URL=http://127.0.0.1:18090 OFFERLAB_BENCH_PID=$pid "$memory" | tail -1
latency() { awk '/^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print p50, p99}'; }
# A wrk latency ("1.36ms", "632.00us") in microseconds.
micros() { awk -v t="$1" 'BEGIN { n = t + 0; if (t ~ /us$/) print n; else if (t ~ /ms$/) print n * 1000; else print n * 1000000 }'; }
ratio() { echo "scale=1; $(micros "${2#* }") / $(micros "${1#* }")" | bc; }
alone=$(wrk -t1 -c8 -d10s --latency -s benches/events.lua http://127.0.0.1:18090 | latency)
start=$(date +%s.%N)
./target/release/offerlab backup --url http://127.0.0.1:18090 --to "$data/online.backup" > "$data/said" &
backup=$!
during=$(wrk -t1 -c8 -d10s --latency -s benches/events.lua http://127.0.0.1:18090 | latency)
wait $backup
took=$(echo "$(date +%s.%N) - $start" | bc)
# The control: a spinner at SCHED_IDLE, which the kernel runs only when
# no other thread wants the core; timeout ends it.
timeout 11 chrt --idle 0 bash -c 'while :; do :; done' &
spinner=$!
beside=$(wrk -t1 -c8 -d10s --latency -s benches/events.lua http://127.0.0.1:18090 | latency)
wait $spinner || true
echo "writes alone:          p50 p99 = $alone"
echo "writes during backup:  p50 p99 = $during (p99 ratio $(ratio "$alone" "$during"))"
echo "writes beside an idle-priority spinner: p50 p99 = $beside (p99 ratio $(ratio "$alone" "$beside"))"
echo "backup: $(cat "$data/said")"
echo "backup took ${took} s, $(stat -c %s "$data/online.backup") bytes"
