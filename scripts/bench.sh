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
  run burst-cluster --events 200000 --cluster-masters 3 --partitions 6 --workspaces 12
  echo "]"
} > "$out.tmp"
python3 - "$out.tmp" "$out" <<'PY'
import json, sys, platform, os
results = json.load(open(sys.argv[1]))
cpu = next((l.split(':',1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
doc = {"machine": {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release()}, "results": results}
json.dump(doc, open(sys.argv[2], 'w'), indent=2)
rows = ["| scenario | events | endpoints | deliveries/s | p50 ms | p99 ms | max ms | missing | duplicates | hookd peak RSS MB | CPU µs/delivery: hookd, Redis, bench | Redis B/delivery |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for r in results:
    eps = f"{r['endpoints']}" + (f" + {r['slow_endpoints']} slow" if r['slow_endpoints'] else "")
    lat = r['latency_ms']
    rows.append(f"| {r['scenario']} | {r['events']} | {eps} | {r['deliveries_per_sec']:.0f} | {lat['p50']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} | {r['missing']} | {r['duplicates']} | {r['hookd_peak_rss_mb']:.1f} | {r['hookd_cpu_us_per_delivery']:.0f}, {r['redis_cpu_us_per_delivery']:.0f}, {r['bench_cpu_us_per_delivery']:.0f} | {r['redis_bytes_per_delivery']:.0f} |")
table = "\n".join(rows)
open(sys.argv[2].replace('.json', '.md'), 'w').write(f"Machine: {os.cpu_count()} CPUs, {cpu}\n\n{table}\n")
print(table)
PY
rm -f "$out.tmp"
echo "wrote $out and ${out%.json}.md" >&2
