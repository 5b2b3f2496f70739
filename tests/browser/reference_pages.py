"""Loads the API reference pages of a running hookd in headless Chromium
(Debian's, driven by Playwright for Python) and checks that each renders the
API and that no request leaves the host.

argv: <admin base URL, e.g. http://127.0.0.1:8080>
Prints one JSON object per page; exits 1 on any failure.
"""
import json
import sys
import time
from urllib.parse import urlparse

from playwright.sync_api import sync_playwright

base = sys.argv[1].rstrip("/")
host = urlparse(base).netloc
CHROMIUM = "/usr/bin/chromium"

# Text each page holds once it has read /openapi.json and rendered it (from
# the document, not in the page's own HTML; Scalar renders a tag's
# operations only when it is opened, Swagger UI lists them all).
PAGES = {
    "/docs": "Every error is {code, message, issues}",
    "/swagger": "Publish an event",
}

failed = False
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    for path, rendered in PAGES.items():
        page = browser.new_page()
        requests = []
        refused = []
        page.on("request", lambda r: requests.append(r.url))
        # The pages run under a Content Security Policy: anything it refuses
        # (an inline script, eval) is reported on the console.
        page.on("console", lambda m: refused.append(m.text)
                if "Content Security Policy" in m.text else None)
        # Scalar checks the document as it loads and warns of each schema
        # it cannot read ("document validation errors").
        invalid = []
        page.on("console", lambda m: invalid.append(m.text)
                if m.type == "warning" and "validation error" in m.text else None)
        page.goto(base + path, wait_until="networkidle")
        title = page.title()
        # Polled from here (evaluating a string in the page is what the
        # policy forbids).
        deadline = time.time() + 20
        while rendered not in page.inner_text("body"):
            if time.time() > deadline:
                raise SystemExit(f"{path} did not render {rendered!r}")
            time.sleep(0.1)
        outside = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                   and urlparse(u).netloc != host]
        ok = not outside and bool(title) and not refused and not invalid
        failed |= not ok
        print(json.dumps({"page": path, "title": title, "requests": len(requests),
                          "outside": outside, "refused_by_csp": refused,
                          "schema_warnings": invalid, "ok": ok}))
        page.close()
    browser.close()
sys.exit(1 if failed else 0)
