"""A real OTLP/HTTP trace receiver for the tests: decodes the protobuf
export requests hookd sends (opentelemetry-proto) and serves what it got.

  python3 receiver.py PORT [discard]
  POST /v1/traces   an ExportTraceServiceRequest (protobuf, maybe gzip)
  GET  /spans       every span received so far, as JSON: name, kind,
                    trace_id, span_id, parent_span_id (hex), attributes,
                    status {code, message}, service (resource service.name)

With `discard` (for benchmarks) it counts requests and bytes and decodes
nothing; GET answers {"requests": n, "bytes": n}.
"""
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

SPANS = []
LOCK = threading.Lock()
DISCARD = len(sys.argv) > 2 and sys.argv[2] == "discard"
COUNTS = {"requests": 0, "bytes": 0}


def value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if DISCARD:
            with LOCK:
                COUNTS["requests"] += 1
                COUNTS["bytes"] += len(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req = trace_service_pb2.ExportTraceServiceRequest()
        req.ParseFromString(body)
        got = []
        for rs in req.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append({
                        "name": s.name,
                        "kind": s.kind,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "attributes": attrs(s.attributes),
                        "status": {"code": s.status.code, "message": s.status.message},
                        "service": resource.get("service.name"),
                        "duration_ns": s.end_time_unix_nano - s.start_time_unix_nano,
                    })
        with LOCK:
            SPANS.extend(got)
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_GET(self):
        with LOCK:
            out = json.dumps(COUNTS if DISCARD else SPANS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
