#!/usr/bin/env bash
# What tracing costs (BENCHMARKS.md, "Tracing"): interleaved `hookd-bench`
# bursts with tracing off, on at sampling ratio 1.0, and on at 0.01,
# exporting over OTLP/HTTP to a sink on loopback that counts and discards
# (tests/otlp/receiver.py discard: no decoding, so the sink costs little).
# EVENTS (100000), ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-100000}
ROUNDS=${ROUNDS:-2}
cargo build -q --release -p hookd -p hookd-bench
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 tests/otlp/receiver.py "$port" discard >/dev/null &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT
sleep 0.5
work=$(mktemp -d)
summary() {
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("%.0f/s  hookd %.1f us  redis %.1f us  bench %.1f us  missing %d" % (
    r["deliveries_per_sec"], r["hookd_cpu_us_per_delivery"], r["redis_cpu_us_per_delivery"],
    r["bench_cpu_us_per_delivery"], r["missing"]), end="")
PY
}
exported() { curl -s "http://127.0.0.1:$port/spans"; }
for round in $(seq 1 "$ROUNDS"); do
  target/release/hookd-bench --scenario burst --events "$EVENTS" >"$work/off.json"
  echo "round $round, tracing off:  $(summary "$work/off.json")"
  for ratio in 1.0 0.01; do
    before=$(exported)
    target/release/hookd-bench --scenario burst --events "$EVENTS" \
      --set "HOOKD__TELEMETRY__OTLP_ENDPOINT=http://127.0.0.1:$port" \
      --set "HOOKD__TELEMETRY__SAMPLING_RATIO=$ratio" >"$work/on.json"
    echo "round $round, ratio $ratio:  $(summary "$work/on.json")  | sink before $before, after $(exported)"
  done
done
rm -rf "$work"
