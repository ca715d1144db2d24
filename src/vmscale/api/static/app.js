// vmscale dashboard: loads the state once over REST, then follows the SSE stream.
// Redraws are batched and throttled to about one per second, whatever the event rate,
// so the page stays responsive with a hundred instances and a busy controller.
// One group at a time: the one in ?group=, else the first; with several, a selector in the header
// switches (a new page load, so no state of one group can leak into another's view). Every request
// names the group (?group=NAME on the one-group paths; the stream carries that group's events only).
"use strict";

const WINDOW_S = 900;          // how much history the charts keep (seconds)
const MAX_POINTS = 5000;       // hard cap on tick records kept in the page
const MAX_DECISIONS = 200;

const S = {
  token: null, group: null, name: null, groups: [], instances: new Map(), ticks: [], decisions: [], endpoints: [],
  dirty: true, refreshTimer: null, renders: 0, lastSeq: 0, resets: 0,
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
// A path of the shown group: "/v1/history" -> "/v1/history?group=web&since=..."
function gp(path, params = {}) {
  const q = new URLSearchParams(S.name ? {group: S.name, ...params} : params).toString();
  return q ? `${path}?${q}` : path;
}

async function loadGroups() {
  S.groups = await api("/v1/groups");
  const wanted = new URLSearchParams(location.search).get("group");
  S.name = (S.groups.find((g) => g.name === wanted) || S.groups[0] || {}).name || null;
  renderGroupSelect();
}
function renderGroupSelect() {
  const sel = $("group-select");
  sel.hidden = S.groups.length < 2;
  if (sel.hidden) return;
  sel.innerHTML = S.groups.map((g) => `<option value="${esc(g.name)}"${g.name === S.name ? " selected" : ""}>` +
    `${esc(g.name)} · ${esc(g.ready)}/${esc(g.desired)} ready${g.paused ? " · paused" : ""}</option>`).join("");
  sel.onchange = () => { location.search = new URLSearchParams({group: sel.value}).toString(); };
}

async function refreshState() {
  const [group, instances] = await Promise.all([api(gp("/v1/group")), api(gp("/v1/instances"))]);
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
    api(gp("/v1/history", {since: since.toFixed(0)})), api(gp("/v1/decisions", {limit: 50})), refreshState(),
  ]);
  S.ticks = history.map((r) => (r.data ? {t: r.t, ...r.data} : r));
  S.decisions = decisions.slice(-MAX_DECISIONS);
  markDirty();
}

// ---------- SSE ----------
// EventSource reconnects by itself and sends Last-Event-ID: the server replays what the page
// missed, so a dropped connection costs no refetch. When the server cannot (the gap is older than
// its buffer, or the controller restarted) it sends "reset", and only then is the state reloaded.
function connect() {
  const url = gp("/v1/events", S.token ? {token: S.token} : {});
  const es = new EventSource(url);
  es.onopen = () => { document.body.dataset.stream = "live"; $("stream-text").textContent = "live"; };
  es.onerror = () => { document.body.dataset.stream = "error"; $("stream-text").textContent = "reconnecting"; };
  const on = (type, fn) => es.addEventListener(type, (m) => {
    let ev; try { ev = JSON.parse(m.data); } catch { return; }
    // A replay never repeats an event, but a reload (loadAll) may already hold it: skip what is known.
    if (type !== "endpoints" && type !== "reset" && ev.seq && ev.seq <= S.lastSeq) return;
    S.lastSeq = Math.max(S.lastSeq, ev.seq || 0); fn(ev); markDirty();
  });
  on("reset", (ev) => { S.lastSeq = ev.seq || 0; S.resets += 1; loadAll().catch(() => {}); });
  on("endpoints", (ev) => { S.endpoints = ev.data.endpoints || []; });
  on("instance", (ev) => {
    const d = ev.data, cur = S.instances.get(d.name);
    if (d.to === "gone") S.instances.delete(d.name);
    else {
      const prev = cur || {name: d.name, vcpus: 1, cpu: null, launched_at: ev.t};
      const details = d.host ? {...(prev.details || {}), host: d.host} : prev.details;
      S.instances.set(d.name, {...prev, state: d.to, endpoint: d.endpoint || cur?.endpoint || "", details});
    }
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
      `<td class="endpoint" title="${esc(i.endpoint)}">${esc(i.endpoint)}</td>` +
      `<td class="host">${esc((i.details && i.details.host) || "–")}</td><td class="num">${age}</td></tr>`;
  }).join("");
  $("instances").tBodies[0].innerHTML = html || `<tr><td colspan="6" class="empty">no instances</td></tr>`;
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

// The charts (charts.js, uPlot) read this one object; its fields are refreshed before each draw.
const chartState = {ticks: [], scaleEvents: [], desired: 0, byName};
function renderCharts() {
  if (!window.vmscaleCharts) return;
  const cutoff = nowS() - WINDOW_S;
  chartState.ticks = S.ticks.filter((r) => r.t >= cutoff);
  chartState.scaleEvents = S.decisions.filter((d) => (d.direction === "up" || d.direction === "down") && d.t >= cutoff).slice(-40);
  chartState.desired = S.group ? S.group.desired : 0;
  window.vmscaleCharts.render(chartState);
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
  $("btn-up").onclick = () => S.group && control(gp("/v1/group/desired"), {desired: S.group.desired + 1});
  $("btn-down").onclick = () => S.group && control(gp("/v1/group/desired"), {desired: S.group.desired - 1});
  $("btn-pause").onclick = () => S.group && control(gp(S.group.paused ? "/v1/group/resume" : "/v1/group/pause"));
  $("auth-form").onsubmit = (e) => {
    e.preventDefault(); const t = $("auth-token").value.trim();
    if (t) { sessionStorage.setItem("vmscale-token", t); location.reload(); }
  };
}

// ---------- start ----------
function start() {
  // A token may arrive in the URL fragment (never sent to the server, so never in its logs).
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("vmscale-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);  // keeps ?group=
  }
  S.token = sessionStorage.getItem("vmscale-token");
  wireControls();
  // Draw as soon as the state is in (not at the next tick of the interval), then follow the stream.
  loadGroups().then(loadAll).then(() => { connect(); render(); })
    .catch((e) => { $("stream-text").textContent = e.message; });
  // One redraw per second at most; the table also re-renders to keep ages current.
  setInterval(render, 1000);
  setTimeout(render, 50);
}
document.addEventListener("DOMContentLoaded", start);
