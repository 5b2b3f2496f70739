"""The partition of a workspace, as hookd computes it (docs/producers/README.md).

    python3 partition.py ws_acme 6          -> prints 4 (and the stream, hookd:events:p4)
    python3 partition.py --check VECTORS    -> checks the shared vectors
"""
import json
import sys


def partition(workspace: str, partitions: int) -> int:
    """FNV-1a (32-bit) of the workspace id's UTF-8 bytes, modulo the count."""
    h = 0x811C9DC5
    for b in workspace.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h % partitions


def stream(base: str, workspace: str, partitions: int) -> str:
    """The stream to XADD to: the base name itself with one partition."""
    return base if partitions == 1 else f"{base}:p{partition(workspace, partitions)}"


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        vectors = json.load(open(sys.argv[2]))["vectors"]
        bad = [v for v in vectors if partition(v["workspace"], v["partitions"]) != v["partition"]]
        print(f"{len(vectors) - len(bad)} passed, {len(bad)} failed")
        sys.exit(1 if bad else 0)
    ws, n = sys.argv[1], int(sys.argv[2])
    print(partition(ws, n), stream("hookd:events", ws, n))
