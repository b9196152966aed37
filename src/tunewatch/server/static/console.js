// tunewatch web console: vanilla JS, no build step. Every value from the API is put in the page with
// textContent / setAttribute (never innerHTML), because alert annotations and labels come from events and
// rule files and may hold hostile text.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 5000;

const state = {
  tz: localStorage.getItem("tunewatch-tz") === "utc" ? "utc" : "local",
  clockOffset: 0, // service clock minus browser clock (simulated in `tunewatch run`)
  active: [],
  silences: [],
  history: null,
  series: null, // last series search answer
  selected: null, // JSON [metric, dims] of the charted series
  chart: null, // last points answer of the charted series
  metrics: {}, // metric -> {description, unit}
};

// ------------------------------------------------------------------------------------------ DOM helpers

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function message(sel, text) {
  const box = $(sel);
  box.textContent = text || "";
  box.hidden = !text;
}

function showError(text) {
  message("#error", text);
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const key = sessionStorage.getItem("tunewatch-key");
  if (key) opts.headers["X-API-Key"] = key;
  const response = await fetch(path, opts);
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    throw new Error(`${response.status} ${response.statusText}${detailText(body) ? ": " + detailText(body) : ""}`);
  }
  if (body && Number.isFinite(body.now)) state.clockOffset = body.now - Date.now();
  return body;
}

function detailText(body) {
  if (!body || body.detail === undefined) return "";
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) {
    return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return JSON.stringify(body.detail);
}

// a fetcher of one kind of query whose stale answers (a newer request of that kind was sent since) are null
// (`cancel()` makes the answers still on their way stale)
function latestOnly() {
  let seq = 0;
  const fetcher = async (path) => {
    const mine = ++seq;
    try {
      const answer = await api(path);
      return mine === seq ? answer : null;
    } catch (err) {
      if (mine === seq) throw err;
      return null;
    }
  };
  fetcher.cancel = () => {
    seq += 1;
  };
  return fetcher;
}

// a section's query: its errors shown beside it, except a missing or refused key (the banner at the top)
async function sectionAnswer(fetcher, path, sel, what) {
  try {
    const answer = await fetcher(path);
    if (answer) message(sel, "");
    return answer;
  } catch (err) {
    if (/^40[13] /.test(err.message)) throw err;
    message(sel, `${what}: ${err.message}`);
    return null;
  }
}

// ------------------------------------------------------------------------------------------ times

const pad = (n) => String(n).padStart(2, "0");

function parseTime(text) {
  if (!text || text.startsWith("0001-")) return null;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : null;
}

function utcOffsetText(d) {
  const off = -d.getTimezoneOffset();
  return `UTC${off >= 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

function parts(ms) {
  const d = new Date(ms);
  if (state.tz === "utc") {
    return { y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(), h: d.getUTCHours(),
      mi: d.getUTCMinutes(), s: d.getUTCSeconds(), zone: "UTC" };
  }
  return { y: d.getFullYear(), mo: d.getMonth() + 1, d: d.getDate(), h: d.getHours(), mi: d.getMinutes(),
    s: d.getSeconds(), zone: utcOffsetText(d) };
}

function formatTime(ms) {
  const p = parts(ms);
  return `${p.y}-${pad(p.mo)}-${pad(p.d)} ${pad(p.h)}:${pad(p.mi)}:${pad(p.s)} ${p.zone}`;
}

function serviceNow() {
  return Date.now() + state.clockOffset;
}

function relativeAge(ms) {
  const delta = serviceNow() - ms;
  const abs = Math.abs(delta);
  if (abs < 10000) return "just now";
  let text;
  if (abs < 90000) text = `${Math.round(abs / 1000)} s`;
  else if (abs < 90 * 60000) text = `${Math.round(abs / 60000)} min`;
  else if (abs < 48 * 3600000) text = `${Math.round(abs / 3600000)} h`;
  else text = `${Math.round(abs / 86400000)} d`;
  return delta >= 0 ? `${text} ago` : `in ${text}`;
}

function timeCell(ms) {
  const td = el("td", null, "when");
  if (ms === null || ms === undefined) return td;
  const t = el("time", formatTime(ms), "abs");
  t.setAttribute("datetime", new Date(ms).toISOString());
  td.appendChild(t);
  const age = el("div", relativeAge(ms), "age muted");
  age.dataset.ms = String(ms);
  td.appendChild(age);
  return td;
}

// ages follow the service clock, known from the answers that carry `now`
function updateAges() {
  for (const node of document.querySelectorAll(".age[data-ms]")) node.textContent = relativeAge(Number(node.dataset.ms));
}

// a datetime-local value read in the chosen time zone
function parseInputTime(value) {
  if (!value) return null;
  const ms = state.tz === "utc" ? Date.parse(value + "Z") : new Date(value).getTime();
  return Number.isFinite(ms) ? ms : null;
}

// ------------------------------------------------------------------------------------------ alerts

function dimsText(dims) {
  const entries = Object.entries(dims || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(", ") : "global";
}

function labelChips(labels) {
  const td = el("td", null, "labels");
  for (const [k, v] of Object.entries(labels || {})) {
    if (k === "alertname" || k === "severity") continue;
    td.appendChild(el("span", `${k}=${v}`));
  }
  return td;
}

function severityCell(labels) {
  const sev = labels.severity || "";
  return el("td", sev, `sev-${sev.replace(/[^a-z]/g, "")}`);
}

function explanationCell(a) {
  const ex = el("td", null, "explanation");
  const ann = a.annotations || {};
  ex.appendChild(el("div", ann.summary || "", "summary"));
  const details = [];
  if (ann.actual || ann.expected) details.push(`actual ${ann.actual ?? "?"}, expected ${ann.expected ?? "?"}`);
  if (ann.top_contributors) details.push(`top contributors: ${ann.top_contributors}`);
  if (ann.revenue_at_risk_per_hour) details.push(`revenue at risk ${ann.revenue_at_risk_per_hour}/h`);
  for (const d of details) ex.appendChild(el("div", d, "muted"));
  const info = a.explanation || {};
  if (info.root_cause_of && typeof info.root_cause_of === "object") {
    ex.appendChild(el("div", `root cause of the alert on ${dimsText(info.root_cause_of)}`, "rootcause"));
  }
  const affected = Array.isArray(info.also_affected) ? info.also_affected : [];
  if (affected.length) {
    const box = el("div", null, "incident");
    box.appendChild(el("span", `incident: ${affected.length + 1} slices — also affected `, "incident-head"));
    for (const e of affected) {
      const share = Number.isFinite(e.share_explained) ? ` (${Math.round(100 * e.share_explained)}% explained)` : "";
      box.appendChild(el("span", `${e.alertname || "?"} on ${dimsText(e.dims)}${share}`, "affected"));
    }
    ex.appendChild(box);
  }
  if (ann.runbook_url && /^https?:\/\//.test(ann.runbook_url)) {
    const link = el("a", "runbook");
    link.setAttribute("href", ann.runbook_url);
    link.setAttribute("rel", "noopener noreferrer");
    link.setAttribute("target", "_blank");
    ex.appendChild(link);
  }
  return ex;
}

function silenceButtonCell(a) {
  const cell = el("td");
  const button = el("button", "Silence…", "silence-this");
  button.type = "button";
  button.title = "Fill the silence form with this alert's labels and preview what it mutes";
  button.addEventListener("click", () => silenceAlert(a));
  cell.appendChild(button);
  return cell;
}

function emptyRow(body, text, cols) {
  const row = el("tr");
  const cell = el("td", text, "muted");
  cell.colSpan = cols;
  row.appendChild(cell);
  body.appendChild(row);
}

function renderAlerts() {
  const alerts = state.active;
  const body = $("#alerts tbody");
  body.replaceChildren();
  $("#alert-count").textContent = `(${alerts.length})`;
  if (!alerts.length) emptyRow(body, "No active alerts.", 7);
  for (const a of alerts) {
    const row = el("tr");
    row.dataset.fingerprint = a.fingerprint;
    row.appendChild(el("td", a.labels.alertname || "", "alertname"));
    row.appendChild(severityCell(a.labels));
    row.appendChild(labelChips(a.labels));
    row.appendChild(explanationCell(a));
    row.appendChild(timeCell(parseTime(a.startsAt)));
    row.appendChild(el("td", (a.silencedBy || []).length ? "yes" : "", "silenced"));
    row.appendChild(silenceButtonCell(a));
    body.appendChild(row);
  }
}

async function refreshAlerts() {
  state.active = await api("/api/v1/alerts");
  renderAlerts();
  renderHistory(); // its Silence… buttons follow what fires now
}

// ------------------------------------------------------------------------------------------ silences

// matchers typed as `a=1 b="x y"`, `a=1, b=2` or `{a="1", b=~"2"}`: split outside double quotes
function splitMatchers(text) {
  let t = text.trim();
  if (t.startsWith("{") && t.endsWith("}")) t = t.slice(1, -1);
  const out = [];
  let buf = "";
  let quoted = false;
  let escaped = false;
  for (const ch of t) {
    if (!quoted && (ch === "," || /\s/.test(ch))) {
      if (buf) out.push(buf);
      buf = "";
      continue;
    }
    buf += ch;
    if (escaped) escaped = false;
    else if (ch === "\\") escaped = true;
    else if (ch === '"') quoted = !quoted;
  }
  if (buf) out.push(buf);
  return out;
}

function silenceAlert(a) {
  $("#silence-matchers").value = Object.entries(a.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ");
  $("#silence-form").scrollIntoView({ block: "start" });
  $("#silence-comment").focus();
  updatePreview();
}

const previewFetch = latestOnly();

async function updatePreview() {
  const items = splitMatchers($("#silence-matchers").value);
  const box = $("#silence-preview");
  const head = box.querySelector(".preview-head");
  const list = box.querySelector(".preview-list");
  if (!items.length) {
    previewFetch.cancel();
    box.hidden = true;
    return;
  }
  const params = new URLSearchParams();
  for (const m of items) params.append("matcher", m);
  let answer;
  try {
    answer = await previewFetch(`/api/v1/console/silence-preview?${params}`);
  } catch (err) {
    box.hidden = false;
    box.className = "preview invalid";
    head.textContent = `These matchers cannot make a silence: ${err.message}`;
    list.replaceChildren();
    return;
  }
  if (!answer) return; // a newer preview is on its way
  box.hidden = false;
  const n = answer.alerts.length;
  box.className = n ? "preview" : "preview none";
  box.dataset.matched = String(n);
  if (!n) head.textContent = `Matches none of the ${answer.active} active alerts (it would still mute future ones that match).`;
  else if (n === answer.active && n > 1) head.textContent = `Would mute every one of the ${n} active alerts:`;
  else head.textContent = `Would mute ${n} of the ${answer.active} active alerts:`;
  list.replaceChildren();
  for (const a of answer.alerts) {
    const item = el("li");
    item.dataset.fingerprint = a.fingerprint;
    item.appendChild(el("strong", a.labels.alertname || ""));
    const dims = Object.fromEntries(Object.entries(a.labels).filter(([k]) => !["alertname", "severity", "metric"].includes(k)));
    item.appendChild(el("span", ` ${a.labels.metric || ""} on ${dimsText(dims)} `));
    item.appendChild(el("span", (a.annotations || {}).summary || "", "muted"));
    if ((a.silencedBy || []).length) item.appendChild(el("span", " (already silenced)", "muted"));
    list.appendChild(item);
  }
}

function renderSilences() {
  const body = $("#silences tbody");
  body.replaceChildren();
  for (const s of state.silences) {
    const row = el("tr");
    row.dataset.id = s.id;
    row.className = `silence state-${s.state}`;
    row.appendChild(el("td", s.matchers.join(", "), "matchers"));
    row.appendChild(el("td", s.state, "state"));
    row.appendChild(timeCell(parseTime(s.startsAt)));
    row.appendChild(timeCell(parseTime(s.endsAt)));
    row.appendChild(el("td", s.createdBy));
    row.appendChild(el("td", s.comment, "comment"));
    const cell = el("td");
    if (s.state !== "expired") {
      const button = el("button", "Expire", "expire");
      button.type = "button";
      button.addEventListener("click", () => expireSilence(s.id));
      cell.appendChild(button);
    }
    row.appendChild(cell);
    body.appendChild(row);
  }
}

async function refreshSilences() {
  state.silences = await api("/api/v1/silences");
  renderSilences();
}

async function expireSilence(id) {
  try {
    await api(`/api/v1/silences/${encodeURIComponent(id)}`, { method: "DELETE" });
    message("#silence-message", "");
    await Promise.all([refreshSilences(), refreshAlerts()]);
  } catch (err) {
    message("#silence-message", `cannot expire silence: ${err.message}`);
  }
}

async function createSilence(event) {
  event.preventDefault();
  const body = {
    matchers: splitMatchers($("#silence-matchers").value),
    duration: $("#silence-duration").value.trim() || "1h",
    comment: $("#silence-comment").value.trim(),
    created_by: $("#silence-author").value.trim() || "console",
  };
  try {
    await api("/api/v1/silences", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    message("#silence-message", "");
    $("#silence-form").reset();
    updatePreview();
    await Promise.all([refreshSilences(), refreshAlerts()]);
  } catch (err) {
    message("#silence-message", `cannot create silence: ${err.message}`);
  }
}

// ------------------------------------------------------------------------------------------ history

function setOptions(select, values) {
  const current = select.value;
  const wanted = ["", ...values];
  if (select.options.length === wanted.length && [...select.options].every((o, i) => o.value === wanted[i])) return;
  select.replaceChildren();
  for (const v of wanted) {
    const option = el("option", v || "any");
    option.value = v;
    select.appendChild(option);
  }
  if (!wanted.includes(current)) {
    const option = el("option", current); // keep a chosen value that left the log
    option.value = current;
    select.appendChild(option);
  }
  select.value = current;
}

function historyQuery() {
  const params = new URLSearchParams();
  const add = (name, sel) => {
    const v = $(sel).value.trim();
    if (v) params.append(name, v);
  };
  add("q", "#history-q");
  add("state", "#history-state");
  add("severity", "#history-severity");
  add("alertname", "#history-alertname");
  add("metric", "#history-metric");
  for (const s of $("#history-slice").value.split(/[\s,]+/).filter(Boolean)) params.append("slice", s);
  const range = $("#history-range").value;
  if (range === "custom") {
    const from = parseInputTime($("#history-from").value);
    const to = parseInputTime($("#history-to").value);
    if (from !== null) params.set("since", String(Math.max(0, from)));
    if (to !== null) params.set("until", String(Math.max(0, to)));
  } else if (range) {
    params.set("since", String(Math.max(0, Math.round(serviceNow() - Number(range)))));
  }
  params.set("limit", "200");
  return params;
}

function renderHistory() {
  const answer = state.history;
  if (!answer) return;
  const body = $("#history tbody");
  body.replaceChildren();
  const shown = answer.alerts.length;
  $("#history-count").textContent = shown < answer.total ? `(newest ${shown} of ${answer.total})` : `(${answer.total})`;
  if (!shown) emptyRow(body, answer.scanned ? "No alert matches these filters." : "No alert has fired yet.", 7);
  for (const a of answer.alerts) {
    const row = el("tr", null, `change status-${a.status}`);
    row.dataset.fingerprint = a.fingerprint;
    row.dataset.status = a.status;
    row.appendChild(timeCell(a.at));
    row.appendChild(el("td", a.status, "status"));
    row.appendChild(el("td", a.labels.alertname || "", "alertname"));
    row.appendChild(severityCell(a.labels));
    row.appendChild(labelChips(a.labels));
    row.appendChild(explanationCell(a));
    const firingNow = a.status === "firing" && state.active.some((x) => x.fingerprint === a.fingerprint);
    row.appendChild(firingNow ? silenceButtonCell(a) : el("td")); // a silence mutes what fires now or later
    body.appendChild(row);
  }
  const f = answer.facets;
  setOptions($("#history-severity"), f.severity);
  setOptions($("#history-alertname"), f.alertname);
  setOptions($("#history-metric"), f.metric);
  const list = $("#history-slices");
  list.replaceChildren();
  for (const [field, values] of Object.entries(f.slice)) {
    for (const v of values) {
      const option = el("option");
      option.value = `${field}=${v}`;
      list.appendChild(option);
    }
  }
}

const historyFetch = latestOnly();

async function refreshHistory() {
  const path = `/api/v1/console/alerts?${historyQuery()}`;
  const answer = await sectionAnswer(historyFetch, path, "#history-message", "cannot search the alert history");
  if (!answer) return;
  state.history = answer;
  renderHistory();
}

// ------------------------------------------------------------------------------------------ series

function seriesQuery() {
  const params = new URLSearchParams();
  const q = $("#series-q").value.trim();
  if (q) params.set("q", q);
  const metric = $("#series-metric").value;
  if (metric) params.set("metric", metric);
  for (const s of $("#series-slice").value.split(/[\s,]+/).filter(Boolean)) params.append("slice", s);
  params.set("limit", "100");
  return params;
}

// one key per series whatever the order of its dimensions
function seriesKey(s) {
  return JSON.stringify([s.metric, Object.fromEntries(Object.entries(s.dims).sort())]);
}

// a notification's link (its generatorURL: /?metric=…&market=…) opens that series
function openLinkedSeries() {
  const linked = new URLSearchParams(window.location.search);
  const metric = linked.get("metric");
  if (!metric) return;
  const dims = {};
  for (const [k, v] of linked) if (k !== "metric") dims[k] = v;
  state.selected = seriesKey({ metric, dims });
  $("#series-slice").value = Object.entries(dims).map(([k, v]) => `${k}=${v}`).join(" ");
}

function renderSeriesList() {
  const answer = state.series;
  if (!answer) return;
  const list = $("#series-results");
  list.replaceChildren();
  const shown = answer.series.length;
  $("#series-count").textContent = shown < answer.total ? `(first ${shown} of ${answer.total})` : `(${answer.total})`;
  if (!shown) list.appendChild(el("li", "No series match: ingest events and wait for a window to close, or widen the search.", "muted"));
  for (const s of answer.series) {
    const item = el("li");
    const button = el("button", s.name, "series-pick");
    button.type = "button";
    button.dataset.key = seriesKey(s);
    if (button.dataset.key === state.selected) button.classList.add("selected");
    button.addEventListener("click", () => {
      state.selected = button.dataset.key;
      renderSeriesList();
      refreshChart().catch((e) => message("#series-message", e.message));
    });
    item.appendChild(button);
    list.appendChild(item);
  }
}

const seriesFetch = latestOnly();

async function refreshSeries() {
  const path = `/api/v1/console/series?${seriesQuery()}`;
  const answer = await sectionAnswer(seriesFetch, path, "#series-message", "cannot search series");
  if (!answer) return;
  state.series = answer;
  Object.assign(state.metrics, answer.metrics);
  const select = $("#series-metric");
  setOptions(select, Object.keys(state.metrics).sort());
  if (!state.selected && answer.series.length) state.selected = seriesKey(answer.series[0]);
  renderSeriesList();
  await refreshChart();
}

async function refreshChart() {
  const chart = $("#chart");
  if (!state.selected) {
    $("#chart-title").textContent = "Pick a series.";
    chart.replaceChildren();
    return;
  }
  const key = state.selected;
  const [metric, dims] = JSON.parse(key);
  const query = new URLSearchParams(dims).toString();
  const data = await api(`/api/v1/series/${encodeURIComponent(metric)}${query ? "?" + query : ""}`);
  if (state.selected !== key) return; // another series was picked meanwhile
  state.chart = data;
  drawChart();
}

// ------------------------------------------------------------------------------------------ chart

// about `count` round steps covering [lo, hi]
function niceTicks(lo, hi, count) {
  if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) {
    const padding = Math.abs(hi) * 0.1 || 1; // a flat series sits in the middle of the axis
    [lo, hi] = [lo - padding, hi + padding];
  }
  const span = hi - lo;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = start; v <= end + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks.length < 2) ticks.push(Number((start + step).toPrecision(12)));
  return { ticks, step };
}

function numberText(v, step) {
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

const TIME_STEPS_MIN = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];

function timeTicks(x0, x1, maxTicks) {
  const minutes = (x1 - x0) / 60000;
  const stepMin = TIME_STEPS_MIN.find((s) => minutes / s <= maxTicks) || 1440;
  const step = stepMin * 60000;
  // align to the step in the chosen zone: shift by the zone's offset, round, shift back
  const offset = state.tz === "utc" ? 0 : -new Date(x0).getTimezoneOffset() * 60000;
  const ticks = [];
  for (let t = Math.ceil((x0 + offset) / step) * step - offset; t <= x1; t += step) ticks.push(t);
  return ticks;
}

function drawChart() {
  const container = $("#chart");
  const data = state.chart;
  const info = state.metrics[data.metric] || { description: "", unit: { label: "value", suffix: "", scale: 1 } };
  const unit = info.unit;
  $("#chart-title").textContent = `${data.metric} on ${dimsText(data.dims)}${info.description ? " — " + info.description : ""}`;
  const pts = data.points;
  if (!pts.length) {
    container.replaceChildren(el("p", "No points for this series yet.", "muted"));
    return;
  }
  const W = 900, H = 300, L = 78, R = 14, T = 12, B = 40;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  const title = svg("title");
  title.textContent = `${data.metric} on ${dimsText(data.dims)}`;
  root.appendChild(title);
  const scaled = (v) => v * unit.scale;
  const xs = pts.map((p) => p.window_start);
  const ys = [];
  for (const p of pts) for (const k of ["value", "expected", "lower", "upper"]) if (Number.isFinite(p[k])) ys.push(scaled(p[k]));
  if (!ys.length) ys.push(0);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 60000);
  // a metric that never goes negative (counts, rates, quantiles) keeps its axis at or above zero
  const nonNegative = pts.every((p) => !Number.isFinite(p.value) || p.value >= 0);
  const { ticks: all, step } = niceTicks(Math.min(...ys), Math.max(...ys), 5);
  const ticks = nonNegative && all[0] < 0 ? all.filter((v) => v >= 0) : all; // 0 is a tick: ticks are steps from 0
  const y0 = ticks[0], y1 = ticks[ticks.length - 1];
  const X = (t) => L + ((t - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v) => T + (1 - (Math.min(y1, Math.max(y0, v)) - y0) / (y1 - y0 || 1)) * (H - T - B);
  const text = (x, y, s, attrs) => {
    const t = svg("text", Object.assign({ x, y, "font-size": 11, fill: "#555" }, attrs || {}));
    t.textContent = s;
    root.appendChild(t);
    return t;
  };
  // grid and y-axis ticks, in the metric's unit
  const yAxis = svg("g", { class: "y-axis" });
  for (const v of ticks) {
    yAxis.appendChild(svg("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: "#e3e7ec", class: "grid" }));
    const label = svg("text", { x: L - 6, y: Y(v) + 4, "font-size": 11, fill: "#555", "text-anchor": "end", class: "tick" });
    label.textContent = `${numberText(v, step)}${unit.suffix}`;
    yAxis.appendChild(label);
  }
  root.appendChild(yAxis);
  const xAxis = svg("g", { class: "x-axis" });
  let lastDay = null;
  for (const t of timeTicks(x0, x1, 8)) {
    xAxis.appendChild(svg("line", { x1: X(t), x2: X(t), y1: T, y2: H - B, stroke: "#eef0f3", class: "grid" }));
    const p = parts(t);
    const day = `${p.y}-${pad(p.mo)}-${pad(p.d)}`;
    const label = svg("text", { x: X(t), y: H - B + 14, "font-size": 11, fill: "#555", "text-anchor": "middle", class: "tick" });
    label.textContent = day !== lastDay ? `${pad(p.h)}:${pad(p.mi)} ${day.slice(5)}` : `${pad(p.h)}:${pad(p.mi)}`;
    lastDay = day;
    xAxis.appendChild(label);
  }
  root.appendChild(xAxis);
  text(W - R, H - 4, `time (${parts(x1).zone})`, { "text-anchor": "end", class: "x-title" });
  text(14, T + (H - T - B) / 2, unit.label, { "text-anchor": "middle", class: "y-title",
    transform: `rotate(-90 14 ${T + (H - T - B) / 2})` });
  // band, lines, alert markers
  const banded = pts.filter((p) => Number.isFinite(p.lower) && Number.isFinite(p.upper));
  if (banded.length) {
    const upper = banded.map((p) => `${X(p.window_start)},${Y(scaled(p.upper))}`);
    const lower = banded.slice().reverse().map((p) => `${X(p.window_start)},${Y(scaled(p.lower))}`);
    root.appendChild(svg("polygon", { points: upper.concat(lower).join(" "), fill: "#cfe0f7", "fill-opacity": 0.7, class: "band" }));
  }
  const line = (key, color, cls) => {
    const coords = pts.filter((p) => Number.isFinite(p[key])).map((p) => `${X(p.window_start)},${Y(scaled(p[key]))}`);
    if (coords.length) root.appendChild(svg("polyline", { points: coords.join(" "), fill: "none", stroke: color, "stroke-width": 1.6, class: cls }));
  };
  line("expected", "#6b7785", "expected");
  line("value", "#1f5fbf", "value");
  for (const a of data.alerts) {
    if (!Number.isFinite(a.at) || a.at < x0 || a.at > x1) continue;
    const mark = svg("line", { x1: X(a.at), x2: X(a.at), y1: T, y2: H - B, stroke: a.status === "firing" ? "#d33" : "#3a3", "stroke-dasharray": "4 3", class: "marker" });
    const title = svg("title");
    title.textContent = `${a.status} ${formatTime(a.at)}: ${a.alertname} ${a.summary}`;
    mark.appendChild(title);
    root.appendChild(mark);
  }
  root.appendChild(svg("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#999" }));
  root.appendChild(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#999" }));
  container.replaceChildren(root);
}

// ------------------------------------------------------------------------------------------ page

async function refreshStatus() {
  const s = await api("/healthz");
  const clock = s.clock === "simulated" ? ` · SIMULATED TIME (tunewatch run, ${s.clock_factor}x the wall clock)` : "";
  $("#status").textContent = `${s.received} events, ${s.accepted} accepted, ${s.rejected} rejected, ${s.duplicates} duplicates${clock}`;
}

async function refresh() {
  try {
    await Promise.all([refreshStatus(), refreshAlerts(), refreshSilences(), refreshHistory(), refreshSeries()]);
    updateAges();
    showError(""); // a banner (a missing key, a lost connection) goes once the page loads again
  } catch (err) {
    showError(err.message);
  }
}

function renderTimes() {
  renderAlerts();
  renderSilences();
  renderHistory();
  if (state.chart) drawChart();
}

function init() {
  const keyInput = $("#api-key");
  keyInput.value = sessionStorage.getItem("tunewatch-key") || "";
  keyInput.addEventListener("change", () => {
    sessionStorage.setItem("tunewatch-key", keyInput.value.trim());
    refresh();
  });
  const tz = $("#tz-mode");
  tz.value = state.tz;
  tz.addEventListener("change", () => {
    state.tz = tz.value === "utc" ? "utc" : "local";
    localStorage.setItem("tunewatch-tz", state.tz);
    renderTimes();
  });
  $("#silence-form").addEventListener("submit", createSilence);
  $("#silence-matchers").addEventListener("input", debounce(updatePreview, 250));
  const history = debounce(() => refreshHistory().catch((e) => showError(e.message)), 250);
  for (const sel of ["#history-q", "#history-slice", "#history-from", "#history-to"]) $(sel).addEventListener("input", history);
  for (const sel of ["#history-state", "#history-severity", "#history-alertname", "#history-metric"]) $(sel).addEventListener("change", history);
  $("#history-range").addEventListener("change", () => {
    $("#history-custom").hidden = $("#history-range").value !== "custom";
    history();
  });
  $("#history-filters").addEventListener("submit", (e) => e.preventDefault());
  const series = debounce(() => refreshSeries().catch((e) => showError(e.message)), 250);
  for (const sel of ["#series-q", "#series-slice"]) $(sel).addEventListener("input", series);
  $("#series-metric").addEventListener("change", series);
  $("#series-filters").addEventListener("submit", (e) => e.preventDefault());
  openLinkedSeries();
  refresh();
  setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", init);
