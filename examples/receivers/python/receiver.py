"""A minimal hookd receiver (standard library): verifies, dedupes by event id, answers 204.

    HOOKD_SECRET=hks_... python3 receiver.py 9000

With --check, verifies one captured request instead and exits 0 (valid) or 1:
    python3 receiver.py --check SECRET HEADERS_JSON < body
"""
import http.server
import json
import os
import sys

from hookd_verify import VerificationError, verify

seen = set()  # use a store with expiry (Redis SET NX EX) in production


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))  # raw bytes
        try:
            verify([os.environ["HOOKD_SECRET"]], dict(self.headers), body)
        except VerificationError as e:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(str(e).encode())
            return
        event_id = self.headers["X-Hookd-Event-Id"]
        if event_id not in seen:  # at-least-once delivery: handle each event once
            seen.add(event_id)
            print("event", event_id, json.loads(body)["type"], flush=True)
        self.send_response(204)
        self.end_headers()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        try:
            verify([sys.argv[2]], json.loads(sys.argv[3]), sys.stdin.buffer.read())
        except VerificationError as e:
            print(e)
            sys.exit(1)
        print("valid")
        sys.exit(0)
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
