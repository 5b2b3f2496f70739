#!/usr/bin/env bash
# History shipped to PostgreSQL under load (BENCHMARKS.md, "History on
# PostgreSQL"). A PostgreSQL cluster of its own (initdb, a free loopback
# port), then interleaved `hookd-bench` bursts without and with
# [history] postgres_url. For each run with it: rows stored by the end of
# the burst, records stored per second, lag from the record's write in
# Redis to its row (p50, p99), PostgreSQL's CPU per delivery.
# Then, with QUERY_ROWS (default 10,000,000) attempt rows and as many
# delivery rows over 30 days: the failed-deliveries page of a workspace and
# one delivery with its attempts, timed with EXPLAIN ANALYZE.
# EVENTS (100000), ROUNDS (2), QUERY_ROWS (0 skips the query part).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-100000}
ROUNDS=${ROUNDS:-2}
QUERY_ROWS=${QUERY_ROWS:-10000000}
cargo build -q --release -p hookd -p hookd-bench

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d /tmp/hookd-bench-pg.XXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$work"
cleanup() {
  if [ -n "${pm:-}" ]; then
    kill -INT "$pm" 2>/dev/null || true
    while kill -0 "$pm" 2>/dev/null; do sleep 0.2; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
as_pg "$bin/initdb" -D "$work/data" -U hookd --auth=trust -E UTF8 --no-sync >/dev/null
as_pg "$bin/postgres" -D "$work/data" -p "$port" -k "$work" -c listen_addresses=127.0.0.1 \
  -c shared_buffers=512MB -c max_wal_size=4GB >"$work/log" 2>&1 &
until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; do sleep 0.2; done
pm=$(head -1 "$work/data/postmaster.pid")  # (not $!: that is the subshell running as_pg)
"$bin/createdb" -h 127.0.0.1 -p "$port" -U hookd hookd
url="postgres://hookd@127.0.0.1:$port/hookd"
psql_() { psql -X -q -t -A -h 127.0.0.1 -p "$port" -U hookd hookd "$@"; }
HOOKD__HISTORY__POSTGRES_URL=$url target/release/hookd migrate >/dev/null

# PostgreSQL's CPU seconds: the postmaster, its exited children, live children.
pg_cpu() {
  python3 - "$pm" <<'EOF'
import os, sys
pm = sys.argv[1]
tick = os.sysconf("SC_CLK_TCK")
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()
s = stat(pm)
total = sum(int(x) for x in s[11:15])
for d in os.listdir("/proc"):
    if d.isdigit() and d != pm:
        try:
            t = stat(d)
        except OSError:
            continue
        if t[1] == pm:
            total += int(t[11]) + int(t[12])
print(total / tick)
EOF
}

summary() {
  python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print("%.0f/s  hookd %.1f us  redis %.1f us  bench %.1f us  redis %.0f B/delivery  missing %d" % (
    r["deliveries_per_sec"], r["hookd_cpu_us_per_delivery"], r["redis_cpu_us_per_delivery"],
    r["bench_cpu_us_per_delivery"], r["redis_bytes_per_delivery"], r["missing"]), end="")
EOF
}

for round in $(seq 1 "$ROUNDS"); do
  target/release/hookd-bench --scenario burst --events "$EVENTS" >"$work/off.json"
  echo "round $round, redis only:   $(summary "$work/off.json")"
  psql_ -c "TRUNCATE hookd_deliveries, hookd_attempts, hookd_envelopes"
  before=$(pg_cpu)
  target/release/hookd-bench --scenario burst --events "$EVENTS" \
    --set "HOOKD__HISTORY__POSTGRES_URL=$url" >"$work/on.json"
  after=$(pg_cpu)
  stored=$(psql_ -c "SELECT count(*) FROM hookd_deliveries")
  stats=$(psql_ -F ' ' -c "SELECT round(count(*) / greatest((max(stored_ms) - min(stored_ms)) / 1000.0, 0.001)),
      percentile_cont(0.5) WITHIN GROUP (ORDER BY stored_ms - recorded_ms),
      percentile_cont(0.99) WITHIN GROUP (ORDER BY stored_ms - recorded_ms) FROM hookd_deliveries")
  read -r rate p50 p99 <<<"$stats"
  pg_us=$(python3 -c "print(f'{($after - $before) * 1e6 / $EVENTS:.1f}')")
  echo "round $round, to postgres:  $(summary "$work/on.json")  | stored by the end $stored/$EVENTS, $rate records/s, lag p50 ${p50} ms p99 ${p99} ms, postgres $pg_us µs/delivery"
done

[ "$QUERY_ROWS" = 0 ] && exit 0
echo "loading $QUERY_ROWS deliveries and attempts over 30 days (100 workspaces, 1% failed) ..."
now=$(date +%s%3N)
psql_ -c "TRUNCATE hookd_deliveries, hookd_attempts, hookd_envelopes"
# The day partitions first (hookd makes them as records arrive).
for d in $(seq 0 31); do
  day=$(( (now / 86400000) - d ))
  name=$(date -u -d "@$(( day * 86400 ))" +%Y%m%d)
  for t in hookd_deliveries hookd_attempts; do
    psql_ -c "CREATE TABLE IF NOT EXISTS ${t}_$name PARTITION OF $t FOR VALUES FROM ($(( day * 86400000 ))) TO ($(( (day + 1) * 86400000 )))"
  done
done
start=$(( now - 30 * 86400000 ))
load_start=$(date +%s)
psql_ -c "INSERT INTO hookd_deliveries (created_ms, id, workspace, endpoint_id, event_id, event_type, status, attempts_made, recorded_ms)
  SELECT $start + i * (30::bigint * 86400000 / $QUERY_ROWS), 'dlv_' || ($start + i * (30::bigint * 86400000 / $QUERY_ROWS)) || '-0_ep_' || (i % 1000),
         'ws_' || (i % 100), 'ep_' || (i % 1000), 'evt_' || i, 'order.created',
         CASE WHEN i % 100 = 7 THEN 'failed' ELSE 'succeeded' END, 1, $start
    FROM generate_series(1, $QUERY_ROWS) AS i"
psql_ -c "INSERT INTO hookd_attempts (created_ms, delivery_id, number, attempt)
  SELECT created_ms, id, 1, '{\"number\":1,\"started_at_ms\":' || created_ms || ',\"duration_ms\":3,\"succeeded\":true,\"status_code\":200}'
    FROM hookd_deliveries"
psql_ -c "ANALYZE"
echo "loaded in $(( $(date +%s) - load_start )) s; database $(psql_ -c "SELECT pg_size_pretty(pg_database_size('hookd'))")"
one=$(psql_ -c "SELECT id || ' ' || created_ms FROM hookd_deliveries WHERE workspace = 'ws_7' ORDER BY created_ms DESC LIMIT 1 OFFSET 5000")
read -r one_id one_ms <<<"$one"
timed() { psql_ -c "EXPLAIN (ANALYZE, FORMAT JSON) $1" | python3 -c 'import json,sys; p=json.load(sys.stdin)[0]; print("%.2f ms" % (p["Planning Time"] + p["Execution Time"]))'; }
for run in 1 2 3; do
  echo "run $run: failed page of a workspace (51 rows): $(timed "SELECT created_ms, id, workspace, endpoint_id, event_id, event_type, status, attempts_made FROM hookd_deliveries WHERE true AND workspace = 'ws_7' AND status = 'failed' ORDER BY created_ms DESC, id DESC LIMIT 51")"
  echo "run $run: a workspace's newest page (51 rows): $(timed "SELECT created_ms, id, workspace, endpoint_id, event_id, event_type, status, attempts_made FROM hookd_deliveries WHERE true AND workspace = 'ws_7' ORDER BY created_ms DESC, id DESC LIMIT 51")"
  echo "run $run: one delivery: $(timed "SELECT created_ms, id, workspace, endpoint_id, event_id, event_type, status, attempts_made FROM hookd_deliveries WHERE true AND created_ms >= $one_ms AND created_ms <= $one_ms ORDER BY created_ms DESC, id DESC LIMIT 1001"), its attempts: $(timed "SELECT attempt FROM hookd_attempts WHERE created_ms = $one_ms AND delivery_id = '$one_id' ORDER BY number")"
done
