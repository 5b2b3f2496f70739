"""Drives the SRE console through an ordered endpoint's held key, in
headless Chromium (Debian's, through Playwright for Python), with every
request to any host but hookd's blocked. tests/console.rs sets up hookd,
Redis, the receiver, an endpoint with `ordering: key` and
`ordering_on_give_up: hold` whose key's head was given up, and passes
{base, admin_key, endpoint, head, waiting, screenshots} as JSON in argv[1].

The SRE opens the waiting delivery, sees what it waits behind, follows the
link to the head, skips it, and sees the key go on. Exits non-zero on
failure; screenshots go under `screenshots` (target/console/).
"""
import json
import os
import re
import sys
from urllib.parse import urlparse

from playwright.sync_api import expect, sync_playwright

cfg = json.loads(sys.argv[1])
base = cfg["base"].rstrip("/")
host = urlparse(base).netloc
shots = cfg["screenshots"]
os.makedirs(shots, exist_ok=True)
TIMEOUT = 20000
blocked = []


def only_hookd(route):
    if urlparse(route.request.url).netloc == host:
        route.continue_()
    else:
        blocked.append(route.request.url)
        route.abort()


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.route("**/*", only_hookd)
    page.on("dialog", lambda d: d.accept())
    page.goto(f"{base}/console")
    field = page.get_by_label("API key")
    field.focus()
    page.keyboard.type(cfg["admin_key"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Endpoints of"))).to_be_visible(timeout=TIMEOUT)

    # The endpoint says how it orders.
    page.goto(f"{base}/console#/endpoint/{cfg['endpoint']}")
    expect(page.locator("#ordering")).to_contain_text("holds its key", timeout=TIMEOUT)

    # The waiting delivery names its key's head.
    page.goto(f"{base}/console#/delivery/{cfg['waiting']}")
    expect(page.locator("#delivery-status")).to_contain_text("waiting", timeout=TIMEOUT)
    expect(page.locator("#ordering-key")).to_contain_text("k0")
    page.screenshot(path=os.path.join(shots, "ordered-waiting.png"), full_page=True)
    # At phone width too: nothing wider than the window.
    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    expect(page.locator("#delivery-status")).to_contain_text("waiting", timeout=TIMEOUT)
    page.screenshot(path=os.path.join(shots, "ordered-waiting-phone.png"), full_page=True)
    assert not page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"), "the waiting delivery is wider than a phone"
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#waiting-for").click()
    expect(page.get_by_role("heading", name=f"Delivery {cfg['head']}")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#delivery-status")).to_contain_text("failed")

    # Skip the given-up head: the key goes on.
    page.get_by_role("button", name=re.compile("^Skip")).click()
    expect(page.locator("#delivery-status")).to_contain_text("failed", timeout=TIMEOUT)
    for _ in range(40):
        page.goto(f"{base}/console#/delivery/{cfg['waiting']}")
        page.reload()
        page.locator("#delivery-status").wait_for(timeout=TIMEOUT)
        if "succeeded" in page.locator("#delivery-status").inner_text():
            break
        page.wait_for_timeout(500)
    expect(page.locator("#delivery-status")).to_contain_text("succeeded")
    expect(page.locator("#ordering-key")).to_contain_text("sequence 2")
    page.screenshot(path=os.path.join(shots, "ordered-skipped.png"), full_page=True)
    browser.close()

assert not blocked, f"requests to other hosts: {blocked}"
print("ordered key held, skipped and gone on in the console")
