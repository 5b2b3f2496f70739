"""The console on a big workspace: pages of endpoints and deliveries, and
no response that carries the whole of either. tests/console.rs passes
{base, key, busy_endpoint, endpoints, deliveries} as JSON in argv[1].
Prints how long each page took to show (not asserted: this machine is
noisy); exits non-zero on failure.
"""
import json
import sys
import time

from playwright.sync_api import expect, sync_playwright

cfg = json.loads(sys.argv[1])
base = cfg["base"].rstrip("/")
largest = {"items": 0, "url": ""}
timings = {}


def on_response(response):
    if "/api/v1/" not in response.url:
        return
    try:
        body = response.json()
    except Exception:
        return
    items = len(body.get("data", [])) if isinstance(body, dict) else 0
    if items > largest["items"]:
        largest.update(items=items, url=response.url)


def timed(name, action, ready):
    start = time.monotonic()
    action()
    ready()
    timings[name] = round((time.monotonic() - start) * 1000)


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page()
    page.set_default_timeout(30000)
    page.on("response", on_response)
    page.goto(f"{base}/console")
    page.get_by_label("API key").fill(cfg["key"])
    rows = page.locator("table tbody tr")
    timed("sign in, first page of endpoints",
          lambda: page.get_by_role("button", name="Sign in").click(),
          lambda: expect(rows).to_have_count(50))
    expect(page.locator("caption")).to_contain_text(f"{cfg['endpoints']} endpoints")
    first = rows.first.text_content()
    timed("next page of endpoints",
          lambda: page.get_by_role("link", name="Next page").click(),
          lambda: expect(rows.first).not_to_have_text(first))
    expect(rows).to_have_count(50)
    timed("deliveries, first page",
          lambda: page.goto(f"{base}/console#/deliveries"),
          lambda: expect(rows).to_have_count(50))
    first = rows.first.text_content()
    timed("deliveries, next page",
          lambda: page.get_by_role("link", name="Next page").click(),
          lambda: expect(rows.first).not_to_have_text(first))
    expect(rows).to_have_count(50)
    timed("the busy endpoint's page",
          lambda: page.goto(f"{base}/console#/endpoint/{cfg['busy_endpoint']}"),
          lambda: expect(page.locator("#success-rate")).to_have_text("100%"))
    expect(page.locator("#last-hour")).to_contain_text("500+")
    browser.close()

# Nothing loads it all: no response carried more than a page (500 at most).
assert largest["items"] <= 500, largest
print(json.dumps({"ok": True, "largest_page": largest, "ms": timings}))
