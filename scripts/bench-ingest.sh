#!/usr/bin/env bash
# Runs `contrail bench ingest` against a fresh local node and prints the report.
#
#   scripts/bench-ingest.sh [--durability default|strict] [bench ingest flags...]
#   scripts/bench-ingest.sh --campaign --rate 3000 --duration 10s
#
# The node gets its own temporary data directory and port, and is stopped at
# the end. Everything runs on this machine: server and load generator share
# its cores, as BENCHMARKS.md states. The node lets campaign webhooks reach
# loopback addresses (--deliver-allow-private-networks), so that --campaign
# (passed on to bench ingest) can publish a campaign whose webhook goes to
# the receiver bench ingest runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
durability=default
if [ "${1:-}" = "--durability" ]; then durability=$2; shift 2; fi
bin=$(mktemp -d)/contrail
go build -o "$bin" ./cmd/contrail
data=$(mktemp -d)
port=${PORT:-18555}
"$bin" serve --data-dir "$data" --http "127.0.0.1:$port" --durability "$durability" --log-level warn \
  --deliver-allow-private-networks ${SERVE_ARGS:-} &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
"$bin" tenant create bench --server "http://127.0.0.1:$port" --data-dir "$data" >/dev/null
echo "durability=$durability cores=$(nproc) $(date -u +%Y-%m-%dT%H:%MZ)"
"$bin" bench ingest --url "http://127.0.0.1:$port" --tenant bench --data-dir "$data" --quiet "$@"
