#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against a real hookd's /openapi.json with a
# valid admin key: a redis-server and hookd of its own on free loopback ports,
# every operation fuzzed on the key's workspace. Fails on any 5xx, an
# undocumented status code, a wrong content type, or a response that does not
# match its schema. EXAMPLES (default 50) sets the examples per operation.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import schemathesis' 2>/dev/null || python3 -m pip install -q 'schemathesis==4.32.5'
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

export HOOKD__REDIS__URL="redis://127.0.0.1:$redis_port"
export HOOKD__ADMIN__BIND="127.0.0.1:$admin_port"
export HOOKD__ADMIN__RATE_LIMIT=100000000
export HOOKD__LOG__LEVEL=warn
./target/debug/hookd serve &
hookd_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$admin_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
key=$(./target/debug/hookd keys create --workspace st --scope admin --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
printf '[parameters]\n"path.ws" = "st"\n' > "$work/schemathesis.toml"
cd "$work"
schemathesis run "http://127.0.0.1:$admin_port/openapi.json" \
  -H "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples "${EXAMPLES:-50}" --generation-deterministic
