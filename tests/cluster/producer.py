"""A producer in Python following docs/producers/README.md on Redis Cluster:
the partition of each workspace by FNV-1a, plain XADD with redis-py's
cluster client, then WAIT for a replica before counting an event as kept.

argv: <seed host:port> <partitions> <workspaces> <events per workspace> <id prefix>
Prints the number of events published.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples/producers/python"))
from partition import stream  # noqa: E402

from redis.cluster import RedisCluster  # noqa: E402

seed, partitions, workspaces, per, prefix = sys.argv[1:6]
host, port = seed.split(":")
r = RedisCluster(host=host, port=int(port), decode_responses=True)
published = 0
for w in range(int(workspaces)):
    ws = f"ws_{w}"
    for i in range(int(per)):
        key = stream("hookd:events", ws, int(partitions))
        r.xadd(key, {
            "type": "card.created",
            "workspace": ws,
            "id": f"{prefix}-{ws}-{i}",
            "data": json.dumps({"n": i}),
        })
        published += 1
print(published)
