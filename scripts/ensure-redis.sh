#!/usr/bin/env bash
# Makes sure a Redis answers at $HOOKD__REDIS__URL (default redis://127.0.0.1:6379):
# when none does, starts a local redis-server on loopback with AOF on, its
# files under .hookd-run/. Installs redis-server from Debian's packages when missing.
set -euo pipefail
url="${HOOKD__REDIS__URL:-redis://127.0.0.1:6379}"
hostport="${url#redis://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$hostport" ] && port=6379

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found; installing it (Debian package redis-server)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; fi
fi

if redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1; then
  aof=$(redis-cli -h "$host" -p "$port" info persistence 2>/dev/null | tr -d '\r' | sed -n 's/^aof_enabled://p')
  if [ "$aof" = 0 ]; then
    echo "Redis answers at $host:$port (already running, not started here), WITHOUT its append-only file: fine to try hookd, not to keep events (see docs/operations.md, Reliability)" >&2
  else
    echo "Redis answers at $host:$port (already running, not started here)" >&2
  fi
  exit 0
fi
case "$host" in
  127.*|localhost|::1) ;;
  *) echo "Redis at $host:$port does not answer, and it is not local: start it yourself" >&2; exit 1 ;;
esac
dir="$(pwd)/.hookd-run"; mkdir -p "$dir"
echo "starting redis-server on $host:$port (data in $dir)" >&2
redis-server --daemonize yes --bind "$host" --port "$port" --dir "$dir" \
  --appendonly yes --appendfsync everysec --save "" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
for _ in $(seq 50); do
  redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "redis-server did not start; see $dir/redis.log" >&2
exit 1
