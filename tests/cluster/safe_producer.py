"""A producer that counts an event as published only once a replica has it
(docs/producers/README.md, "Making sure an event is kept"): XADD and
WAIT 1 on one connection to the master of the stream's slot; on an error
(a master killed, a slot moved) or a WAIT that no replica answered, it
publishes the same event again (same id: delivered once). Keeps going
through a failover.

argv: <seed host:port> <partitions> <workspaces> <events per workspace> <pause ms>
Prints each kept event id on its own line, then `retries <n>` on stderr.
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples/producers/python"))
from partition import stream  # noqa: E402

from redis.cluster import RedisCluster  # noqa: E402

seed, partitions, workspaces, per, pause = sys.argv[1:6]
host, port = seed.split(":")
r = RedisCluster(host=host, port=int(port), decode_responses=True)
retries = 0
for i in range(int(per)):
    for w in range(int(workspaces)):
        ws = f"ws_{w}"
        key = stream("hookd:events", ws, int(partitions))
        event_id = f"safe-{ws}-{i}"
        deadline = time.time() + 60
        while True:
            try:
                node = r.get_node_from_key(key)
                client = r.get_redis_connection(node)
                pipe = client.pipeline(transaction=False)
                pipe.xadd(key, {"type": "card.created", "workspace": ws, "id": event_id,
                                "data": json.dumps({"i": i})})
                pipe.execute_command("WAIT", 1, 1000)
                _, replicas = pipe.execute()
                if int(replicas) >= 1:
                    break
            except Exception:  # noqa: BLE001 - a failover in progress: try again
                pass
            retries += 1
            if time.time() > deadline:
                sys.exit(f"could not publish {event_id} for a minute")
            time.sleep(0.2)
            try:
                r.nodes_manager.initialize()
            except Exception:  # noqa: BLE001
                pass
        print(event_id, flush=True)
        time.sleep(int(pause) / 1000)
print(f"retries {retries}", file=sys.stderr)
