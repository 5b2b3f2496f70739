#!/usr/bin/env bash
# make bench: runs the standard scenarios against a release build and writes
# bench/results/<date>.json (all results) and bench/results/<date>.md (a table).
# Each scenario starts its own redis-server, receivers and hookd (see crates/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p hookd -p hookd-bench
bench=target/release/hookd-bench
stamp=$(date -u +%Y-%m-%d)
out=bench/results/$stamp.json
mkdir -p bench/results
run() { echo "running $1 ..." >&2; "$bench" --scenario "$@"; }
{
  echo "["
  run burst --events 200000; echo ","
  run fanout --events 20000 --endpoints 10; echo ","
  run latency --events 30000 --rate 1000; echo ","
  run slow-baseline --events 30000; echo ","
  run slow-mixed --events 30000 --slow-endpoints 1 --slow-ms 2000; echo ","
  run burst-cluster --events 200000 --cluster-masters 3 --partitions 6 --workspaces 12; echo ","
  # Ordered delivery per key: the same keyed events, unordered then ordered,
  # and one key alone (one delivery at a time by definition).
  run keyed-unordered --events 200000 --ordering-keys 1000; echo ","
  run ordered --events 200000 --ordering-keys 1000 --ordered --timeout-secs 300; echo ","
  run ordered-one-key --events 10000 --ordering-keys 1 --ordered --timeout-secs 300
  echo "]"
} > "$out.tmp"
# Fairness: four quiet workspaces (50 events/s each) beside one that bursts,
# live and as a backlog waiting at start-up.
{
  echo "["
  run noisy-neighbour --events 200000; echo ","
  run noisy-backlog --events 200000
  echo "]"
} > "$out.fair.tmp"
python3 - "$out.tmp" "$out" "$out.fair.tmp" <<'PY'
import json, sys, platform, os
results = json.load(open(sys.argv[1]))
fairness = json.load(open(sys.argv[3]))
cpu = next((l.split(':',1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
doc = {"machine": {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release()}, "results": results, "fairness": fairness}
json.dump(doc, open(sys.argv[2], 'w'), indent=2)
rows = ["| scenario | events | endpoints | deliveries/s | p50 ms | p99 ms | max ms | missing | duplicates | hookd peak RSS MB | CPU µs/delivery: hookd, Redis, bench | Redis B/delivery |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for r in results:
    eps = f"{r['endpoints']}" + (f" + {r['slow_endpoints']} slow" if r['slow_endpoints'] else "")
    lat = r['latency_ms']
    rows.append(f"| {r['scenario']} | {r['events']} | {eps} | {r['deliveries_per_sec']:.0f} | {lat['p50']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} | {r['missing']} | {r['duplicates']} | {r['hookd_peak_rss_mb']:.1f} | {r['hookd_cpu_us_per_delivery']:.0f}, {r['redis_cpu_us_per_delivery']:.0f}, {r['bench_cpu_us_per_delivery']:.0f} | {r['redis_bytes_per_delivery']:.0f} |")
rows += ["", "| fairness scenario | burst events | noisy drain/s | quiet alone p50/p99 ms | quiet during burst p50/p99/max ms | quiet missing | CPU µs/delivery: hookd, Redis |",
         "|---|---|---|---|---|---|---|"]
for r in fairness:
    alone, during = r['quiet_alone_ms'], r['quiet_during_burst_ms']
    a = f"{alone['p50']:.1f} / {alone['p99']:.1f}" if alone['events'] else "-"
    rows.append(f"| {r['scenario']} | {r['events']} | {r['noisy_deliveries_per_sec']:.0f} | {a} | {during['p50']:.1f} / {during['p99']:.1f} / {during['max']:.1f} | {alone['missing'] + during['missing']} | {r['hookd_cpu_us_per_delivery']:.0f}, {r['redis_cpu_us_per_delivery']:.0f} |")
table = "\n".join(rows)
open(sys.argv[2].replace('.json', '.md'), 'w').write(f"Machine: {os.cpu_count()} CPUs, {cpu}\n\n{table}\n")
print(table)
PY
rm -f "$out.tmp" "$out.fair.tmp"
echo "wrote $out and ${out%.json}.md" >&2
