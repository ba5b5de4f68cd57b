#!/usr/bin/env bash
# Does the dashboard cost ingestion anything? Runs the same `contrail bench
# ingest` load twice against a fresh local node: alone, then while VIEWERS
# signed-in dashboards (default 5) keep the report of the loaded tenant open
# with auto-refresh (a partial page every 5 s each, as the page's script
# does), and the admin's tenants page likewise. Prints both reports and the
# dashboard's own page times.
#
#   [SERVE_ARGS=...] scripts/bench-dashboard.sh [bench ingest flags...]     e.g. --rate 10000 --duration 20s
#
# SERVE_ARGS are added to `contrail serve`; ALONE=0 skips the run alone.
# CLIENTS=N adds N report API clients that ask, back to back, for today's
# top 10 of one dimension after another (no dashboard cache in between).
set -euo pipefail
cd "$(dirname "$0")/.."
viewers=${VIEWERS:-5}
bin=$(mktemp -d)/contrail
go build -o "$bin" ./cmd/contrail
data=$(mktemp -d)
port=${PORT:-18556}
base="http://127.0.0.1:$port"
"$bin" serve --data-dir "$data" --http "127.0.0.1:$port" --log-level warn ${SERVE_ARGS:-} &
pid=$!
jars=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$jars"' EXIT
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
"$bin" tenant create bench --server "$base" --data-dir "$data" >/dev/null
token=$(cat "$data/admin-token")
tenant=$(curl -sf -H "Authorization: Bearer $token" "$base/api/v1/tenants" | grep -o '"id": *"tn_[^"]*"' | head -1 | cut -d'"' -f4)

# signin JAR: signs the admin in and opens the tenant.
signin() {
  local jar=$1 tok csrf
  tok=$(curl -sf -c "$jar" -b "$jar" "$base/signin" | sed -n 's/.*name="_csrf" value="\([^"]*\)".*/\1/p')
  curl -sf -o /dev/null -c "$jar" -b "$jar" --data-urlencode "_csrf=$tok" --data-urlencode "key=$token" "$base/signin"
  csrf=$(curl -sf -c "$jar" -b "$jar" "$base/tenants" | sed -n 's/.*name="csrf-token" content="\([^"]*\)".*/\1/p')
  curl -sf -o /dev/null -c "$jar" -b "$jar" --data-urlencode "_csrf=$csrf" "$base/tenants/$tenant/open"
}

run() {
  "$bin" bench ingest --url "$base" --server "$base" --tenant bench --data-dir "$data" --quiet "$@"
}

echo "cores=$(nproc) $(date -u +%Y-%m-%dT%H:%MZ) viewers=$viewers"
if [ "${ALONE:-1}" != 0 ]; then
  echo "== ingest alone"
  run "$@"
fi
clients=${CLIENTS:-0}
echo "== ingest with $viewers dashboards refreshing every 5 s and $clients report API clients"
for i in $(seq "$viewers"); do signin "$jars/$i"; done
stop=$(mktemp)
pids=()
from=$(date -u +%Y-%m-%dT00:00:00Z)
to=$(date -u -d tomorrow +%Y-%m-%dT00:00:00Z)
for i in $(seq "$clients"); do
  (while [ -e "$stop" ]; do
     for dim in page referrer channel utm_source browser os device country; do
       [ -e "$stop" ] || break
       curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer $token" \
         "$base/api/v1/reports/top?tenant=$tenant&dimension=$dim&limit=10&from=$from&to=$to" >>"$jars/api"
     done
   done) &
  pids+=($!)
done
for i in $(seq "$viewers"); do
  (while [ -e "$stop" ]; do
     curl -s -o /dev/null -w "%{time_total}\n" -b "$jars/$i" -H "X-Contrail-Partial: 1" "$base/report?range=today" >>"$jars/times"
     curl -s -o /dev/null -b "$jars/$i" -H "X-Contrail-Partial: 1" "$base/tenants"
     sleep 5
   done) &
  pids+=($!)
done
run "$@"
rm -f "$stop"
wait "${pids[@]}" 2>/dev/null || true
if [ -s "$jars/api" ]; then
  sort -n "$jars/api" | awk '{a[NR]=$1} END {printf "report API (top 10, today) under load: %d answers, median %.1f ms, max %.1f ms\n", NR, a[int((NR+1)/2)]*1000, a[NR]*1000}'
fi
if [ -s "$jars/times" ]; then
  sort -n "$jars/times" | awk '{a[NR]=$1} END {printf "report page (today) under load: %d renders, median %.1f ms, max %.1f ms\n", NR, a[int((NR+1)/2)]*1000, a[NR]*1000}'
fi
