// vmscale dashboard: loads the state once over REST, then follows the SSE stream.
// Redraws are batched and throttled to about one per second, whatever the event rate,
// so the page stays responsive with a hundred instances and a busy controller.
"use strict";

const WINDOW_S = 900;          // how much history the charts keep (seconds)
const MAX_POINTS = 5000;       // hard cap on tick records kept in the page
const MAX_DECISIONS = 200;
const PER_INSTANCE_LINES = 8;  // above this many instances the CPU chart shows mean and range only
const COLORS = ["#5aa9ff", "#f2b84b", "#b392f0", "#f0883e", "#4cc38a", "#ff7eb6", "#7ee0e0", "#c7d36f"];

const S = {
  token: null, group: null, instances: new Map(), ticks: [], decisions: [], endpoints: [],
  dirty: true, chartsReady: false, refreshTimer: null, renders: 0, lastSeq: 0,
};
window.vmscaleDashboard = S;  // for the browser tests and for curious people with devtools

// ---------- helpers ----------
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const nowS = () => Date.now() / 1000;
const num = (v) => (typeof v === "number" && isFinite(v) ? v : null);
function fmtAge(s) {
  if (s == null || s < 0) return "–";
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}
const fmtTime = (t) => new Date(t * 1000).toLocaleTimeString([], {hour12: false});
const nameKey = (n) => { const m = /^(.*?)(\d+)$/.exec(n); return m ? [m[1], +m[2]] : [n, 0]; };
function byName(a, b) {
  const [pa, na] = nameKey(a.name), [pb, nb] = nameKey(b.name);
  return pa < pb ? -1 : pa > pb ? 1 : na - nb;
}
function markDirty() { S.dirty = true; }

// ---------- REST ----------
function headers() { return S.token ? {Authorization: `Bearer ${S.token}`} : {}; }
async function api(path, opts = {}) {
  const res = await fetch(path, {...opts, headers: {...headers(), ...(opts.headers || {})}});
  if (res.status === 401) { showAuth(); throw new Error("a token is required"); }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail ? String(body.detail) : `HTTP ${res.status}`);
  return body;
}
function showAuth() { $("auth").hidden = false; }

async function refreshState() {
  const [group, instances] = await Promise.all([api("/v1/group"), api("/v1/instances")]);
  S.group = group;
  const seen = new Set();
  for (const inst of instances) { S.instances.set(inst.name, inst); seen.add(inst.name); }
  for (const name of [...S.instances.keys()]) if (!seen.has(name)) S.instances.delete(name);
  markDirty();
}
function scheduleRefresh() {  // debounce: a burst of instance events costs one round trip
  if (S.refreshTimer) return;
  S.refreshTimer = setTimeout(() => { S.refreshTimer = null; refreshState().catch(() => {}); }, 400);
}

async function loadAll() {
  const since = nowS() - WINDOW_S;
  const [history, decisions] = await Promise.all([
    api(`/v1/history?since=${since.toFixed(0)}`), api("/v1/decisions?limit=50"), refreshState(),
  ]);
  S.ticks = history.map((r) => (r.data ? {t: r.t, ...r.data} : r));
  S.decisions = decisions.slice(-MAX_DECISIONS);
  markDirty();
}

// ---------- SSE ----------
function connect() {
  const url = "/v1/events" + (S.token ? `?token=${encodeURIComponent(S.token)}` : "");
  const es = new EventSource(url);
  let hadError = false;
  es.onopen = () => {
    document.body.dataset.stream = "live"; $("stream-text").textContent = "live";
    if (hadError) { hadError = false; loadAll().catch(() => {}); }  // resync after a gap
  };
  es.onerror = () => {
    hadError = true; document.body.dataset.stream = "error"; $("stream-text").textContent = "reconnecting";
  };
  const on = (type, fn) => es.addEventListener(type, (m) => {
    let ev; try { ev = JSON.parse(m.data); } catch { return; }
    S.lastSeq = Math.max(S.lastSeq, ev.seq || 0); fn(ev); markDirty();
  });
  on("endpoints", (ev) => { S.endpoints = ev.data.endpoints || []; });
  on("instance", (ev) => {
    const d = ev.data, cur = S.instances.get(d.name);
    if (d.to === "gone") S.instances.delete(d.name);
    else S.instances.set(d.name, {...(cur || {name: d.name, vcpus: 1, cpu: null, launched_at: ev.t}),
      state: d.to, endpoint: d.endpoint || cur?.endpoint || ""});
    scheduleRefresh();
  });
  on("decision", (ev) => {
    S.decisions.push({t: ev.t, ...ev.data});
    if (S.decisions.length > MAX_DECISIONS) S.decisions.shift();
    if (S.group && ev.data.applied !== false) S.group.desired = ev.data.desired;
    scheduleRefresh();
  });
  on("error", (ev) => {
    const d = ev.data || {};
    S.decisions.push({t: ev.t, direction: "error", reason: d.message || "error", policy: d.where || "error",
      desired: null, current: null, actor: d.instance || ""});
  });
  on("tick", (ev) => {
    const d = ev.data;
    S.ticks.push({t: ev.t, ...d});
    if (S.ticks.length > MAX_POINTS) S.ticks.splice(0, S.ticks.length - MAX_POINTS);
    for (const [name, v] of Object.entries(d.instances || {})) {
      const cur = S.instances.get(name);
      if (cur) { cur.cpu = v.cpu; cur.state = v.state; }
    }
    if (S.group) Object.assign(S.group, {desired: d.desired, actual: d.actual, ready: d.ready});
  });
  on("lagged", () => { loadAll().catch(() => {}); });
}

// ---------- rendering ----------
function meanCpu(instances) {
  const v = Object.values(instances || {}).filter((i) => i.state === "ready").map((i) => num(i.cpu)).filter((x) => x != null);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

// With several controllers: which one this page talks to, and who leads (a standby shows the
// group as the leader recorded it, and its buttons are refused with the leader's address).
function leaderMeta(l) {
  if (!l) return "";
  if (l.role === "leader") return `<span id="leader-meta">this controller <b>leads</b> (epoch ${esc(l.epoch)})</span>`;
  const where = l.leader_id ? `leader <b>${esc(l.leader_address || l.leader_id)}</b>` : "<b>no leader right now</b>";
  return `<span id="leader-meta">this controller is a <b>standby</b> · ${where}</span>`;
}

function renderHeader() {
  const g = S.group; if (!g) return;
  $("group-name").textContent = g.name;
  $("group-meta").innerHTML = `<span>provider <b>${esc(g.provider)}</b></span><span>balancer <b>${esc(g.lb)}</b></span>` +
    `<span>policies <b>${esc((g.policies || []).join(", ") || "none")}</b></span>` +
    (g.frontend_url ? `<span>frontend <b>${esc(g.frontend_url)}</b></span>` : "") + leaderMeta(g.leadership);
  $("paused-pill").hidden = !g.paused;
  $("btn-pause").textContent = g.paused ? "Resume" : "Pause";
  $("kpi-desired").textContent = g.desired;
  $("kpi-bounds").textContent = `min ${g.min} · max ${g.max}`;
  $("kpi-actual").textContent = g.actual;
  $("kpi-ready").textContent = g.ready;
  $("kpi-endpoints").textContent = `${S.endpoints.length} endpoint${S.endpoints.length === 1 ? "" : "s"} in rotation`;
  const last = S.ticks[S.ticks.length - 1];
  const cpu = last ? meanCpu(last.instances) : null;
  $("kpi-cpu").textContent = cpu == null ? "–" : `${cpu.toFixed(0)}%`;
  const lat = last ? num(last.latency_p95_s) : null;
  $("kpi-latency").textContent = lat == null ? "–" : lat < 1 ? `${(lat * 1000).toFixed(0)} ms` : `${lat.toFixed(2)} s`;
  const rps = last ? num(last.rps) : null;
  $("kpi-rps").textContent = rps != null ? `${rps.toFixed(1)} req/s` : lat == null ? "not reported" : "";
}

function renderTable() {
  const rows = [...S.instances.values()].sort(byName);
  $("instance-count").textContent = `${rows.length}`;
  const now = nowS();
  const html = rows.map((i) => {
    const cpu = num(i.cpu), pct = cpu == null ? 0 : Math.max(0, Math.min(100, cpu));
    const heat = pct >= 85 ? "hot" : pct >= 60 ? "warm" : "";
    const age = i.launched_at ? fmtAge(now - i.launched_at) : "–";
    return `<tr data-instance="${esc(i.name)}" data-state="${esc(i.state)}">` +
      `<td class="name">${esc(i.name)}</td><td><span class="state ${esc(i.state)}">${esc(i.state)}</span></td>` +
      `<td><div class="cpu${i.state === "ready" ? "" : " stale"}"><div class="bar"><span class="${heat}" style="width:${pct.toFixed(1)}%"></span></div>` +
      `<span class="pct">${cpu == null ? "–" : cpu.toFixed(0) + "%"}</span></div></td>` +
      `<td class="endpoint" title="${esc(i.endpoint)}">${esc(i.endpoint)}</td><td class="num">${age}</td></tr>`;
  }).join("");
  $("instances").tBodies[0].innerHTML = html || `<tr><td colspan="5" class="empty">no instances</td></tr>`;
}

function renderDecisions() {
  const items = S.decisions.slice(-60).reverse().map((d) => {
    const dir = d.direction || "none", arrow = {up: "▲", down: "▼", error: "!"}[dir] || "•";
    // pause/resume records (stored as {action, actor, t}) carry no counts: say what happened instead
    const action = (d.action === "paused" || d.action === "resumed") && dir === "none" ? d.action : null;
    const reason = action && !d.reason ? `automatic scaling ${action}` : d.reason;
    const what = action ? `<b>${action}</b>` + (d.actor ? `<span class="tag">by ${esc(d.actor)}</span>` : "") :
      dir === "error" ? `<b>${esc(d.policy)}</b>` :
      `<b>${esc(d.current ?? "?")} → ${esc(d.desired)}</b><span class="tag">${esc(d.policy)}</span>` +
      (d.actor && !["policy", "autoscaler", "controller"].includes(d.actor) ? `<span class="tag">by ${esc(d.actor)}</span>` : "") +
      (d.applied === false ? `<span class="tag">not applied</span>` : "");
    return `<li data-direction="${esc(dir)}"><span class="time">${d.t ? fmtTime(d.t) : ""}</span>` +
      `<span class="dir ${esc(dir)}">${arrow}</span><span class="what">${what}</span>` +
      `<span class="reason">${esc(reason)}</span></li>`;
  }).join("");
  $("decisions").innerHTML = items || `<li class="empty">no decisions yet</li>`;
}

// Faint vertical lines at scale events, on every chart, so cause and effect line up.
function scaleShapes(cutoff) {
  return S.decisions.filter((d) => (d.direction === "up" || d.direction === "down") && d.t >= cutoff).slice(-40)
    .map((d) => ({type: "line", xref: "x", yref: "paper", x0: new Date(d.t * 1000), x1: new Date(d.t * 1000), y0: 0, y1: 1,
      line: {color: d.direction === "up" ? "rgba(76,195,138,0.45)" : "rgba(90,169,255,0.45)", width: 1, dash: "dot"}}));
}

const AXIS = {gridcolor: "#222b38", zerolinecolor: "#2a3443", linecolor: "#2a3443", tickfont: {size: 11}};
function layout(extra) {
  return {
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: {color: "#aab4c3", size: 12},
    margin: {l: 58, r: 14, t: 6, b: 26}, hovermode: "x unified", showlegend: true,
    legend: {orientation: "h", x: 0, y: 1.12, font: {size: 11}, bgcolor: "rgba(0,0,0,0)", traceorder: "normal"},
    xaxis: {...AXIS, type: "date", tickformat: "%H:%M:%S", hoverformat: "%H:%M:%S"}, ...extra,
  };
}
const CONFIG = {displayModeBar: false, responsive: true};

function renderCharts() {
  if (!window.Plotly) return;
  const cutoff = nowS() - WINDOW_S;
  const ticks = S.ticks.filter((r) => r.t >= cutoff);
  const x = ticks.map((r) => new Date(r.t * 1000));
  const shapes = scaleShapes(cutoff);
  const step = (name, key, color, extra) => ({x, y: ticks.map((r) => num(r[key])), name, type: "scatter",
    mode: "lines", line: {shape: "hv", color, width: 2, ...(extra || {})}});
  const scale = S.decisions.filter((d) => (d.direction === "up" || d.direction === "down") && d.t >= cutoff);
  const marks = (dir, symbol, color) => {
    const ds = scale.filter((d) => d.direction === dir);
    return {x: ds.map((d) => new Date(d.t * 1000)), y: ds.map((d) => d.desired), name: dir === "up" ? "scale up" : "scale in",
      type: "scatter", mode: "markers", marker: {symbol, size: 11, color, line: {color: "#0d1117", width: 1}},
      text: ds.map((d) => `${d.policy}: ${d.reason}`), hovertemplate: "%{text}<extra></extra>"};
  };
  const maxY = Math.max(2, ...ticks.map((r) => Math.max(r.desired || 0, r.actual || 0)), S.group ? S.group.desired : 0);
  Plotly.react("chart-count", [
    {...step("ready", "ready", "#4cc38a"), fill: "tozeroy", fillcolor: "rgba(76,195,138,0.12)"},
    step("actual", "actual", "#5aa9ff"),
    step("desired", "desired", "#f2b84b", {dash: "dash"}),
    marks("up", "triangle-up", "#4cc38a"), marks("down", "triangle-down", "#5aa9ff"),
  ], layout({shapes, yaxis: {...AXIS, rangemode: "tozero", range: [0, maxY > 12 ? maxY * 1.08 : maxY + 0.6], dtick: maxY > 12 ? null : 1}}), CONFIG);

  // CPU: mean of ready instances, the min–max band, and per-instance lines while they stay readable.
  const mean = [], lo = [], hi = [];
  const names = new Set();
  for (const r of ticks) {
    const v = Object.entries(r.instances || {}).filter(([, i]) => i.state === "ready" && num(i.cpu) != null);
    v.forEach(([n]) => names.add(n));
    const c = v.map(([, i]) => i.cpu);
    mean.push(c.length ? c.reduce((a, b) => a + b, 0) / c.length : null);
    lo.push(c.length ? Math.min(...c) : null); hi.push(c.length ? Math.max(...c) : null);
  }
  const cpuTraces = [
    {x, y: hi, name: "max", type: "scatter", mode: "lines", line: {width: 0}, hoverinfo: "skip", showlegend: false},
    {x, y: lo, name: "range", type: "scatter", mode: "lines", line: {width: 0}, fill: "tonexty",
      fillcolor: "rgba(90,169,255,0.13)", hoverinfo: "skip"},
  ];
  if (names.size <= PER_INSTANCE_LINES) {
    [...names].sort((a, b) => byName({name: a}, {name: b})).forEach((n, k) => cpuTraces.push({
      x, y: ticks.map((r) => { const i = (r.instances || {})[n]; return i && i.state === "ready" ? num(i.cpu) : null; }),
      name: n, type: "scatter", mode: "lines", line: {width: 1.4, color: COLORS[k % COLORS.length]}, opacity: 0.85}));
  }
  cpuTraces.push({x, y: mean, name: "mean", type: "scatter", mode: "lines", line: {width: 2.6, color: "#e6edf3"}});
  Plotly.react("chart-cpu", cpuTraces, layout({shapes, yaxis: {...AXIS, range: [0, 105], ticksuffix: "%"}}), CONFIG);

  const lat = ticks.map((r) => { const v = num(r.latency_p95_s); return v == null ? null : v * 1000; });
  const any = lat.some((v) => v != null);
  Plotly.react("chart-latency", [{x, y: lat, name: "p95", type: "scatter", mode: "lines",
    line: {color: "#f0883e", width: 2}, connectgaps: false}],
    layout({shapes, showlegend: false, yaxis: {...AXIS, rangemode: "tozero", ticksuffix: " ms", showticklabels: any},
      annotations: any ? [] : [{text: "no latency reported yet", showarrow: false, xref: "paper", yref: "paper",
        x: 0.5, y: 0.5, font: {color: "#6e7a8c", size: 13}}]}), CONFIG);
}

let lastChartDraw = 0;
function render() {
  S.renders += 1;
  renderTable();  // every second, so ages stay current
  const slide = Date.now() - lastChartDraw > 5000;  // let the time axis move even when nothing happens
  if (S.dirty || slide) {
    renderHeader(); renderDecisions(); renderCharts();
    lastChartDraw = Date.now();
  }
  S.dirty = false;
}

// ---------- controls ----------
async function control(path, body) {
  const msg = $("control-msg");
  try {
    const g = await api(path, {method: "POST", headers: {"Content-Type": "application/json"},
      body: body ? JSON.stringify(body) : undefined});
    S.group = g; msg.textContent = ""; markDirty();
  } catch (e) { msg.textContent = e.message; }
}
function wireControls() {
  $("btn-up").onclick = () => S.group && control("/v1/group/desired", {desired: S.group.desired + 1});
  $("btn-down").onclick = () => S.group && control("/v1/group/desired", {desired: S.group.desired - 1});
  $("btn-pause").onclick = () => S.group && control(S.group.paused ? "/v1/group/resume" : "/v1/group/pause");
  $("auth-form").onsubmit = (e) => {
    e.preventDefault(); const t = $("auth-token").value.trim();
    if (t) { sessionStorage.setItem("vmscale-token", t); location.reload(); }
  };
}

// ---------- start ----------
function start() {
  // A token may arrive in the URL fragment (never sent to the server, so never in its logs).
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) { sessionStorage.setItem("vmscale-token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
  S.token = sessionStorage.getItem("vmscale-token");
  wireControls();
  // Draw as soon as the state is in (not at the next tick of the interval), then follow the stream.
  loadAll().then(() => { connect(); render(); }).catch((e) => { $("stream-text").textContent = e.message; });
  // One redraw per second at most; the table also re-renders to keep ages current.
  setInterval(render, 1000);
  setTimeout(render, 50);
}
document.addEventListener("DOMContentLoaded", start);
