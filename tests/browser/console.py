"""Drives the SRE console of a running hookd in headless Chromium (Debian's,
through Playwright for Python), as an SRE would during an incident, with
every request to any host but hookd's blocked. tests/console.rs sets up
hookd, Redis and the receivers, and passes what it made as JSON in argv[1]:
{base, admin_key, read_key, other_key, endpoint, name, screenshots}
(`name`: the endpoint's description, which the console calls it by).

Each step asserts what the page shows; a screenshot of each is saved under
`screenshots` (target/console/, not committed). Exits non-zero on failure.
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
endpoint = cfg["endpoint"]
name = cfg["name"]
blocked = []
TIMEOUT = 20000


def overflows(page):
    """Whether the page is wider than the window (a horizontal scroll bar)."""
    return page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")


def shot(page, name):
    page.screenshot(path=os.path.join(shots, f"{name}.png"), full_page=True)


def only_hookd(route):
    if urlparse(route.request.url).netloc == host:
        route.continue_()
    else:
        blocked.append(route.request.url)
        route.abort()


def sign_in(page, key):
    page.goto(f"{base}/console")
    # By keyboard: focus the labelled field, type, Enter.
    field = page.get_by_label("API key")
    field.focus()
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Endpoints of"))).to_be_visible(timeout=TIMEOUT)


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=TIMEOUT)


def unlabelled(page):
    """Controls a screen reader could not name."""
    return page.evaluate("""() => [...document.querySelectorAll('input, select, button, a')]
        .filter(el => !el.hidden && el.offsetParent !== null)
        .filter(el => {
            const label = el.labels && el.labels.length ? el.labels[0].textContent : '';
            return !(label.trim() || el.getAttribute('aria-label') || el.textContent.trim());
        }).map(el => el.outerHTML)""")


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    context = browser.new_context()
    context.route("**/*", only_hookd)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.on("dialog", lambda d: d.accept())

    # 1. Sign in: the endpoints, one of them failing (3 in a row, and why).
    sign_in(page, cfg["admin_key"])
    expect(page.get_by_role("link", name=name)).to_be_visible()
    row = page.locator("#endpoints tbody tr", has_text=endpoint)
    expect(row).to_contain_text("3 in a row")
    expect(row).to_contain_text("receiver answered 500")
    # Failing now: its status says so, not a green "active".
    expect(row.locator(".badge")).to_have_text("failing")
    assert unlabelled(page) == [], unlabelled(page)
    shot(page, "1-endpoints")

    # 2. The failing endpoint: its failures and the last error.
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=f"Endpoint {name}")).to_be_visible()
    expect(page.locator("#last-error")).to_contain_text("receiver answered 500")
    expect(page.locator("#success-rate")).to_have_text("0%")
    # Its activity: three attempts answered 500, drawn as bars, with latency.
    expect(page.locator("#activity-total")).to_contain_text("3 attempts: 0 2xx, 3 other status, 0 no answer")
    expect(page.locator("#activity-total")).to_contain_text("p99")
    assert page.locator("#activity svg rect.bar-status").count() >= 1
    page.get_by_role("button", name="Last day").click()
    expect(page.get_by_role("button", name="Last day")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#activity-total")).to_contain_text("3 attempts")
    assert unlabelled(page) == [], unlabelled(page)
    shot(page, "2-failing-endpoint")

    # 3. The receiver is fixed: redeliver one and see the new attempt succeed.
    page.get_by_role("link", name="Failed deliveries of this endpoint").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(3)
    # Each row says how its last attempt ended, and names its endpoint.
    expect(rows.first.locator("td").nth(5)).to_have_text("500")
    expect(rows.first.locator("td").nth(2)).to_have_text(name)
    shot(page, "3-failed-deliveries")
    # One event's delivery, by its id.
    page.get_by_label("Event id").fill("o-1")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("failed")
    page.go_back()
    expect(rows).to_have_count(3)
    rows.first.get_by_role("link").first.click()
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    # What was sent: the envelope and the signature headers.
    expect(page.locator("#envelope")).to_contain_text('"n":')
    expect(page.locator("#envelope")).to_contain_text('"type": "order.created"')
    expect(page.locator("#sent-headers")).to_contain_text("X-Hookd-Signature")
    expect(page.locator("#sent-headers")).to_contain_text("X-Hookd-Delivery-Id")
    # The failed attempt keeps the receiver's response headers.
    expect(page.locator("#attempts")).to_contain_text("response headers")
    page.locator("#attempts summary").first.click()
    expect(page.locator("#attempts")).to_contain_text("content-length: ")
    page.get_by_role("button", name="Redeliver now").click()
    expect(page.locator("#attempts tbody tr")).to_have_count(2)
    expect(page.locator("#attempts tbody tr").nth(1)).to_contain_text("manual")
    expect(page.locator("#delivery-status")).to_have_text("succeeded")
    shot(page, "4-redelivered")

    # 4. Retry one selected from the list, then all matching the filter as
    # a recovery job, and watch the job reach completed.
    page.goto(f"{base}/console#/deliveries?status=failed&endpoint_id={endpoint}")
    expect(rows).to_have_count(2)
    rows.first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Retry selected").click()
    # A recovery job of the one selected, with its progress.
    expect(page.locator("#retry-result .job-state")).to_contain_text("completed", timeout=30000)
    expect(page.locator("#retry-result .job-state")).to_contain_text("1 of 1 re-sent (1 matched), 1 succeeded")
    page.reload()
    expect(rows).to_have_count(1)
    page.get_by_role("button", name="Retry all matching (recovery job)").click()
    expect(page.locator(".job-state")).to_contain_text("completed", timeout=30000)
    expect(page.locator(".job-state")).to_contain_text("1 of 1 re-sent (1 matched), 1 succeeded")
    shot(page, "5-recovered")
    page.goto(f"{base}/console#/endpoint/{endpoint}")
    page.get_by_label("Re-send failed deliveries of").select_option(label="the last hour")
    page.get_by_role("button", name="Recover").click()
    expect(page.locator(".job-state")).to_contain_text("completed", timeout=30000)
    expect(page.locator(".job-state")).to_contain_text("0 of 0 re-sent (0 matched)")

    # A test event: what was sent (signed) and what the receiver answered.
    page.get_by_label("Event type", exact=True).fill("order.created")
    page.get_by_label("Data (JSON)").fill('{"hello": "test"}')
    page.get_by_role("button", name="Send test event").click()
    expect(page.locator("#test-outcome")).to_contain_text("succeeded")
    expect(page.locator("#test-result")).to_contain_text("x-hookd-signature")
    expect(page.locator("#test-result")).to_contain_text('"hello": "test"')
    expect(page.locator("#test-result")).to_contain_text("Response: 200")
    expect(page.locator("#test-result")).to_contain_text("content-length")
    shot(page, "5b-test-event")

    # 5. Pause with a reason, then resume and see how many were released.
    page.get_by_label("Reason").fill("receiver maintenance")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#endpoint-status")).to_contain_text("paused")
    expect(page.locator("#endpoint-status")).to_contain_text("receiver maintenance")
    # The page is true after each action, without a reload: Resume replaces
    # Pause, and back.
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#released")).to_contain_text("released")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    expect(page.locator("#endpoint-status")).not_to_contain_text("paused")
    expect(page.locator("#held")).to_have_text("0")
    # The recovered deliveries succeeded: nothing is failing any more.
    page.reload()
    expect(page.locator("#failing")).to_have_text("no")
    expect(page.locator("#endpoint-status .badge")).to_have_text("active")
    shot(page, "6-paused-and-resumed")

    # 6. Rotate: the new secret shows once; a reload does not show it again.
    page.get_by_label("Old secret keeps signing for").select_option(label="1 hour")
    page.get_by_role("button", name="Rotate secret").click()
    secret = page.locator("#new-secret")
    expect(secret).to_have_text(re.compile(r"\S{16,}"))
    value = secret.text_content()
    shot(page, "7-rotated")
    page.reload()
    expect(page.get_by_role("heading", name=f"Endpoint {name}")).to_be_visible()
    assert page.locator("#new-secret").count() == 0
    assert value not in page.content(), "the secret shows again after a reload"

    # 7. Event types with counts; the audit log names what was done.
    page.get_by_role("link", name="Event types").click()
    expect(page.locator("table tbody tr").first).to_contain_text("order.created")
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("table")).to_contain_text("endpoint.secret_rotated")
    expect(page.locator("table")).to_contain_text("recovery.started")
    assert not overflows(page), "the audit log fits the window"
    shot(page, "8-audit")
    # On a phone (375 px): no page wider than the window.
    page.set_viewport_size({"width": 375, "height": 800})
    for view, heading in [
        ("#/endpoints", "Endpoints of ws"),
        (f"#/endpoint/{endpoint}", f"Endpoint {name}"),
        ("#/deliveries", "Deliveries"),
        ("#/audit", "Audit log"),
    ]:
        page.goto(f"{base}/console{view}")
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        assert not overflows(page), f"{view} is wider than 375 px"
    shot(page, "8b-audit-phone")
    page.goto(f"{base}/console#/endpoint/{endpoint}")
    expect(page.get_by_role("heading", name=f"Endpoint {name}")).to_be_visible()
    shot(page, "8c-endpoint-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Register an endpoint, edit it and delete it, all from the console.
    page.goto(f"{base}/console#/endpoints")
    expect(page.get_by_role("heading", name=re.compile("Endpoints of"))).to_be_visible()
    page.get_by_text("Register an endpoint").click()
    page.get_by_label("URL").fill("http://127.0.0.1:9/billing")
    page.get_by_label("Description").fill("Billing sync")
    page.get_by_label("Event types").fill("order.created, order.paid")
    page.get_by_label("Most in flight").fill("4")
    page.get_by_label("Metadata").fill("team: billing")
    page.get_by_role("button", name="Add header").click()
    page.get_by_label("Header name").fill("Authorization")
    page.get_by_label("Value of header").fill("Bearer s3cret")
    assert page.get_by_label("Value of header").get_attribute("type") == "password"
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page.locator("#new-endpoint-secret")).to_contain_text("hks_")
    assert unlabelled(page) == [], unlabelled(page)
    page.get_by_role("link", name="Open it").click()
    expect(page.get_by_role("heading", name="Endpoint Billing sync")).to_be_visible()
    expect(page.get_by_label("Event types")).to_have_value("order.created, order.paid")
    # Every setting shows; header values stay masked.
    expect(page.locator("#max-concurrency")).to_have_text("4")
    expect(page.locator("#metadata")).to_have_text("team: billing")
    expect(page.locator("#headers")).to_contain_text("Authorization")
    expect(page.locator("#headers")).not_to_contain_text("s3cret")
    expect(page.locator("#scheme")).to_contain_text("sha256")
    page.get_by_label("Description").fill("Billing sync v2")
    page.get_by_label("Event types").fill("")
    page.get_by_label("Attempts per second").fill("10")
    page.get_by_label("Most in flight").fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Endpoint Billing sync v2")).to_be_visible()
    expect(page.locator("#saved")).to_have_text("Saved.")
    expect(page.locator("dl").first).to_contain_text("every type")
    expect(page.locator("#rate-limit")).to_have_text("10 attempts/s")
    expect(page.locator("#max-concurrency")).to_have_text("configured default")
    expect(page.locator("#headers")).to_contain_text("Authorization")
    shot(page, "8d-edited-endpoint")
    page.get_by_role("button", name="Delete endpoint").click()
    expect(page.get_by_role("heading", name=re.compile("Endpoints of"))).to_be_visible()
    expect(page.get_by_role("link", name="Billing sync v2")).to_have_count(0)
    sign_out(page)

    # 8. A read-scoped key sees the pages and no control that writes.
    sign_in(page, cfg["read_key"])
    page.get_by_role("link", name=name).click()
    expect(page.locator("#last-error")).to_be_visible()
    assert page.locator("[data-write]").count() == 0
    assert page.get_by_role("button", name="Pause").count() == 0
    assert page.get_by_role("link", name="API keys").is_hidden()
    page.get_by_role("link", name="All its deliveries").click()
    page.locator("table tbody tr").first.get_by_role("link").first.click()
    expect(page.locator("#attempts")).to_be_visible()
    assert page.get_by_role("button", name="Redeliver now").count() == 0
    shot(page, "9-read-scope")
    sign_out(page)

    # 9. A key of another workspace sees nothing of this one.
    sign_in(page, cfg["other_key"])
    assert page.get_by_role("link", name=name).count() == 0
    page.goto(f"{base}/console#/endpoint/{endpoint}")
    expect(page.get_by_role("heading", name="Cannot show this")).to_be_visible()
    page.goto(f"{base}/console#/deliveries")
    expect(page.get_by_text("No deliveries match.")).to_be_visible()
    shot(page, "10-other-workspace")

    browser.close()

# Everything above ran with every other host blocked; the console asked none.
assert blocked == [], blocked
print(json.dumps({"ok": True, "screenshots": sorted(os.listdir(shots))}))
