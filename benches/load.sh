#!/usr/bin/env bash
# Loopback load test with wrk (Debian's package), 2 threads, 64
# connections, 10 s per run, all in one run against release builds (the
# four rows the targets compare: median of three interleaved runs):
# - baseline: a bare actix-web server (examples/bare_actix.rs) doing the
#   least an assignment must (JSON body, two FNV passes, JSON reply);
# - offerlab's /healthz, POST /v1/assign with a new visitor each request
#   (benches/assign.lua), GET /v1/assign, and the GrowthBook SDK payload
#   with and without If-None-Match;
# - durable ingest: POST /v1/events with one event per request and with
#   batches of 100 (benches/events.lua), in events/s;
# - the server's resident memory (VmRSS) after all of it, and again 5 s
#   later, idle.
# Talks only to 127.0.0.1 and stops by itself.
# Run: bash benches/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
cargo build --release -q --bin offerlab --example bare_actix
data=$(mktemp -d)
trap 'kill $pid $bare 2>/dev/null; rm -rf "$data"' EXIT
./target/release/offerlab serve --bind 127.0.0.1:18080 --data "$data" > "$data/addr" 2>/dev/null &
pid=$!
./target/release/examples/bare_actix 127.0.0.1:18081 &
bare=$!
for port in 18080 18081; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done
run() { wrk -t2 -c64 -d10s --latency "$@"; }
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
base=http://127.0.0.1:18080
# The four rows the targets compare run three times, interleaved, and the
# run with the median requests/s is kept: on a noisy 2-core machine one
# 10 s run of /healthz alone moved by 15% between runs.
declare -a bh ba oh oa
for i in 1 2 3; do
  bh[$i]=$(run http://127.0.0.1:18081/healthz)
  ba[$i]=$(run -s benches/assign.lua http://127.0.0.1:18081)
  oh[$i]=$(run "$base/healthz")
  oa[$i]=$(run -s benches/assign.lua "$base")
done
pick() { # the output among three with the median requests/s
  local a b c; a=$(rps "$1"); b=$(rps "$2"); c=$(rps "$3")
  local m; m=$(printf '%s\n%s\n%s\n' "$a" "$b" "$c" | sort -g | sed -n 2p)
  if [ "$m" = "$a" ]; then echo "$1"; elif [ "$m" = "$b" ]; then echo "$2"; else echo "$3"; fi
}
bare_health=$(pick "${bh[1]}" "${bh[2]}" "${bh[3]}")
bare_assign=$(pick "${ba[1]}" "${ba[2]}" "${ba[3]}")
health=$(pick "${oh[1]}" "${oh[2]}" "${oh[3]}")
assign=$(pick "${oa[1]}" "${oa[2]}" "${oa[3]}")
assign_get=$(run "$base/v1/assign?visitor_id=v-123&attr.device=mobile")
bytes=$(curl -s "$base/api/features/bench" | wc -c)
etag=$(curl -sI "$base/api/features/bench" | awk 'tolower($1) == "etag:" {print $2}' | tr -d '\r')
features=$(run "$base/api/features/bench")
unchanged=$(run -H "If-None-Match: $etag" "$base/api/features/bench")
single=$(run -s benches/events.lua "$base" -- 1)
batches=$(run -s benches/events.lua "$base" -- 100)
rss() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
rss=$(rss)
# Read again once idle, as the memory bench does: the allocator returns
# pages a load freed after 100 ms unused (src/main.rs, MALLOC_CONF).
sleep 5
rss_idle=$(rss)

pct() { echo "$1" | awk -v p="$2" '$1 == p {print $2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
row() { echo "| $1 | $(rps "$2") | $(pct "$2" 50%) | $(pct "$2" 99%) |"; }
echo "| endpoint | requests/s | p50 | p99 |"
echo "|---|---:|---:|---:|"
row "bare actix-web: GET /healthz (baseline)" "$bare_health"
row "bare actix-web: POST /v1/assign (JSON, two FNV passes)" "$bare_assign"
row "offerlab: GET /healthz" "$health"
row "offerlab: POST /v1/assign, new visitor each request, every committed test" "$assign"
row "offerlab: GET /v1/assign (every committed test)" "$assign_get"
row "offerlab: GET /api/features/{key} ($bytes bytes)" "$features"
row "offerlab: GET /api/features/{key}, If-None-Match (304)" "$unchanged"
row "offerlab: POST /v1/events, one event per request (durable)" "$single"
row "offerlab: POST /v1/events, batches of 100 (durable; requests/s)" "$batches"
echo
echo "durable ingest: $(rps "$single" | awk '{printf "%.0f", $1}') events/s one at a time, $(rps "$batches" | awk '{printf "%.0f", $1 * 100}') events/s in batches of 100"
echo "server resident memory after the run: $rss MiB, and $rss_idle MiB 5 s later"
echo "offerlab /healthz / bare /healthz: $(ratio "$(rps "$health")" "$(rps "$bare_health")")"
echo "offerlab POST /v1/assign / offerlab /healthz: $(ratio "$(rps "$assign")" "$(rps "$health")")"
echo "offerlab POST /v1/assign / bare POST /v1/assign: $(ratio "$(rps "$assign")" "$(rps "$bare_assign")")"
echo "features / offerlab /healthz: $(ratio "$(rps "$features")" "$(rps "$health")")"
echo "features 304 / offerlab /healthz: $(ratio "$(rps "$unchanged")" "$(rps "$health")")"
all() { echo "$(rps "$1") $(rps "$2") $(rps "$3")"; }
echo "the three runs (requests/s): bare /healthz $(all "${bh[@]}"); bare POST $(all "${ba[@]}"); /healthz $(all "${oh[@]}"); POST /v1/assign $(all "${oa[@]}")"
