#!/usr/bin/env bash
# Writes the admin API's OpenAPI document to $1 (default: stdout), from a
# hookd of its own (a redis-server on a free loopback port), so CI and the
# tests check the document the server really serves.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bin hookd
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port); admin_port=$(free_port)
work=$(mktemp -d)
cleanup() {
  if [ -n "${hookd_pid:-}" ]; then kill "$hookd_pid" 2>/dev/null || true; wait "$hookd_pid" 2>/dev/null || true; fi
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --daemonize yes >/dev/null
HOOKD__REDIS__URL="redis://127.0.0.1:$redis_port" HOOKD__ADMIN__BIND="127.0.0.1:$admin_port" \
  HOOKD__LOG__LEVEL=warn ./target/debug/hookd serve 2>/dev/null &
hookd_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$admin_port/openapi.json" -o "$work/openapi.json" 2>/dev/null && break
  sleep 0.1
done
if [ -n "${1:-}" ]; then cp "$work/openapi.json" "$1"; else cat "$work/openapi.json"; fi
