#!/usr/bin/env bash
# Loopback load test: throughput and latency of GET /v1/assign beside
# GET /healthz of the same release server in the same run, with wrk
# (Debian's package). Talks only to 127.0.0.1 and stops by itself.
# Run: bash benches/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
cargo build --release -q
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$data"' EXIT
./target/release/offerlab serve --bind 127.0.0.1:18080 --data "$data" > "$data/addr" 2>/dev/null &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
run() { wrk -t2 -c64 -d10s --latency "http://127.0.0.1:18080$1"; }
health=$(run /healthz)
assign=$(run '/v1/assign?visitor_id=v-123&device=mobile')
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
pct() { echo "$1" | awk -v p="$2" '$1 == p {print $2}'; }
h=$(rps "$health"); a=$(rps "$assign")
echo "| endpoint | requests/s | p50 | p99 |"
echo "|---|---:|---:|---:|"
echo "| GET /healthz (baseline) | $h | $(pct "$health" 50%) | $(pct "$health" 99%) |"
echo "| GET /v1/assign (every committed test) | $a | $(pct "$assign" 50%) | $(pct "$assign" 99%) |"
echo
echo "throughput ratio assign/healthz: $(awk -v a="$a" -v h="$h" 'BEGIN {printf "%.2f", a / h}')"
