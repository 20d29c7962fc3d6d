// The freshet dashboard: plain JavaScript, no framework, no build step, served by freshet.
// Everything the API returns reaches the page through textContent or attributes, never as
// HTML, so no value from a receiver's response or an event can run as script.
"use strict";

const KEY = "freshet.apiKey";
const POLL_MS = 2000;
const timers = new Set();
const endpointsById = new Map();

// ---------------------------------------------------------------------------------------------
// DOM helpers

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (selector, root = document) => root.querySelector(selector);
let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

function badge(text, tone, testid) {
  return h("span", { class: `badge ${tone || ""}`, "data-testid": testid }, text);
}

function table(caption, headers, rows, testid) {
  return h("table", { "data-testid": testid },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => {
      const [text, cls] = Array.isArray(t) ? t : [t, null];
      return h("th", { scope: "col", class: cls }, text);
    }))),
    h("tbody", {}, rows));
}

function empty(text, colspan) {
  return h("tr", {}, h("td", { class: "empty", colspan }, text));
}

// ---------------------------------------------------------------------------------------------
// Times

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const UNITS = [["year", 31536e6], ["month", 2592e6], ["day", 864e5], ["hour", 36e5], ["minute", 6e4], ["second", 1e3]];

function ago(iso) {
  const diff = new Date(iso).getTime() - Date.now();
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms || unit === "second") return relative.format(Math.round(diff / ms), unit);
  }
  return "";
}

function clock(iso) {
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** A time as a `<time>` element: the clock time, the relative time as a second line. */
function when(iso, { relativeOnly = false, none = "—" } = {}) {
  if (!iso) return h("span", { class: "sub" }, none);
  const full = new Date(iso).toLocaleString();
  if (relativeOnly) return h("time", { datetime: iso, title: full }, ago(iso));
  return h("span", {}, h("time", { datetime: iso, title: full }, clock(iso)), h("div", { class: "sub" }, ago(iso)));
}

function daysFrom(iso) {
  return Math.round((new Date(iso).getTime() - Date.now()) / 864e5);
}

const short = (id) => (id ? String(id).slice(-8) : "");
function idCell(id) {
  return h("code", { title: id }, `…${short(id)}`);
}

// ---------------------------------------------------------------------------------------------
// Talking to freshet

class ApiProblem extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "request failed");
    this.problem = problem;
  }
}
class SignedOut extends Error {}

async function api(method, path, body) {
  const key = sessionStorage.getItem(KEY);
  if (!key) {
    signOut();
    throw new SignedOut();
  }
  const init = { method, headers: { Authorization: `Bearer ${key}`, Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiProblem({ title: "freshet did not answer", detail: String(e.message || e) });
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { title: `HTTP ${res.status}`, detail: text.slice(0, 200) };
  }
  if (res.status === 401) {
    const why = (data && data.detail) || "the API key was not accepted";
    signOut(`Signed out: ${why}. Sign in with a valid API key.`);
    throw new SignedOut(why);
  }
  if (!res.ok) throw new ApiProblem(data || { title: `HTTP ${res.status}`, status: res.status });
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// ---------------------------------------------------------------------------------------------
// Messages

function say(text, tone) {
  const region = $("#status");
  region.replaceChildren(h("p", { class: tone || "" }, text));
}

function clearProblem(section) {
  const box = $(".problem", section);
  box.hidden = true;
  box.replaceChildren();
}

/** Shows problem details (title, detail, each field error) in `box`. */
function showProblem(box, err) {
  if (err instanceof SignedOut) return;
  const p = err instanceof ApiProblem ? err.problem : { title: "Something went wrong", detail: String(err) };
  const parts = [h("strong", {}, p.title || "Error")];
  if (p.detail) parts.push(h("span", {}, p.detail));
  if (Array.isArray(p.errors) && p.errors.length) {
    parts.push(h("ul", {}, p.errors.map((e) => h("li", {}, h("code", {}, e.field), `: ${e.message}`))));
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Signing in and routing

function signOut(message) {
  sessionStorage.removeItem(KEY);
  $("#api-key").value = "";
  stopTimers();
  endpointsById.clear();
  const error = $("#signin-error");
  error.hidden = !message;
  error.textContent = message || "";
  if (location.hash && location.hash !== "#/signin") {
    history.replaceState(null, "", "#/signin");
  }
  showSignin();
}

function showSignin() {
  for (const s of document.querySelectorAll(".view")) s.hidden = true;
  $("#nav").hidden = true;
  $("#session").hidden = true;
  $("#signin").hidden = false;
  $("#status").replaceChildren();
  document.title = "Sign in · freshet";
  $("#api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("#api-key");
  const key = input.value.trim();
  const error = $("#signin-error");
  if (!key) {
    error.textContent = "Enter an API key.";
    error.hidden = false;
    input.focus();
    return;
  }
  sessionStorage.setItem(KEY, key);
  try {
    await api("GET", "/v1/webhook-endpoints?limit=1");
  } catch (e) {
    error.textContent = e instanceof SignedOut ? `This key was not accepted: ${e.message}.` : e.message;
    error.hidden = false;
    return;
  }
  input.value = "";
  error.hidden = true;
  say("Signed in.", "ok");
  if (location.hash === "#/endpoints") route();
  else location.hash = "#/endpoints";
}

function stopTimers() {
  for (const t of timers) clearTimeout(t);
  timers.clear();
}

function later(fn, ms) {
  const t = setTimeout(() => {
    timers.delete(t);
    fn();
  }, ms);
  timers.add(t);
}

const VIEWS = {
  endpoints: { title: "Endpoints", show: showEndpoints },
  events: { title: "Events", show: showEvents },
  tasks: { title: "Refresh tasks", show: showTasks },
  consents: { title: "Consents", show: showConsents },
};

function route() {
  stopTimers();
  $("#status").replaceChildren();
  const key = sessionStorage.getItem(KEY);
  if (!key) return showSignin();
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const name = VIEWS[path] ? path : "endpoints";
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  $("#session").hidden = false;
  $("#key-hint").textContent = `Key …${key.slice(-4)}`;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${name}`;
  document.title = `${VIEWS[name].title} · freshet`;
  const section = $(`#view-${name}`);
  clearProblem(section);
  VIEWS[name].show(section, new URLSearchParams(search || "")).catch((e) => showProblem($(".problem", section), e));
}

function go(view, params) {
  const q = new URLSearchParams(params).toString();
  const hash = `#/${view}${q ? `?${q}` : ""}`;
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** Previous/next buttons over cursor pages. `back` keeps the cursors of the pages before this
 * one ("~" for the first), so going back needs no cursor from the API. */
function pager(view, params, nextCursor, labels = ["Newer", "Older"]) {
  const back = (params.get("back") || "").split(",").filter(Boolean);
  const current = params.get("cursor") || "~";
  const rest = Object.fromEntries([...params].filter(([k]) => k !== "cursor" && k !== "back"));
  const to = (cursor, stack) => ({
    ...rest,
    ...(cursor !== "~" ? { cursor } : {}),
    ...(stack.length ? { back: stack.join(",") } : {}),
  });
  const prev = h("button", {
    type: "button", class: "btn btn-small", disabled: current === "~", "data-testid": "previous-page",
    onclick: () => go(view, to(back[back.length - 1] || "~", back.slice(0, -1))),
  }, labels[0]);
  const next = h("button", {
    type: "button", class: "btn btn-small", disabled: !nextCursor, "data-testid": "next-page",
    onclick: () => go(view, to(nextCursor, [...back, current])),
  }, labels[1]);
  return h("div", { class: "pager" }, prev, next);
}

// ---------------------------------------------------------------------------------------------
// Endpoints

async function loadEndpoints() {
  const page = await api("GET", "/v1/webhook-endpoints?limit=500");
  endpointsById.clear();
  for (const e of page.data) endpointsById.set(e.id, e);
  return page;
}

function stateCell(e) {
  const tone = e.status === "active" ? "ok" : e.status === "disabled" ? "bad" : "warn";
  const cell = [badge(e.status, tone, "endpoint-state")];
  if (e.disabled_reason) cell.push(h("div", { class: "sub" }, e.disabled_reason));
  else if (e.health && e.health.failing_since) {
    cell.push(h("div", { class: "sub" }, "failing since ", when(e.health.failing_since, { relativeOnly: true })));
  }
  const limits = [];
  if (e.rate_limit) limits.push(`${e.rate_limit}/s`);
  if (e.max_in_flight) limits.push(`${e.max_in_flight} in flight`);
  if (limits.length) cell.push(h("div", { class: "sub" }, `limit ${limits.join(", ")}`));
  if (e.health && e.health.waiting > 0) {
    cell.push(h("div", { class: "sub", "data-testid": "endpoint-waiting" }, `${e.health.waiting} waiting`));
  }
  return cell;
}

function healthCell(hl) {
  if (!hl || hl.attempts === 0) return [h("span", { class: "sub" }, "No attempts in 24 h")];
  const pct = Math.round(hl.success_rate * 1000) / 10;
  return [
    h("div", { class: "health" },
      h("meter", { min: 0, max: 1, low: 0.9, high: 0.99, optimum: 1, value: hl.success_rate, "aria-label": `Success rate ${pct}%` }),
      h("span", { class: `rate ${hl.success_rate >= 0.9 ? "code-ok" : "code-bad"}` }, `${pct}%`)),
    h("div", { class: "sub" }, `${hl.succeeded} of ${hl.attempts} ${hl.attempts === 1 ? "attempt" : "attempts"}`),
  ];
}

function failureCell(hl) {
  const f = hl && hl.last_failure;
  if (!f) return h("span", { class: "sub" }, "None");
  const what = f.status_code ? `HTTP ${f.status_code}` : f.error || "no answer";
  return h("span", {}, when(f.at, { relativeOnly: true }), h("div", { class: "sub code-bad", title: f.error || "" }, what));
}

async function showEndpoints(section, params) {
  const body = $("#endpoints-body");
  body.replaceChildren(h("p", { class: "empty" }, "Loading endpoints…"));
  const page = await loadEndpoints();
  const rows = [];
  for (const e of page.data) {
    const replayId = nextId("replay");
    const detail = h("tr", { class: "detail", id: replayId, hidden: true },
      h("td", { colspan: 7 }, replayForm(section, e)));
    const replayButton = h("button", {
      type: "button", class: "btn btn-small", "aria-expanded": "false", "aria-controls": replayId, "data-testid": "replay-toggle",
      onclick: () => {
        const open = detail.hidden;
        detail.hidden = !open;
        replayButton.setAttribute("aria-expanded", String(open));
        if (open) $("input", detail).focus();
      },
    }, "Replay…");
    rows.push(h("tr", { "data-testid": "endpoint-row", "data-endpoint-id": e.id },
      h("td", {}, h("div", { class: "url" }, e.url), e.description ? h("div", { class: "sub" }, e.description) : null),
      h("td", {}, h("code", {}, e.dialect)),
      h("td", {}, stateCell(e)),
      h("td", { "data-testid": "endpoint-health" }, healthCell(e.health)),
      h("td", {}, when(e.health && e.health.last_success_at, { relativeOnly: true, none: "Never" })),
      h("td", {}, failureCell(e.health)),
      h("td", {}, h("div", { class: "actions" },
        h("button", {
          type: "button", class: "btn btn-small", "data-testid": "send-test",
          onclick: (ev) => sendTest(section, e, ev.currentTarget),
        }, "Send test"),
        replayButton))));
    rows.push(detail);
  }
  if (!rows.length) rows.push(empty("No endpoints yet: create one with POST /v1/webhook-endpoints.", 7));
  body.replaceChildren(table("Webhook endpoints",
    ["Endpoint", "Dialect", "State", "Success (24 h)", "Last success", "Last failure", "Actions"], rows, "endpoints-table"));
}

async function sendTest(section, endpoint, button) {
  clearProblem(section);
  button.disabled = true;
  try {
    const out = await api("POST", `/v1/webhook-endpoints/${endpoint.id}/test`);
    say(`Test event …${short(out.event_id)} sent to ${endpoint.url}. Its delivery shows under Events.`, "ok");
    later(() => showEndpoints(section).catch((e) => showProblem($(".problem", section), e)), POLL_MS);
  } catch (e) {
    showProblem($(".problem", section), e);
  } finally {
    button.disabled = false;
  }
}

function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function replayForm(section, endpoint) {
  const sinceId = nextId("since");
  const untilId = nextId("until");
  const since = h("input", { id: sinceId, type: "datetime-local", required: true, value: localInput(new Date(Date.now() - 36e5)) });
  const until = h("input", { id: untilId, type: "datetime-local" });
  return h("form", {
    class: "replay-form",
    onsubmit: async (ev) => {
      ev.preventDefault();
      clearProblem(section);
      const body = { since: since.value ? new Date(since.value).toISOString() : "" };
      if (until.value) body.until = new Date(until.value).toISOString();
      try {
        const out = await api("POST", `/v1/webhook-endpoints/${endpoint.id}/replay`, body);
        say(`Replay queued for ${endpoint.url}: ${out.requeued} deliveries sent again, ${out.created} created.`, "ok");
      } catch (e) {
        showProblem($(".problem", section), e);
      }
    },
  },
  h("div", {}, h("label", { for: sinceId }, "From (your time)"), since),
  h("div", {}, h("label", { for: untilId }, "Until (empty: now)"), until),
  h("button", { type: "submit", class: "btn btn-primary btn-small", "data-testid": "replay" }, "Replay events"));
}

// ---------------------------------------------------------------------------------------------
// Events, deliveries, attempts

const DELIVERY_TONE = { succeeded: "ok", failed: "bad", dead: "bad", pending: "warn", delivering: "info" };
const inFlight = (d) => d.status === "pending" || d.status === "delivering";

async function showEvents(section, params) {
  const select = $("#event-type");
  select.value = params.get("type") || "";
  const body = $("#events-body");
  body.replaceChildren(h("p", { class: "empty" }, "Loading events…"));
  await loadEndpoints(); // for each delivery's endpoint URL
  const page = await api("GET", `/v1/events${query({ order: "desc", limit: 25, type: params.get("type"), cursor: params.get("cursor") })}`);
  const rows = [];
  for (const ev of page.data) rows.push(...eventRows(section, ev));
  if (!rows.length) rows.push(empty("No events match.", 4));
  body.replaceChildren(
    table("Events, newest first", ["Type", "Time", "Customer", "Event"], rows, "events-table"),
    pager("events", params, page.next_cursor));
}

function eventRows(section, ev) {
  const detailId = nextId("event");
  const cell = h("td", { colspan: 4 });
  const detail = h("tr", { class: "detail", id: detailId, hidden: true }, cell);
  const toggle = h("button", {
    type: "button", class: "btn-link", "aria-expanded": "false", "aria-controls": detailId, "data-testid": "event-toggle",
    title: "Show this event's deliveries",
    onclick: async () => {
      const open = detail.hidden;
      detail.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (open) await renderDeliveries(section, ev, cell);
    },
  }, h("span", { class: "chev", "aria-hidden": "true" }, "▸"),
    h("span", { class: "visually-hidden" }, "Deliveries of "), h("code", {}, ev.type));
  const row = h("tr", { "data-testid": "event-row", "data-event-id": ev.id },
    h("td", {}, toggle),
    h("td", {}, when(ev.created_at)),
    h("td", {}, ev.customer_id ? idCell(ev.customer_id) : h("span", { class: "sub" }, "—")),
    h("td", {}, idCell(ev.id)));
  return [row, detail];
}

async function renderDeliveries(section, ev, cell) {
  // A refresh keeps open the attempts the operator opened.
  const open = new Set([...cell.querySelectorAll("tr[data-delivery-id]")]
    .filter((r) => $("[data-testid=attempts-toggle]", r).getAttribute("aria-expanded") === "true")
    .map((r) => r.dataset.deliveryId));
  if (!cell.children.length) cell.replaceChildren(h("p", { class: "sub" }, "Loading deliveries…"));
  try {
    const list = await api("GET", `/v1/events/${ev.id}/deliveries`);
    const tbody = [];
    for (const d of list.data) tbody.push(...deliveryRows(section, d, open.has(d.id)));
    if (!tbody.length) tbody.push(empty("No endpoint took this event.", 6));
    cell.replaceChildren(table(`Deliveries of event …${short(ev.id)}`,
      ["Endpoint", "Status", ["Attempts", "num"], "Last response", "Next attempt", "Actions"], tbody, "deliveries-table"));
    if (list.data.some(inFlight)) {
      later(() => { if (cell.isConnected && !cell.closest("[hidden]")) renderDeliveries(section, ev, cell); }, POLL_MS);
    }
  } catch (e) {
    showProblem($(".problem", section), e);
  }
}

function lastResponse(d) {
  if (d.last_status_code) {
    const ok = d.last_status_code >= 200 && d.last_status_code < 300;
    return h("span", { class: ok ? "code-ok" : "code-bad" }, `HTTP ${d.last_status_code}`);
  }
  if (d.last_error) return h("span", { class: "code-bad" }, d.last_error);
  return h("span", { class: "sub" }, "—");
}

/** A delivery's row and the row of its attempts below it; `open` shows the attempts. */
function deliveryRows(section, d, open) {
  const endpoint = endpointsById.get(d.endpoint_id);
  const attemptsId = nextId("attempts");
  const cell = h("td", { colspan: 6 });
  const detail = h("tr", { class: "detail", id: attemptsId, hidden: !open }, cell);
  const toggle = h("button", {
    type: "button", class: "btn-link", "aria-expanded": String(open), "aria-controls": attemptsId,
    "data-testid": "attempts-toggle",
    onclick: async () => {
      const show = detail.hidden;
      detail.hidden = !show;
      toggle.setAttribute("aria-expanded", String(show));
      if (show) await renderAttempts(section, d, cell);
    },
  }, h("span", { class: "chev", "aria-hidden": "true" }, "▸"), "Attempts");
  const retry = h("button", {
    type: "button", class: "btn btn-small", "data-testid": "retry-delivery", disabled: d.status === "delivering",
    onclick: () => retryDelivery(section, d, row, detail),
  }, "Retry");
  const row = h("tr", { "data-testid": "delivery-row", "data-delivery-id": d.id },
    h("td", {}, h("div", { class: "url" }, endpoint ? endpoint.url : `endpoint …${short(d.endpoint_id)}`),
      endpoint ? h("div", { class: "sub" }, endpoint.dialect) : null),
    h("td", {}, badge(d.status, DELIVERY_TONE[d.status], "delivery-status")),
    h("td", { class: "num" }, d.attempts),
    h("td", {}, lastResponse(d)),
    h("td", {}, d.status === "failed" || d.status === "pending" ? when(d.next_attempt_at, { relativeOnly: true }) : h("span", { class: "sub" }, "—")),
    h("td", {}, h("div", { class: "actions" }, toggle, retry)));
  if (open) renderAttempts(section, d, cell);
  return [row, detail];
}

async function renderAttempts(section, d, cell) {
  try {
    const list = await api("GET", `/v1/deliveries/${d.id}/attempts`);
    const rows = list.data.map((a) => {
      const ok = a.status_code >= 200 && a.status_code < 300;
      return h("tr", { "data-testid": "attempt-row" },
        h("td", {}, when(a.attempted_at)),
        h("td", {}, h("span", { class: a.status_code ? (ok ? "code-ok" : "code-bad") : "code-bad", "data-testid": "attempt-status" },
          a.status_code ? String(a.status_code) : "no answer")),
        h("td", { class: "num" }, `${a.latency_ms} ms`),
        h("td", {}, a.error ? h("div", { class: "code-bad" }, a.error) : null,
          a.response_excerpt ? h("pre", { class: "excerpt mono" }, a.response_excerpt) : (a.error ? null : h("span", { class: "sub" }, "Empty body"))),
        h("td", {}, h("code", {}, a.node)));
    });
    if (!rows.length) rows.push(empty("No attempt yet.", 5));
    cell.replaceChildren(table(`Attempts of delivery …${short(d.id)}`,
      ["Time", "Status", ["Latency", "num"], "Response excerpt or error", "Node"], rows, "attempts-table"));
  } catch (e) {
    showProblem($(".problem", section), e);
  }
}

async function retryDelivery(section, d, row, detail) {
  clearProblem(section);
  try {
    await api("POST", `/v1/deliveries/${d.id}/retry`);
  } catch (e) {
    showProblem($(".problem", section), e);
    return;
  }
  say(`Retrying delivery …${short(d.id)}…`);
  let current = { ...d, status: "pending" };
  const deadline = Date.now() + 30000;
  const replace = (fresh, open) => {
    const hadFocus = row.contains(document.activeElement);
    const [newRow, newDetail] = deliveryRows(section, fresh, open);
    row.replaceWith(newRow);
    detail.replaceWith(newDetail);
    row = newRow;
    detail = newDetail;
    if (hadFocus) $("[data-testid=retry-delivery]", row).focus();
  };
  replace(current, !detail.hidden);
  try {
    while (inFlight(current) && Date.now() < deadline && row.isConnected) {
      await new Promise((r) => setTimeout(r, 400));
      current = await api("GET", `/v1/deliveries/${d.id}`);
    }
  } catch (e) {
    showProblem($(".problem", section), e);
    return;
  }
  if (!row.isConnected) return;
  replace(current, true);
  if (current.status === "succeeded") say(`Delivery …${short(d.id)} succeeded (HTTP ${current.last_status_code}).`, "ok");
  else if (inFlight(current)) say(`Delivery …${short(d.id)} is still ${current.status}.`);
  else say(`Delivery …${short(d.id)} ${current.status}: ${current.last_status_code ? `HTTP ${current.last_status_code}` : current.last_error || "no answer"}.`, "bad");
}

// ---------------------------------------------------------------------------------------------
// Refresh tasks

const TASK_TONE = { Completed: "ok", Failed: "bad", Running: "info", Pending: "warn" };
const STAGES = ["started", "login_success", "account_summary_received", "finished"];
const STAGE_TEXT = { started: "started", login_success: "logged in", account_summary_received: "accounts received", finished: "finished" };
const taskOpen = (s) => s === "Pending" || s === "Running";

function steps(sub) {
  let reached = -1;
  if (sub.status !== "Pending") reached = 0;
  if (sub.stage) reached = STAGES.indexOf(sub.stage);
  if (!taskOpen(sub.status)) reached = 3;
  const label = sub.status === "Pending" ? "queued"
    : sub.status === "Failed" ? `failed after ${STAGE_TEXT[sub.stage || "started"]}`
    : STAGE_TEXT[STAGES[Math.max(reached, 0)]];
  return h("div", { class: "steps", role: "img", "aria-label": `Progress: ${label}`, title: label },
    STAGES.map((_, i) => {
      let cls = "";
      if (i <= reached) cls = sub.status === "Failed" && i === 3 ? "failed" : "done";
      else if (i === reached + 1 && sub.status === "Running") cls = "now";
      return h("span", { class: `seg ${cls}` });
    }), h("span", { class: "sub", "aria-hidden": "true" }, label));
}

function taskCard(t) {
  const subs = t.sub_tasks.map((s) => h("tr", { "data-testid": "subtask-row" },
    h("td", {}, h("strong", {}, s.provider)),
    h("td", {}, badge(s.status, TASK_TONE[s.status], "subtask-status")),
    h("td", {}, steps(s)),
    h("td", {}, s.result ? h("code", { class: s.result === "success" ? "code-ok" : "code-bad" }, s.result) : h("span", { class: "sub" }, "—"),
      s.reconnect_required ? h("div", {}, badge("reconnect required", "bad")) : null),
    h("td", { class: "num" }, s.attempts),
    h("td", { class: "num" }, s.account_ids.length),
    h("td", {}, when(s.started_at)),
    h("td", {}, when(s.finished_at))));
  return h("article", { class: "task", "data-testid": "task", "aria-label": `Refresh task …${short(t.task_id)}` },
    h("div", { class: "task-head" },
      badge(t.status, TASK_TONE[t.status], "task-status"),
      h("h2", {}, "Task ", idCell(t.task_id)),
      h("span", { class: "meta" }, "customer ", idCell(t.customer_id)),
      h("span", { class: "meta" }, t.trigger),
      t.has_new_transactions ? badge("new transactions", "info") : null,
      h("span", { class: "spacer" }),
      t.result ? h("code", { class: t.result === "success" ? "code-ok" : "code-bad" }, t.result) : null,
      h("span", { class: "meta" }, "started ", when(t.created_at, { relativeOnly: true }))),
    h("div", { class: "table-wrap" }, table(`Banks of task …${short(t.task_id)}`,
      ["Bank", "Status", "Progress", "Result", ["Attempts", "num"], ["Accounts", "num"], "Started", "Finished"], subs, "subtasks-table")));
}

async function showTasks(section, params) {
  $("#task-status").value = params.get("status") || "";
  const body = $("#tasks-body");
  if (!body.children.length) body.replaceChildren(h("p", { class: "empty" }, "Loading refresh tasks…"));
  const page = await api("GET", `/v1/refresh-tasks${query({ limit: 20, status: params.get("status"), cursor: params.get("cursor") })}`);
  const cards = page.data.map(taskCard);
  if (!cards.length) cards.push(h("div", { class: "table-wrap" }, h("p", { class: "empty" }, "No refresh tasks match.")));
  body.replaceChildren(...cards, pager("tasks", params, page.next_cursor));
  const live = page.data.some((t) => taskOpen(t.status) || t.sub_tasks.some((s) => taskOpen(s.status)));
  $("#tasks-live").hidden = !live;
  if (live && !section.hidden) {
    later(() => showTasks(section, params).catch((e) => showProblem($(".problem", section), e)), POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// Consents

const CONSENT_TONE = { authorised: "ok", awaiting_authorisation: "warn", expired: "bad", error: "bad", rejected: "bad", revoked: "", deleted_by_user: "" };

function expiry(c) {
  if (!c.expires_at) return h("span", { class: "sub" }, "No expiry");
  const days = daysFrom(c.expires_at);
  const text = days > 1 ? `in ${days} days` : days === 1 ? "tomorrow" : days === 0 ? "today" : days === -1 ? "yesterday" : `${-days} days ago`;
  const tone = days < 0 ? "bad" : days <= 7 ? "warn" : "";
  return h("span", {},
    h("time", { datetime: c.expires_at, title: new Date(c.expires_at).toLocaleString() }, new Date(c.expires_at).toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" })),
    h("div", {}, tone ? badge(text, tone, "consent-expiry") : h("span", { class: "sub", "data-testid": "consent-expiry" }, text)));
}

async function showConsents(section, params) {
  $("#consent-status").value = params.get("status") || "";
  const body = $("#consents-body");
  body.replaceChildren(h("p", { class: "empty" }, "Loading consents…"));
  const page = await api("GET", `/v1/consents${query({ limit: 100, status: params.get("status"), cursor: params.get("cursor") })}`);
  const rows = page.data.map((c) => h("tr", { "data-testid": "consent-row" },
    h("td", {}, idCell(c.id)),
    h("td", {}, idCell(c.customer_id)),
    h("td", {}, h("strong", {}, c.provider_id)),
    h("td", {}, badge(c.status.replaceAll("_", " "), CONSENT_TONE[c.status], "consent-status")),
    h("td", {}, expiry(c)),
    h("td", {}, c.reconnect_required ? badge("Reconnect required", "bad", "consent-reconnect") : h("span", { class: "sub" }, "No")),
    h("td", {}, when(c.last_refreshed_at, { relativeOnly: true, none: "Never" })),
    h("td", {}, c.status === "authorised" ? when(c.next_refresh_at, { relativeOnly: true }) : h("span", { class: "sub" }, "—"))));
  if (!rows.length) rows.push(empty("No consents match.", 8));
  body.replaceChildren(
    table("Consents", ["Consent", "Customer", "Bank", "Status", "Expires", "Reconnect", "Last refreshed", "Next refresh"], rows, "consents-table"),
    pager("consents", params, page.next_cursor, ["First page", "Next page"]));
}

// ---------------------------------------------------------------------------------------------
// Wiring

function filterTo(formId, view, field) {
  $(formId).addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = ev.currentTarget.elements[field].value;
    go(view, value ? { [field]: value } : {});
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  filterTo("#events-filter", "events", "type");
  filterTo("#tasks-filter", "tasks", "status");
  filterTo("#consents-filter", "consents", "status");
  $("#view-endpoints [data-action=reload]").addEventListener("click", () => route());
  window.addEventListener("hashchange", route);
  route();
});
