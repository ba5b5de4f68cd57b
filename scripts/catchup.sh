#!/usr/bin/env bash
# Runs `contrail bench catchup` against a fresh local node and prints the report.
#
#   scripts/catchup.sh [--fair true|false] [bench catchup flags...]
#   scripts/catchup.sh --fair false --events 200000
#
# The node gets its own temporary data directory and port, and is stopped at
# the end; server and load generator share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
fair=true
if [ "${1:-}" = "--fair" ]; then fair=$2; shift 2; fi
bin=$(mktemp -d)/contrail
go build -o "$bin" ./cmd/contrail
data=$(mktemp -d)
port=${PORT:-18556}
"$bin" serve --data-dir "$data" --http "127.0.0.1:$port" --fair="$fair" --log-level warn ${SERVE_ARGS:-} &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
"$bin" tenant create bench --server "http://127.0.0.1:$port" --data-dir "$data" >/dev/null
echo "fair=$fair cores=$(nproc) $(date -u +%Y-%m-%dT%H:%MZ)"
"$bin" bench catchup --url "http://127.0.0.1:$port" --tenant bench --data-dir "$data" --quiet "$@"
