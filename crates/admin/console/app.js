// The SRE console: a page over the same /api/v1 routes, with the same
// scopes, as curl and the CLI. The API key lives in sessionStorage (this
// browser tab's session only) and goes in the Authorization header, so
// there is no cookie and no cross-site request can act with it. Every
// value from the API is put on the page as text, never as HTML.

const KEY = "hookd.console.key";
const main = document.getElementById("main");
const statusLine = document.getElementById("status");
let session = null; // {key, ws, scope}

// ---- small helpers -------------------------------------------------------

/** An element: h("a", {href: "#/x"}, "text", child, ...). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
  main.focus();
}

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
}

const canWrite = () => session && (session.scope === "write" || session.scope === "admin");
const isAdmin = () => session && session.scope === "admin";
const wsPath = (rest) => `/workspaces/${encodeURIComponent(session.ws)}${rest}`;
const badge = (text, cls) => h("span", { class: `badge ${cls || text}` }, text);
/** A time as the CLI and the logs write it (UTC), with how long ago beside it. */
const when = (iso) => (iso ? `${iso.replace("T", " ").replace(/(\.\d+)?Z$/, " UTC")} (${relative(iso)})` : "");
function relative(iso) {
  const secs = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  const abs = Math.abs(secs);
  const [n, unit] = abs < 60 ? [abs, "s"] : abs < 3600 ? [Math.round(abs / 60), "min"]
    : abs < 86400 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "d"];
  // Non-breaking spaces: "3 s ago" never splits across lines.
  return secs >= 0 ? `${n}\u00a0${unit}\u00a0ago` : `in\u00a0${n}\u00a0${unit}`;
}
/** What people call an endpoint: its description, else its id. */
const nameOf = (ep) => ep.description || ep.id;
/** Endpoint names by id, read once per sign-in (a deleted one keeps its id). */
let names = new Map();
async function namesOf(ids) {
  const missing = [...new Set(ids)].filter((id) => !names.has(id));
  await Promise.all(missing.map(async (id) => {
    try { names.set(id, nameOf(await api("GET", wsPath(`/endpoints/${encodeURIComponent(id)}`)))); }
    catch { names.set(id, id); }
  }));
}
/** A link to an endpoint, by its name (its id in the title). */
const endpointLink = (id) => h("a", { href: `#/endpoint/${encodeURIComponent(id)}`, title: id }, names.get(id) || id);
const ago = (ms) => new Date(Date.now() - ms).toISOString();

class ApiError extends Error {
  constructor(status, body) {
    // The message, and each issue where there are several (one is the message).
    const issues = body && Array.isArray(body.issues) && body.issues.length > 1
      ? `: ${body.issues.map((i) => `${i.path || "the body"} ${i.message}`).join("; ")}` : "";
    super(body && body.message ? `${body.message}${issues} (${status})` : `HTTP ${status}`);
    this.status = status;
    this.issues = (body && body.issues) || [];
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${session.key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function routeParams() {
  const hash = location.hash.slice(1) || "/endpoints";
  const [path, qs] = hash.split("?");
  return { parts: path.split("/").filter(Boolean), params: Object.fromEntries(new URLSearchParams(qs || "")) };
}

// ---- sign-in -------------------------------------------------------------

async function signIn(key) {
  session = { key, ws: null, scope: null };
  const list = await api("GET", "/workspaces");
  const ws = list.data[0];
  session = { key, ws: ws.id, scope: ws.scope, endpoints: ws.endpoints };
  names = new Map();
  sessionStorage.setItem(KEY, key);
}

function signOut() {
  sessionStorage.removeItem(KEY);
  session = null;
  location.hash = "";
  render();
}

function signInView(message) {
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true, size: 48 });
  const form = h("form", { "aria-label": "Sign in", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await signIn(input.value.trim());
      location.hash = "#/endpoints";
      render();
    } catch (err) {
      session = null;
      show(signInView(`Sign-in failed: ${err.message}`));
    }
  } },
    h("label", { for: "api-key" }, "API key", input),
    h("button", { type: "submit" }, "Sign in"));
  return h("section", {},
    h("h1", {}, "Sign in"),
    h("p", {}, "An API key of your workspace (hookd keys create, or POST /api/v1/workspaces/{ws}/keys). It is kept for this browser tab only."),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    form);
}

// ---- endpoints -----------------------------------------------------------

/** "3 in a row since ...: <last error>", or nothing. */
function failing(ep) {
  if (!ep.failing) return h("span", { class: "muted" }, "no");
  const f = ep.failing;
  return h("span", { class: "failed" }, `${f.consecutive_failures} in a row since ${when(f.since)}: `, f.last_error);
}

function endpointState(ep) {
  // Not a green "active" while its attempts fail in a row.
  if (!ep.paused) return ep.failing ? badge("failing", "failed") : badge("active");
  const tripped = (ep.paused_reason || "").startsWith("circuit breaker");
  // A tripped endpoint's reason is its failing streak, shown under "Failing
  // now": said once, there.
  return h("span", {},
    badge(tripped ? "tripped" : "paused", tripped ? "tripped" : "paused"),
    " ", tripped ? "" : ep.paused_reason || "", ep.paused_at ? ` (since ${when(ep.paused_at)})` : "");
}

async function endpointsView(params) {
  const page = await api("GET", wsPath(`/endpoints${query({ limit: 50, after: params.after })}`));
  const rows = page.data.map((ep) =>
    h("tr", {},
      h("td", {}, h("a", { href: `#/endpoint/${encodeURIComponent(ep.id)}` }, nameOf(ep)),
        ep.description ? h("div", { class: "muted" }, ep.id) : null),
      h("td", {}, ep.url),
      h("td", {}, endpointState(ep)),
      h("td", {}, failing(ep)),
      h("td", {}, String(ep.held)),
      h("td", {}, ep.event_types ? ep.event_types.join(", ") : h("span", { class: "muted" }, "every type"))));
  return h("section", {},
    h("h1", {}, `Endpoints of ${session.ws}`),
    canWrite() ? registerForm() : null,
    h("table", { id: "endpoints" },
      h("caption", { class: "muted" }, `${session.endpoints} endpoint${session.endpoints === 1 ? "" : "s"}, oldest first, 50 a page`),
      h("thead", {}, h("tr", {}, ["Endpoint", "URL", "Status", "Failing now", "Held", "Event types"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)),
    pager(params.after ? "#/endpoints" : null, page.next ? `#/endpoints?after=${encodeURIComponent(page.next)}` : null));
}

/** "name: value" lines as an object (for metadata). */
function parseLines(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf(":");
    if (at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

/** Rows of header name and value; values masked (shown on request). */
function headerRows(prefix, headers) {
  const rows = h("div", { id: `${prefix}-headers`, class: "header-rows" });
  const add = (name = "", value = "") => {
    const n = rows.children.length;
    const nameInput = h("input", { id: `${prefix}-header-name-${n}`, value: name, placeholder: "Authorization", "aria-label": "Header name" });
    const valueInput = h("input", { id: `${prefix}-header-value-${n}`, type: "password", autocomplete: "off", value, placeholder: "value", "aria-label": `Value of header ${name || n + 1}` });
    const row = h("div", { class: "header-row" }, nameInput, valueInput,
      h("button", { type: "button", class: "secondary", "aria-label": "Remove this header", onclick: () => row.remove() }, "Remove"));
    rows.append(row);
  };
  for (const [k, v] of Object.entries(headers || {})) add(k, v);
  const reveal = h("input", { type: "checkbox", id: `${prefix}-show-headers`, onchange: () => {
    for (const i of rows.querySelectorAll("input[type=password], input[data-masked]")) {
      i.type = reveal.checked ? "text" : "password";
      i.toggleAttribute("data-masked", true);
    }
  } });
  const box = h("fieldset", { class: "headers" }, h("legend", {}, "Custom headers (sent with every request)"), rows,
    h("div", { class: "row" },
      h("button", { type: "button", class: "secondary", id: `${prefix}-add-header`, onclick: () => add() }, "Add header"),
      h("label", { class: "inline", for: reveal.id }, reveal, "Show values")));
  const value = () => {
    const out = {};
    for (const row of rows.children) {
      const [n, v] = row.querySelectorAll("input");
      if (n.value.trim()) out[n.value.trim()] = v.value;
    }
    return out;
  };
  return { box, value };
}

/** The settings people set on an endpoint, as form fields (`ep`: current
 * values; none for a new one, which also chooses its signature scheme). */
function endpointFields(ep, prefix) {
  const field = (name, label, value, attrs = {}) => {
    const input = h("input", { id: `${prefix}-${name}`, name, value: value ?? "", ...attrs });
    return [h("label", { for: input.id }, label, input), input];
  };
  const [urlLabel, url] = field("url", "URL", ep && ep.url, { required: "", placeholder: "https://hooks.example.com/in", size: 40 });
  const [descLabel, description] = field("description", "Description", ep && ep.description, { placeholder: "what people call it" });
  const [typesLabel, types] = field("event_types", "Event types", ep && ep.event_types ? ep.event_types.join(", ") : "",
    { placeholder: "every type" });
  const [concLabel, concurrency] = field("max_concurrency", "Most in flight", ep && ep.max_concurrency,
    { type: "number", min: 1, max: 100000, placeholder: "default" });
  const [rateLabel, rate] = field("rate_limit", "Attempts per second", ep && ep.rate_limit,
    { type: "number", min: 1, max: 1000000, placeholder: "no limit" });
  const rotation = h("select", { id: `${prefix}-rotation_signatures` },
    [["", "configured default"], ["all", "all: one per valid secret"], ["newest", "newest only"]]
      .map(([v, t]) => h("option", { value: v, selected: ((ep && ep.rotation_signatures) || "") === v }, t)));
  const ordering = h("select", { id: `${prefix}-ordering` },
    [["none", "none: in parallel"], ["key", "by ordering key: one at a time, in order"]]
      .map(([v, t]) => h("option", { value: v, selected: ((ep && ep.ordering) || "none") === v }, t)));
  const onGiveUp = h("select", { id: `${prefix}-ordering_on_give_up` },
    [["continue", "continue: the key goes on"], ["hold", "hold: the key waits for a redeliver or skip"]]
      .map(([v, t]) => h("option", { value: v, selected: ((ep && ep.ordering_on_give_up) || "continue") === v }, t)));
  const scheme = ep ? null : h("select", { id: `${prefix}-scheme` },
    [["sha256", "hookd (sha256=, X-Hookd-*)"], ["standard_webhooks", "Standard Webhooks (webhook-*)"]].map(([v, t]) => h("option", { value: v }, t)));
  const metadata = h("textarea", { id: `${prefix}-metadata`, rows: 2, cols: 30, placeholder: "team: payments" },
    Object.entries((ep && ep.metadata) || {}).map(([k, v]) => `${k}: ${v}`).join("\n"));
  const headers = headerRows(prefix, ep && ep.headers);
  const count = (input) => (input.value.trim() ? Number(input.value) : null);
  const value = () => {
    const list = types.value.split(",").map((t) => t.trim()).filter(Boolean);
    const out = {
      url: url.value.trim(), description: description.value.trim() || null, event_types: list.length ? list : null,
      headers: headers.value(), metadata: parseLines(metadata.value),
      max_concurrency: count(concurrency), rate_limit: count(rate), rotation_signatures: rotation.value || null,
      ordering: ordering.value, ordering_on_give_up: onGiveUp.value,
    };
    if (scheme) out.scheme = scheme.value;
    return out;
  };
  const labels = [urlLabel, descLabel, typesLabel, concLabel, rateLabel,
    h("label", { for: rotation.id }, "Signatures while rotating", rotation),
    h("label", { for: ordering.id }, "Ordering", ordering),
    h("label", { for: onGiveUp.id }, "When an ordered delivery is given up", onGiveUp),
    scheme ? h("label", { for: scheme.id }, "Signature scheme", scheme) : null,
    h("label", { for: metadata.id }, "Metadata (name: value lines)", metadata),
    headers.box];
  return { labels, value };
}

/** Registers an endpoint; its secret is shown once, here. */
function registerForm() {
  const fields = endpointFields(null, "new");
  const result = h("div", { role: "status", "aria-live": "polite" });
  const form = h("form", { "aria-label": "Register an endpoint", onsubmit: async (e) => {
    e.preventDefault();
    // A new endpoint: settings left empty are not sent (their defaults apply).
    const body = Object.fromEntries(Object.entries(fields.value()).filter(([, v]) => v !== null));
    const ep = await api("POST", wsPath("/endpoints"), body);
    result.replaceChildren(h("div", { class: "secret" },
      h("p", {}, `Registered ${nameOf(ep)}. Its signing secret, shown this once: copy it to the receiver now.`),
      h("code", { id: "new-endpoint-secret" }, ep.secret), " ",
      h("a", { href: `#/endpoint/${encodeURIComponent(ep.id)}` }, "Open it")));
  } }, fields.labels, h("button", { type: "submit", "data-write": "" }, "Register"));
  return h("details", { id: "register" }, h("summary", {}, "Register an endpoint"), form, result);
}

function pager(prev, next) {
  return h("nav", { class: "pager", "aria-label": "Pages" },
    prev ? h("a", { href: prev }, "First page") : null,
    next ? h("a", { href: next }, "Next page") : null);
}

/** The last hour of an endpoint: deliveries by status, attempts, the last error. */
async function lastHour(id) {
  const page = await api("GET", wsPath(`/deliveries${query({ endpoint_id: id, since: ago(3600e3), limit: 500 })}`));
  const counts = {};
  let attempts = 0;
  for (const d of page.data) {
    counts[d.status] = (counts[d.status] || 0) + 1;
    attempts += d.attempts_made;
  }
  const settled = (counts.succeeded || 0) + (counts.failed || 0) + (counts.retrying || 0);
  const rate = settled ? `${Math.round((100 * (counts.succeeded || 0)) / settled)}%` : "—";
  let lastError = null;
  const failing = page.data.find((d) => d.status === "failed" || d.status === "retrying");
  if (failing) {
    const d = await api("GET", wsPath(`/deliveries/${encodeURIComponent(failing.id)}`));
    const a = [...d.attempts].reverse().find((x) => !x.succeeded);
    if (a) lastError = { text: a.error || a.error_kind, at: a.started_at, delivery: d.id };
  }
  return { counts, attempts, rate, lastError, more: Boolean(page.next), n: page.data.length };
}

async function endpointView(id) {
  const ep = await api("GET", wsPath(`/endpoints/${encodeURIComponent(id)}`));
  const stats = await lastHour(id);
  const out = h("section", {},
    h("h1", {}, `Endpoint ${nameOf(ep)}`),
    h("dl", {},
      ep.description ? [h("dt", {}, "Id"), h("dd", {}, ep.id)] : null,
      h("dt", {}, "URL"), h("dd", {}, ep.url),
      h("dt", {}, "Status"), h("dd", { id: "endpoint-status" }, endpointState(ep)),
      h("dt", {}, "Failing now"), h("dd", { id: "failing" }, failing(ep)),
      h("dt", {}, "Held"), h("dd", { id: "held" }, String(ep.held)),
      h("dt", {}, "Waiting for a slot"), h("dd", { id: "waiting" },
        ep.waiting && ep.waiting.deliveries > 0
          ? `${ep.waiting.deliveries} in its lane, the oldest since ${when(ep.waiting.oldest)}`
          : "none"),
      h("dt", {}, "Event types"), h("dd", {}, ep.event_types ? ep.event_types.join(", ") : "every type"),
      h("dt", {}, "Signature scheme"), h("dd", { id: "scheme" }, ep.scheme === "standard_webhooks" ? "Standard Webhooks (webhook-signature)" : "hookd (X-Hookd-Signature: sha256=...)"),
      h("dt", {}, "Signatures while rotating"), h("dd", {}, ep.rotation_signatures || "configured default"),
      h("dt", {}, "Most in flight"), h("dd", { id: "max-concurrency" }, ep.max_concurrency ? String(ep.max_concurrency) : "configured default"),
      h("dt", {}, "Rate limit"), h("dd", { id: "rate-limit" }, ep.rate_limit ? `${ep.rate_limit} attempts/s` : "none"),
      h("dt", {}, "Ordering"), h("dd", { id: "ordering" }, ep.ordering === "key"
        ? `by ordering key; a given-up delivery ${ep.ordering_on_give_up === "hold" ? "holds its key" : "lets its key go on"}`
        : "none (in parallel)"),
      h("dt", {}, "Custom headers"), h("dd", { id: "headers" }, Object.keys(ep.headers).length
        ? Object.entries(ep.headers).map(([k, v]) => h("div", {}, h("code", {}, k), ": ", h("code", {}, v === "***" ? v : "•".repeat(8))))
        : "none"),
      h("dt", {}, "Metadata"), h("dd", { id: "metadata" }, Object.keys(ep.metadata).length
        ? Object.entries(ep.metadata).map(([k, v]) => h("div", {}, `${k}: ${v}`)) : "none"),
      h("dt", {}, "Created"), h("dd", {}, when(ep.created_at)),
      ep.previous_secret_expires_at ? [h("dt", {}, "Previous secret valid until"), h("dd", {}, when(ep.previous_secret_expires_at))] : null),
    h("h2", {}, "Last hour"),
    h("dl", { id: "last-hour" },
      h("dt", {}, "Deliveries"), h("dd", {}, `${stats.n}${stats.more ? "+" : ""}` + (stats.n ? ": " + Object.entries(stats.counts).map(([s, n]) => `${n} ${s}`).join(", ") : "")),
      h("dt", {}, "Success rate"), h("dd", { id: "success-rate" }, stats.rate),
      h("dt", {}, "Attempts"), h("dd", {}, String(stats.attempts)),
      h("dt", {}, "Last error"), h("dd", { id: "last-error" }, stats.lastError
        ? [stats.lastError.text, " ", h("span", { class: "muted" }, `at ${when(stats.lastError.at)}, `), h("a", { href: `#/delivery/${encodeURIComponent(stats.lastError.delivery)}` }, stats.lastError.delivery)]
        : "none")),
    h("p", {}, h("a", { href: `#/deliveries${query({ endpoint_id: ep.id, status: "failed" })}` }, "Failed deliveries of this endpoint"),
      " · ", h("a", { href: `#/deliveries${query({ endpoint_id: ep.id })}` }, "All its deliveries")),
    await activitySection(ep.id, "1h"));
  if (canWrite()) out.append(endpointActions(ep), await testEventForm(ep));
  return out;
}

// ---- charts (SVG drawn here: no library) -------------------------------------

const SVG = "http://www.w3.org/2000/svg";
/** An SVG element, as h() makes HTML ones. */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const OUTCOMES = [["succeeded", "2xx", "bar-ok"], ["failed_status", "other status", "bar-status"], ["failed_other", "no answer", "bar-error"]];

/** Bars of attempts per interval, stacked by outcome; each bar's title says its figures. */
function attemptsChart(a) {
  const W = 600, H = 140, n = a.intervals.length, bw = W / n;
  const top = Math.max(1, ...a.intervals.map((i) => i.succeeded + i.failed_status + i.failed_other));
  const bars = a.intervals.flatMap((iv, x) => {
    let y = H;
    return OUTCOMES.map(([k, , cls]) => {
      const hgt = (iv[k] / top) * (H - 10);
      y -= hgt;
      return iv[k] ? svg("rect", { x: x * bw + 0.5, y, width: Math.max(1, bw - 1), height: hgt, class: cls },
        svg("title", {}, `${iv.start}: ${iv.succeeded} 2xx, ${iv.failed_status} other status, ${iv.failed_other} no answer`)) : null;
    });
  });
  return svg("svg", { viewBox: `0 0 ${W} ${H + 16}`, class: "chart", role: "img", "aria-label": `Attempts per ${a.interval_seconds / 60} min, most ${top}` },
    svg("line", { x1: 0, y1: H, x2: W, y2: H, class: "axis" }),
    svg("text", { x: 2, y: 10, class: "tick" }, String(top)),
    svg("text", { x: 2, y: H + 13, class: "tick" }, a.intervals[0].start.slice(11, 16)),
    svg("text", { x: W - 2, y: H + 13, class: "tick end" }, "now"),
    bars);
}

/** Lines of p50 and p99 latency per interval (gaps where nothing was sent). */
function latencyChart(a) {
  const W = 600, H = 140, n = a.intervals.length, bw = W / n;
  const top = Math.max(1, ...a.intervals.map((i) => i.p99_ms || 0));
  // A line through the intervals that had attempts, and a dot on each (one
  // busy interval alone is still seen).
  const line = (key, cls) => {
    let d = "";
    const dots = [];
    a.intervals.forEach((iv, x) => {
      if (iv[key] === null || iv[key] === undefined) return;
      const px = x * bw + bw / 2, py = H - (iv[key] / top) * (H - 10);
      d += `${d ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`;
      dots.push(svg("circle", { cx: px.toFixed(1), cy: py.toFixed(1), r: 2.5, class: `dot ${cls}` },
        svg("title", {}, `${iv.start}: ${key.replace("_ms", "")} ${iv[key]} ms`)));
    });
    return d ? [svg("path", { d, class: cls }), dots] : null;
  };
  return svg("svg", { viewBox: `0 0 ${W} ${H + 16}`, class: "chart", role: "img", "aria-label": `Latency p50 and p99, most ${top} ms` },
    svg("line", { x1: 0, y1: H, x2: W, y2: H, class: "axis" }),
    svg("text", { x: 2, y: 10, class: "tick" }, `${top} ms`),
    line("p99_ms", "line-p99"), line("p50_ms", "line-p50"));
}

/** An endpoint's attempts by outcome and latency over the last hour or day. */
async function activitySection(id, window) {
  const a = await api("GET", wsPath(`/endpoints/${encodeURIComponent(id)}/activity?window=${window}`));
  const t = a.total;
  const box = h("section", { id: "activity", "aria-label": "Activity" });
  const choose = (w, label) => h("button", { type: "button", class: w === window ? "" : "secondary", "aria-pressed": String(w === window),
    onclick: async () => box.replaceWith(await activitySection(id, w)) }, label);
  const per = a.interval_seconds === 60 ? "minute" : `${a.interval_seconds / 60} minutes`;
  box.append(
    h("h2", {}, "Activity"),
    h("div", { class: "row" }, choose("1h", "Last hour"), choose("1d", "Last day")),
    h("p", { id: "activity-total" }, `${t.succeeded + t.failed_status + t.failed_other} attempts: ${t.succeeded} 2xx, ${t.failed_status} other status, ${t.failed_other} no answer`,
      t.p50_ms !== null ? ` · p50 ${t.p50_ms} ms, p99 ${t.p99_ms} ms` : "", a.partial ? " (the newest deliveries only)" : ""),
    h("div", { class: "charts" },
      h("figure", {}, attemptsChart(a), h("figcaption", {}, `Attempts per ${per}: `,
        OUTCOMES.map(([, label, cls]) => h("span", { class: `key ${cls}` }, label)))),
      h("figure", {}, latencyChart(a), h("figcaption", {}, "Latency: ", h("span", { class: "key line-p50" }, "p50"), h("span", { class: "key line-p99" }, "p99")))));
  return box;
}

/** Sends a test event of a chosen type now and shows the request and the response. */
async function testEventForm(ep) {
  const known = (await api("GET", wsPath("/event-types"))).data.map((t) => t.name);
  const options = [...new Set([...(ep.event_types || []), ...known])];
  const type = h("input", { id: "test-type", list: "test-types", required: "", value: options[0] || "", placeholder: "card.created" });
  const data = h("textarea", { id: "test-data", rows: 3, cols: 40 }, '{"test": true}');
  const out = h("div", { id: "test-result", role: "status", "aria-live": "polite" });
  const pairs = (list) => h("table", {}, h("tbody", {}, list.map((x) => h("tr", {}, h("td", {}, h("code", {}, x.name)), h("td", {}, h("code", {}, x.value))))));
  const form = h("form", { "aria-label": "Send a test event", onsubmit: async (e) => {
    e.preventDefault();
    let parsed;
    try { parsed = JSON.parse(data.value); } catch (err) { out.replaceChildren(h("p", { class: "error", role: "alert" }, `The data is not JSON: ${err.message}`)); return; }
    out.replaceChildren(h("p", {}, "Sending..."));
    const r = await api("POST", wsPath(`/endpoints/${encodeURIComponent(ep.id)}/test`), { event_type: type.value.trim(), data: parsed });
    out.replaceChildren(
      h("p", { id: "test-outcome" }, r.succeeded ? badge("succeeded") : badge(r.response ? String(r.response.status_code) : r.error_kind, "failed"),
        ` in ${r.duration_ms} ms`, r.error ? ` · ${r.error}` : ""),
      h("div", { class: "charts" },
        h("div", {}, h("h3", {}, `Request: POST ${r.request.url}`), pairs(r.request.headers), h("pre", {}, JSON.stringify(r.request.body, null, 2))),
        h("div", {}, h("h3", {}, r.response ? `Response: ${r.response.status_code}` : "No response"),
          r.response ? [pairs(r.response.headers), h("pre", { id: "test-response-body" }, r.response.body_excerpt || "(empty body)")] : null)));
  } },
    h("label", { for: type.id }, "Event type", type), h("datalist", { id: "test-types" }, options.map((t) => h("option", { value: t }))),
    h("label", { for: data.id }, "Data (JSON)", data),
    h("button", { type: "submit", "data-write": "" }, "Send test event"));
  return h("section", { "aria-label": "Test event" }, h("h2", {}, "Send a test event"),
    h("p", { class: "muted" }, "Signed and sent now, as a delivery is (paused or not); not kept in the delivery history."), form, out);
}

function endpointActions(ep) {
  const base = wsPath(`/endpoints/${encodeURIComponent(ep.id)}`);
  const result = h("div", { id: "action-result", role: "status", "aria-live": "polite" });
  const reason = h("input", { id: "pause-reason", placeholder: "receiver maintenance" });
  // After pausing or resuming the whole page is drawn again, so its buttons,
  // status and held count are true; the answer is said under Actions.
  const pause = ep.paused
    ? h("form", { "aria-label": "Resume", onsubmit: async (e) => {
        e.preventDefault();
        const r = await api("POST", `${base}/resume`);
        const n = r.released;
        await redraw(ep.id, h("p", { id: "released" }, `Resumed: ${n} held ${n === 1 ? "delivery" : "deliveries"} released.`));
      } }, h("button", { type: "submit", "data-write": "" }, "Resume"))
    : h("form", { "aria-label": "Pause", onsubmit: async (e) => {
        e.preventDefault();
        const r = await api("POST", `${base}/pause`, { reason: reason.value || undefined });
        await redraw(ep.id, h("p", { id: "paused" }, `Paused: ${r.paused_reason || ""}`));
      } }, h("label", { for: "pause-reason" }, "Reason", reason), h("button", { type: "submit", "data-write": "" }, "Pause"));
  const grace = h("select", { id: "rotate-grace" },
    [["86400", "1 day"], ["3600", "1 hour"], ["604800", "7 days"], ["0", "none: switch now"]].map(([v, t]) => h("option", { value: v }, t)));
  const rotate = h("form", { "aria-label": "Rotate the secret", onsubmit: async (e) => {
    e.preventDefault();
    if (!confirm("Rotate this endpoint's signing secret?")) return;
    const r = await api("POST", `${base}/secret/rotate`, { grace_seconds: Number(grace.value) });
    const secret = h("code", { id: "new-secret" }, r.secret);
    result.replaceChildren(h("div", { class: "secret" },
      h("p", {}, "The new secret, shown this once: copy it to the receiver now."), secret, " ",
      h("button", { type: "button", class: "secondary", onclick: () => navigator.clipboard.writeText(r.secret).then(() => say("Copied.")) }, "Copy"),
      h("p", { class: "muted" }, r.previous_secret_expires_at ? `The old secret signs too until ${when(r.previous_secret_expires_at)}.` : "The old secret no longer signs.")));
  } }, h("label", { for: "rotate-grace" }, "Old secret keeps signing for", grace), h("button", { type: "submit", "data-write": "" }, "Rotate secret"));
  const since = h("select", { id: "recover-since" },
    [["3600e3", "the last hour"], ["21600e3", "the last 6 hours"], ["86400e3", "the last day"], ["604800e3", "the last 7 days"]].map(([v, t]) => h("option", { value: v }, t)));
  const recover = h("form", { "aria-label": "Recover failed deliveries", onsubmit: async (e) => {
    e.preventDefault();
    const job = await api("POST", `${base}/recover`, { since: ago(Number(since.value)), status: "failed" });
    result.replaceChildren(jobProgress(job));
  } }, h("label", { for: "recover-since" }, "Re-send failed deliveries of", since), h("button", { type: "submit", "data-write": "" }, "Recover"));
  const fields = endpointFields(ep, "edit");
  const edit = h("form", { "aria-label": "Edit the endpoint", onsubmit: async (e) => {
    e.preventDefault();
    await api("PATCH", base, fields.value());
    names.delete(ep.id);
    await redraw(ep.id, h("p", { id: "saved" }, "Saved."));
  } }, fields.labels, h("button", { type: "submit", "data-write": "" }, "Save"));
  const remove = h("form", { "aria-label": "Delete the endpoint", onsubmit: async (e) => {
    e.preventDefault();
    if (!confirm(`Delete ${nameOf(ep)}? Its pending deliveries fail; its history stays until retention.`)) return;
    await api("DELETE", base);
    say(`Deleted ${nameOf(ep)}.`);
    location.hash = "#/endpoints";
  } }, h("button", { type: "submit", class: "secondary", "data-write": "" }, "Delete endpoint"));
  return h("section", { "aria-label": "Actions" }, h("h2", {}, "Actions"), pause, rotate, recover, result,
    h("h2", {}, "Settings"), edit, remove);
}

/** Draws endpoint `id`'s page again and says `message` under its actions. */
async function redraw(id, message) {
  show(await endpointView(id));
  const result = document.getElementById("action-result");
  if (result) result.replaceChildren(message);
}

/** A recovery job's progress, polled until it completes. */
function jobProgress(job) {
  // (Classes, not ids: a selection may start a job per endpoint.)
  const bar = h("progress", { class: "job-progress", max: "1", value: "0", "aria-label": `Progress of ${job.id}` });
  const text = h("span", { class: "job-state" });
  const box = h("div", { class: "job", "data-job": job.id }, h("p", {}, `Recovery job ${job.id}: `, text), bar);
  const update = (j) => {
    text.textContent = `${j.state}: ${j.done} of ${j.queued} re-sent (${j.matched} matched), ${j.succeeded} succeeded`;
    bar.max = Math.max(1, j.queued);
    bar.value = j.done;
  };
  update(job);
  const poll = async () => {
    if (!box.isConnected) return;
    const j = await api("GET", wsPath(`/jobs/${encodeURIComponent(job.id)}`));
    update(j);
    if (j.state !== "completed") setTimeout(poll, 500);
  };
  setTimeout(poll, 300);
  return box;
}

// ---- deliveries ----------------------------------------------------------

async function deliveriesView(params) {
  const fields = [
    ["status", "Status", h("select", { id: "f-status", name: "status" },
      ["", "failed", "retrying", "succeeded", "pending", "held", "waiting"].map((s) => h("option", { value: s, selected: s === (params.status || "") }, s || "any")))],
    ["endpoint_id", "Endpoint", h("input", { id: "f-endpoint_id", name: "endpoint_id", value: params.endpoint_id || "" })],
    ["event_type", "Event type", h("input", { id: "f-event_type", name: "event_type", value: params.event_type || "" })],
    ["event_id", "Event id", h("input", { id: "f-event_id", name: "event_id", value: params.event_id || "" })],
    ["since", "Created since", h("input", { id: "f-since", name: "since", value: params.since || "", placeholder: "2h, RFC 3339 or Unix s" })],
    ["until", "Created until", h("input", { id: "f-until", name: "until", value: params.until || "", placeholder: "same forms" })],
  ];
  const filter = h("form", { "aria-label": "Filter deliveries", onsubmit: (e) => {
    e.preventDefault();
    const values = Object.fromEntries(fields.map(([k, , el]) => [k, el.value.trim()]));
    location.hash = `#/deliveries${query(values)}`;
  } }, fields.map(([k, label, el]) => h("label", { for: el.id }, label, el)), h("button", { type: "submit" }, "Show"));
  const page = await api("GET", wsPath(`/deliveries${query({ ...params, limit: 50 })}`));
  await namesOf(page.data.map((d) => d.endpoint_id));
  const picks = [];
  const rows = page.data.map((d) => h("tr", {},
    canWrite() ? h("td", { class: "pick" }, (() => {
      const box = h("input", { type: "checkbox", "aria-label": `Select ${d.id}`, value: d.id });
      picks.push({ box, d });
      return box;
    })()) : null,
    // The delivery id without its endpoint part (the next column shows it).
    h("td", {}, h("a", { href: `#/delivery/${encodeURIComponent(d.id)}`, title: d.id }, d.id.split("_ep_")[0])),
    h("td", {}, endpointLink(d.endpoint_id)),
    h("td", {}, d.event_type),
    h("td", {}, badge(d.status)),
    h("td", {}, lastResult(d)),
    h("td", {}, String(d.attempts_made)),
    h("td", {}, d.next_attempt_at ? when(d.next_attempt_at) : h("span", { class: "muted" }, "—")),
    h("td", {}, when(d.created_at))));
  const next = page.next ? `#/deliveries${query({ ...params, before: page.next })}` : null;
  return h("section", {},
    h("h1", {}, "Deliveries"),
    filter,
    canWrite() ? retryForm(params, picks) : null,
    h("table", { id: "deliveries" },
      h("thead", {}, h("tr", {}, [canWrite() ? "" : null, "Delivery", "Endpoint", "Event type", "Status", "Last result", "Attempts", "Next attempt", "Created"]
        .filter((t) => t !== null).map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)),
    page.data.length ? null : h("p", { class: "muted" }, "No deliveries match."),
    pager(params.before ? `#/deliveries${query({ ...params, before: "" })}` : null, next));
}

/** A delivery's last attempt as a list shows it: its status code, or why it had none. */
function lastResult(d) {
  if (d.last_status_code) return badge(String(d.last_status_code), d.last_status_code < 300 ? "succeeded" : "failed");
  if (d.last_error_kind) return badge(d.last_error_kind, "failed");
  return h("span", { class: "muted" }, "—");
}

/** Retry the selected deliveries, or all matching the filter: a recovery
 * job (per endpoint and status of those selected), with its progress. */
function retryForm(params, picks) {
  const out = h("div", { id: "retry-result", role: "status", "aria-live": "polite" });
  const selected = h("button", { type: "button", "data-write": "", id: "retry-selected", onclick: async () => {
    const chosen = picks.filter((p) => p.box.checked).map((p) => p.d);
    if (!chosen.length) { out.replaceChildren(h("p", { class: "error" }, "Select deliveries first.")); return; }
    const groups = new Map();
    for (const d of chosen) {
      const key = `${d.endpoint_id} ${d.status}`;
      if (!groups.has(key)) groups.set(key, { endpoint: d.endpoint_id, status: d.status, ids: [] });
      groups.get(key).ids.push(d.id);
    }
    const jobs = [];
    for (const g of groups.values()) {
      const job = await api("POST", wsPath(`/endpoints/${encodeURIComponent(g.endpoint)}/recover`),
        { delivery_ids: g.ids, status: g.status });
      jobs.push(jobProgress(job));
    }
    out.replaceChildren(...jobs);
  } }, "Retry selected");
  const all = h("button", { type: "button", class: "secondary", "data-write": "", id: "retry-matching", disabled: !params.endpoint_id,
    title: params.endpoint_id ? "" : "Filter by an endpoint first: a recovery job covers one endpoint",
    onclick: async () => {
      const status = params.status || "failed";
      if (!["failed", "succeeded"].includes(status)) { out.replaceChildren(h("p", { class: "error" }, "A recovery job re-sends failed or succeeded deliveries.")); return; }
      const body = { status, since: params.since || ago(7 * 86400e3) };
      if (params.until) body.until = params.until;
      if (!confirm(`Re-send every ${status} delivery of ${params.endpoint_id} created ${params.since ? `since ${params.since}` : "in the last 7 days"}?`)) return;
      const job = await api("POST", wsPath(`/endpoints/${encodeURIComponent(params.endpoint_id)}/recover`), body);
      out.replaceChildren(jobProgress(job));
    } }, "Retry all matching (recovery job)");
  return h("div", { class: "row" }, selected, all, out);
}

/** "Skip": takes a delivery out of its ordered key; the key's next goes. */
function skipForm(d) {
  return h("form", { "aria-label": "Skip", onsubmit: async (e) => {
    e.preventDefault();
    if (!confirm(`Skip ${d.id}? It will not be sent, and the next delivery of key ${d.ordering_key} goes.`)) return;
    await api("POST", wsPath(`/deliveries/${encodeURIComponent(d.id)}/skip`));
    render();
  } }, h("button", { type: "submit", class: "secondary", "data-write": "" }, "Skip (let its key go on)"));
}

/** "Redeliver now": a fresh attempt, then the page drawn again with it. */
function redeliverForm(d) {
  return h("form", { "aria-label": "Redeliver", onsubmit: async (e) => {
    e.preventDefault();
    await api("POST", wsPath(`/deliveries/${encodeURIComponent(d.id)}/redeliver`));
    say("Redelivery queued; waiting for the attempt...");
    const before = d.attempts.length;
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const now = await api("GET", wsPath(`/deliveries/${encodeURIComponent(d.id)}`));
      if (now.attempts.length > before) break;
    }
    say("");
    render();
  } }, h("button", { type: "submit", "data-write": "" }, "Redeliver now"));
}

async function deliveryView(id) {
  const d = await api("GET", wsPath(`/deliveries/${encodeURIComponent(id)}`));
  await namesOf([d.endpoint_id]);
  const attempts = d.attempts.map((a) => h("tr", {},
    h("td", {}, String(a.number)),
    h("td", {}, when(a.started_at)),
    h("td", {}, `${a.duration_ms} ms`),
    h("td", {}, a.succeeded ? badge("succeeded") : badge(a.status_code ? String(a.status_code) : a.error_kind, "failed")),
    h("td", {}, a.error || ""),
    h("td", { class: "response" }, a.response_headers.length
      ? h("details", {}, h("summary", {}, `${a.response_headers.length} response header${a.response_headers.length === 1 ? "" : "s"}`),
        h("pre", {}, a.response_headers.map((x) => `${x.name}: ${x.value}`).join("\n")))
      : null,
      a.response_excerpt ? h("pre", {}, a.response_excerpt) : ""),
    h("td", {}, a.trigger)));
  const sent = await api("GET", wsPath(`/deliveries/${encodeURIComponent(id)}/request`));
  const out = h("section", {},
    h("h1", {}, `Delivery ${d.id}`),
    canWrite() ? h("div", { class: "row" }, redeliverForm(d),
      d.ordering_key && d.status !== "succeeded" ? skipForm(d) : null) : null,
    h("dl", {},
      h("dt", {}, "Status"), h("dd", { id: "delivery-status" }, badge(d.status),
        d.waiting_for ? [" behind ", h("a", { id: "waiting-for", href: `#/delivery/${encodeURIComponent(d.waiting_for)}` }, d.waiting_for.split("_ep_")[0]),
          ", the head of its key"] : null),
      d.ordering_key ? [h("dt", {}, "Ordering key"), h("dd", { id: "ordering-key" }, h("code", {}, d.ordering_key),
        d.sequence ? ` (sequence ${d.sequence})` : "")] : null,
      h("dt", {}, "Endpoint"), h("dd", {}, endpointLink(d.endpoint_id)),
      h("dt", {}, "Event"), h("dd", {}, `${d.event_id} (${d.event_type})`),
      h("dt", {}, "Created"), h("dd", {}, when(d.created_at)),
      d.next_attempt_at ? [h("dt", {}, "Next attempt"), h("dd", {}, when(d.next_attempt_at))] : null),
    h("h2", {}, "Attempts"),
    h("table", { id: "attempts" },
      h("thead", {}, h("tr", {}, ["#", "Started", "Took", "Result", "Error", "Response", "Trigger"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, attempts)),
    h("h2", {}, sent.attempt ? `Request of attempt ${sent.attempt}` : "Request"),
    h("table", { id: "sent-headers" },
      h("thead", {}, h("tr", {}, ["Header", "Value"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, sent.headers.map((x) => h("tr", {}, h("td", {}, h("code", {}, x.name)),
        h("td", {}, x.value !== null ? h("code", {}, x.value) : h("span", { class: "muted" }, x.note || "")))))),
    h("h3", {}, "Body (the envelope)"),
    h("pre", { id: "envelope" }, sent.body === null ? "no longer kept" : JSON.stringify(sent.body, null, 2)));
  return out;
}

// ---- event types, keys, audit --------------------------------------------

async function eventTypesView() {
  const list = (await api("GET", wsPath("/event-types"))).data;
  return h("section", {},
    h("h1", {}, "Event types"),
    h("table", {},
      h("thead", {}, h("tr", {}, ["Type", "In catalog", "Description", "Seen", "Last seen"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, list.map((t) => h("tr", {},
        h("td", {}, t.name), h("td", {}, t.in_catalog ? "yes" : "no"), h("td", {}, t.description || ""),
        h("td", {}, String(t.count)), h("td", {}, when(t.last_seen)))))));
}

async function keysView() {
  const list = (await api("GET", wsPath("/keys"))).data;
  const shown = h("div", { role: "status", "aria-live": "polite" });
  const scope = h("select", { id: "key-scope" }, ["read", "write", "admin"].map((s) => h("option", { value: s }, s)));
  const name = h("input", { id: "key-name" });
  const create = h("form", { "aria-label": "Create a key", onsubmit: async (e) => {
    e.preventDefault();
    const k = await api("POST", wsPath("/keys"), { scope: scope.value, name: name.value || undefined });
    shown.replaceChildren(h("div", { class: "secret" }, h("p", {}, "The new key, shown this once:"), h("code", {}, k.key), " ",
      h("button", { type: "button", class: "secondary", onclick: () => navigator.clipboard.writeText(k.key) }, "Copy")));
  } }, h("label", { for: "key-scope" }, "Scope", scope), h("label", { for: "key-name" }, "Name", name), h("button", { type: "submit", "data-write": "" }, "Create key"));
  const rows = list.map((k) => h("tr", {},
    h("td", {}, k.id), h("td", {}, k.name || ""), h("td", {}, k.scope), h("td", {}, k.prefix), h("td", {}, when(k.last_used_at)),
    h("td", {}, k.revoked_at ? `revoked ${when(k.revoked_at)}` : h("button", { type: "button", class: "secondary", "data-write": "",
      "aria-label": `Revoke key ${k.id}`, onclick: async () => {
        if (!confirm(`Revoke ${k.id}? It gets 401 from now on.`)) return;
        await api("DELETE", wsPath(`/keys/${encodeURIComponent(k.id)}`));
        render();
      } }, "Revoke"))));
  return h("section", {}, h("h1", {}, "API keys"), create, shown,
    h("table", {}, h("thead", {}, h("tr", {}, ["Id", "Name", "Scope", "Prefix", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)));
}

async function auditView(params) {
  const page = await api("GET", wsPath(`/audit${query({ before: params.before, limit: 50 })}`));
  return h("section", {}, h("h1", {}, "Audit log"),
    h("table", {}, h("thead", {}, h("tr", {}, ["When", "Who", "Action", "Target", "Detail", "Request"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, page.data.map((e) => h("tr", {},
        h("td", {}, when(e.at)), h("td", {}, e.actor_name ? `${e.actor} (${e.actor_name})` : e.actor), h("td", {}, e.action),
        h("td", {}, e.target), h("td", {}, e.detail || ""), h("td", {}, e.request_id || ""))))),
    pager(null, page.next ? `#/audit?before=${encodeURIComponent(page.next)}` : null));
}

// ---- routing -------------------------------------------------------------

async function render() {
  if (!session) {
    const stored = sessionStorage.getItem(KEY);
    if (stored) {
      try { await signIn(stored); } catch { session = null; sessionStorage.removeItem(KEY); }
    }
  }
  const nav = document.getElementById("nav");
  const out = document.getElementById("sign-out");
  if (!session) {
    nav.hidden = true;
    out.hidden = true;
    document.getElementById("who").textContent = "";
    show(signInView());
    return;
  }
  nav.hidden = false;
  out.hidden = false;
  for (const a of nav.querySelectorAll("[data-scope=admin]")) a.hidden = !isAdmin();
  document.getElementById("who").textContent = `${session.ws} · ${session.scope} key`;
  const { parts, params } = routeParams();
  const views = {
    endpoints: () => endpointsView(params),
    endpoint: () => endpointView(decodeURIComponent(parts[1] || "")),
    deliveries: () => deliveriesView(params),
    delivery: () => deliveryView(decodeURIComponent(parts[1] || "")),
    "event-types": () => eventTypesView(),
    keys: () => keysView(),
    audit: () => auditView(params),
  };
  const view = views[parts[0]] || views.endpoints;
  try {
    say("Loading...");
    show(await view());
    say("");
  } catch (err) {
    show(h("section", {}, h("h1", {}, "Cannot show this"), h("p", { class: "error", role: "alert" }, err.message)));
    say("");
  }
}

document.getElementById("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", render);
// Errors of actions (a click after the page was drawn) show in the status line.
window.addEventListener("unhandledrejection", (e) => say(e.reason ? e.reason.message : "failed", true));
render();
