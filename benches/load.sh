#!/usr/bin/env bash
# Loopback load test: throughput and latency of GET /v1/assign and of the
# GrowthBook SDK payload (with and without If-None-Match) beside
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
run() { wrk -t2 -c64 -d10s --latency "$@"; }
base=http://127.0.0.1:18080
health=$(run "$base/healthz")
assign=$(run "$base/v1/assign?visitor_id=v-123&device=mobile")
bytes=$(curl -s "$base/api/features/bench" | wc -c)
etag=$(curl -sI "$base/api/features/bench" | awk 'tolower($1) == "etag:" {print $2}' | tr -d '\r')
features=$(run "$base/api/features/bench")
unchanged=$(run -H "If-None-Match: $etag" "$base/api/features/bench")
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
pct() { echo "$1" | awk -v p="$2" '$1 == p {print $2}'; }
h=$(rps "$health"); a=$(rps "$assign"); f=$(rps "$features"); u=$(rps "$unchanged")
echo "| endpoint | requests/s | p50 | p99 |"
echo "|---|---:|---:|---:|"
echo "| GET /healthz (baseline) | $h | $(pct "$health" 50%) | $(pct "$health" 99%) |"
echo "| GET /v1/assign (every committed test) | $a | $(pct "$assign" 50%) | $(pct "$assign" 99%) |"
echo "| GET /api/features/{key} ($bytes bytes) | $f | $(pct "$features" 50%) | $(pct "$features" 99%) |"
echo "| GET /api/features/{key}, If-None-Match (304) | $u | $(pct "$unchanged" 50%) | $(pct "$unchanged" 99%) |"
echo
echo "throughput ratio assign/healthz: $(awk -v a="$a" -v h="$h" 'BEGIN {printf "%.2f", a / h}')"
echo "throughput ratio features/healthz: $(awk -v a="$f" -v h="$h" 'BEGIN {printf "%.2f", a / h}')"
echo "throughput ratio features 304/healthz: $(awk -v a="$u" -v h="$h" 'BEGIN {printf "%.2f", a / h}')"
