// tunewatch web console: vanilla JS, no build step. Every value from the API is put in the page with
// textContent / setAttribute (never innerHTML), because alert annotations and labels may hold hostile text.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

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

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const key = sessionStorage.getItem("tunewatch-key");
  if (key) opts.headers["X-API-Key"] = key;
  const response = await fetch(path, opts);
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : "";
    throw new Error(`${response.status} ${response.statusText}${detail ? ": " + detail : ""}`);
  }
  return body;
}

function when(text) {
  if (!text || text.startsWith("0001-")) return "";
  return text.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function labelChips(labels) {
  const td = el("td", null, "labels");
  for (const [k, v] of Object.entries(labels || {})) {
    if (k === "alertname" || k === "severity") continue;
    td.appendChild(el("span", `${k}=${v}`));
  }
  return td;
}

function renderAlerts(alerts) {
  const body = $("#alerts tbody");
  body.replaceChildren();
  $("#alert-count").textContent = `(${alerts.length})`;
  if (!alerts.length) {
    const row = el("tr");
    const cell = el("td", "No active alerts.", "muted");
    cell.colSpan = 6;
    row.appendChild(cell);
    body.appendChild(row);
  }
  for (const a of alerts) {
    const row = el("tr");
    row.dataset.fingerprint = a.fingerprint;
    const sev = a.labels.severity || "";
    row.appendChild(el("td", a.labels.alertname || ""));
    row.appendChild(el("td", sev, `sev-${sev.replace(/[^a-z]/g, "")}`));
    row.appendChild(labelChips(a.labels));
    const ex = el("td");
    const ann = a.annotations || {};
    ex.appendChild(el("div", ann.summary || ""));
    const details = [];
    if (ann.actual || ann.expected) details.push(`actual ${ann.actual ?? "?"}, expected ${ann.expected ?? "?"}`);
    if (ann.top_contributors) details.push(`top contributors: ${ann.top_contributors}`);
    if (ann.revenue_at_risk_per_hour) details.push(`revenue at risk ${ann.revenue_at_risk_per_hour}/h`);
    for (const d of details) ex.appendChild(el("div", d, "muted"));
    if (ann.runbook_url && /^https?:\/\//.test(ann.runbook_url)) {
      const link = el("a", "runbook");
      link.setAttribute("href", ann.runbook_url);
      link.setAttribute("rel", "noopener noreferrer");
      link.setAttribute("target", "_blank");
      ex.appendChild(link);
    }
    row.appendChild(ex);
    row.appendChild(el("td", when(a.startsAt)));
    row.appendChild(el("td", (a.silencedBy || []).length ? "yes" : ""));
    body.appendChild(row);
  }
}

function renderSilences(silences) {
  const body = $("#silences tbody");
  body.replaceChildren();
  for (const s of silences) {
    const row = el("tr");
    row.dataset.id = s.id;
    row.className = `silence state-${s.state}`;
    row.appendChild(el("td", s.matchers.join(", "), "matchers"));
    row.appendChild(el("td", s.state, "state"));
    row.appendChild(el("td", when(s.startsAt)));
    row.appendChild(el("td", when(s.endsAt)));
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

async function expireSilence(id) {
  try {
    await api(`/api/v1/silences/${encodeURIComponent(id)}`, { method: "DELETE" });
    showError("");
    await refreshSilences();
  } catch (err) {
    showError(`cannot expire silence: ${err.message}`);
  }
}

async function createSilence(event) {
  event.preventDefault();
  const matchers = $("#silence-matchers").value.split(/[\s,]+/).filter(Boolean);
  const body = {
    matchers,
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
    showError("");
    $("#silence-form").reset();
    await Promise.all([refreshSilences(), refreshAlerts()]);
  } catch (err) {
    showError(`cannot create silence: ${err.message}`);
  }
}

function seriesKey(s) {
  return JSON.stringify([s.metric, s.dims]);
}

function seriesName(s) {
  const dims = Object.entries(s.dims).map(([k, v]) => `${k}=${v}`).join(", ");
  return `${s.metric}${dims ? " {" + dims + "}" : " (global)"}`;
}

async function refreshCatalog() {
  const select = $("#series-select");
  const current = select.value;
  const catalog = await api("/api/v1/series?limit=500");
  const keys = new Set(catalog.map(seriesKey));
  if (select.options.length === catalog.length && [...select.options].every((o) => keys.has(o.value))) return;
  select.replaceChildren();
  for (const s of catalog) {
    const option = el("option", seriesName(s));
    option.value = seriesKey(s);
    select.appendChild(option);
  }
  if (current && keys.has(current)) select.value = current;
}

async function refreshChart() {
  const select = $("#series-select");
  const chart = $("#chart");
  if (!select.value) {
    chart.replaceChildren(el("p", "No series yet: ingest events and wait for a window to close.", "muted"));
    return;
  }
  const [metric, dims] = JSON.parse(select.value);
  const query = new URLSearchParams(dims).toString();
  const data = await api(`/api/v1/series/${encodeURIComponent(metric)}${query ? "?" + query : ""}`);
  drawChart(chart, data);
}

function drawChart(container, data) {
  const W = 900, H = 280, L = 60, R = 10, T = 10, B = 30;
  const pts = data.points;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  if (!pts.length) {
    container.replaceChildren(el("p", "No points for this series yet.", "muted"));
    return;
  }
  const xs = pts.map((p) => p.window_start);
  const ys = [];
  for (const p of pts) for (const k of ["value", "expected", "lower", "upper"]) if (Number.isFinite(p[k])) ys.push(p[k]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 60000);
  let y0 = Math.min(...ys, 0), y1 = Math.max(...ys, 1e-9);
  if (y1 === y0) y1 = y0 + 1;
  const X = (t) => L + ((t - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const banded = pts.filter((p) => Number.isFinite(p.lower) && Number.isFinite(p.upper));
  if (banded.length) {
    const upper = banded.map((p) => `${X(p.window_start)},${Y(p.upper)}`);
    const lower = banded.slice().reverse().map((p) => `${X(p.window_start)},${Y(p.lower)}`);
    root.appendChild(svg("polygon", { points: upper.concat(lower).join(" "), fill: "#cfe0f7", class: "band" }));
  }
  const line = (key, color, cls) => {
    const coords = pts.filter((p) => Number.isFinite(p[key])).map((p) => `${X(p.window_start)},${Y(p[key])}`);
    if (coords.length) root.appendChild(svg("polyline", { points: coords.join(" "), fill: "none", stroke: color, "stroke-width": 1.6, class: cls }));
  };
  line("expected", "#6b7785", "expected");
  line("value", "#1f5fbf", "value");
  for (const a of data.alerts) {
    if (!Number.isFinite(a.at) || a.at < x0 || a.at > x1) continue;
    const mark = svg("line", { x1: X(a.at), x2: X(a.at), y1: T, y2: H - B, stroke: a.status === "firing" ? "#d33" : "#3a3", "stroke-dasharray": "4 3", class: "marker" });
    const title = svg("title");
    title.textContent = `${a.status}: ${a.alertname} ${a.summary}`;
    mark.appendChild(title);
    root.appendChild(mark);
  }
  root.appendChild(svg("line", { x1: L, x2: L, y1: T, y2: H - B, stroke: "#999" }));
  root.appendChild(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#999" }));
  const text = (x, y, s, anchor) => {
    const t = svg("text", { x, y, "font-size": 11, fill: "#555", "text-anchor": anchor || "start" });
    t.textContent = s;
    root.appendChild(t);
  };
  text(L - 4, Y(y1) + 10, y1.toPrecision(4), "end");
  text(L - 4, Y(y0), y0.toPrecision(4), "end");
  text(L, H - 10, new Date(x0).toISOString().slice(0, 16).replace("T", " "));
  text(W - R, H - 10, new Date(x1).toISOString().slice(0, 16).replace("T", " "), "end");
  container.replaceChildren(root);
}

async function refreshAlerts() {
  renderAlerts(await api("/api/v1/alerts"));
}

async function refreshSilences() {
  renderSilences(await api("/api/v1/silences"));
}

async function refreshStatus() {
  const s = await api("/healthz");
  const clock = s.clock === "simulated" ? ` · SIMULATED TIME (tunewatch run, ${s.clock_factor}x the wall clock)` : "";
  $("#status").textContent = `${s.received} events, ${s.accepted} accepted, ${s.rejected} rejected, ${s.duplicates} duplicates${clock}`;
}

async function refresh() {
  try {
    await Promise.all([refreshStatus(), refreshAlerts(), refreshSilences(), refreshCatalog().then(refreshChart)]);
  } catch (err) {
    showError(err.message);
  }
}

function init() {
  const keyInput = $("#api-key");
  keyInput.value = sessionStorage.getItem("tunewatch-key") || "";
  keyInput.addEventListener("change", () => {
    sessionStorage.setItem("tunewatch-key", keyInput.value.trim());
    refresh();
  });
  $("#silence-form").addEventListener("submit", createSilence);
  $("#series-select").addEventListener("change", () => refreshChart().catch((e) => showError(e.message)));
  refresh();
  setInterval(refresh, 5000);
}

document.addEventListener("DOMContentLoaded", init);
