// vmscale dashboard charts, drawn with uPlot (vendor/uplot: ~50 KB, canvas, fast with thousands of
// points). Three charts share one time axis and the scale events (dotted lines, ▲▼ on the count).
// window.vmscaleCharts.render(state) is called by app.js at most once a second, always with the same
// state object ({ticks, scaleEvents, desired, byName}), which the charts' draw hooks read.
"use strict";

(() => {
  const COLORS = ["#5aa9ff", "#f2b84b", "#b392f0", "#f0883e", "#4cc38a", "#ff7eb6", "#7ee0e0", "#c7d36f"];
  const PER_INSTANCE_LINES = 8;  // above this many instances the CPU chart shows mean and range only
  const UP = "rgba(76,195,138,0.75)", DOWN = "rgba(90,169,255,0.75)";
  const num = (v) => (typeof v === "number" && isFinite(v) ? v : null);
  const stepped = () => uPlot.paths.stepped({align: 1});
  const charts = {};  // id -> {plot, key}

  const hms = uPlot.fmtDate("{HH}:{mm}:{ss}");
  const STYLE = {stroke: "#aab4c3", grid: {stroke: "#222b38", width: 1}, ticks: {stroke: "#2a3443", width: 1},
    font: "11px system-ui, sans-serif"};
  const timeAxis = () => ({...STYLE, values: (u, splits) => splits.map((t) => hms(new Date(t * 1000)))});
  function axis(suffix, extra) {  // a y axis, wide enough for "1000 ms"
    return {...STYLE, size: 62, values: (u, vals) => vals.map((v) => +v.toFixed(2) + (suffix || "")),
      ...(extra || {})};
  }

  // Scale events on every chart, and the count chart's markers at the new desired count.
  function eventsHook(state, markers) {
    return (u) => {
      const ctx = u.ctx, {top, height, left, width} = u.bbox, px = uPlot.pxRatio;
      ctx.save();
      ctx.beginPath(); ctx.rect(left, top, width, height); ctx.clip();
      for (const d of state.scaleEvents) {
        const x = Math.round(u.valToPos(d.t, "x", true));
        if (x < left || x > left + width) continue;
        ctx.strokeStyle = d.direction === "up" ? UP : DOWN;
        ctx.lineWidth = px; ctx.setLineDash([3 * px, 3 * px]);
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
        if (markers && num(d.desired) != null) {
          const y = u.valToPos(d.desired, "y", true), s = 6 * px, dir = d.direction === "up" ? -1 : 1;
          ctx.setLineDash([]); ctx.fillStyle = d.direction === "up" ? "#4cc38a" : "#5aa9ff";
          ctx.beginPath(); ctx.moveTo(x, y + dir * s); ctx.lineTo(x - s, y - dir * s * 0.7);
          ctx.lineTo(x + s, y - dir * s * 0.7); ctx.closePath(); ctx.fill();
        }
      }
      ctx.restore();
    };
  }

  function emptyNote(text) {
    return (u) => {
      if (u.data.slice(1).some((s) => s.some((v) => v != null))) return;
      const ctx = u.ctx, {top, height, left, width} = u.bbox;
      ctx.save(); ctx.fillStyle = "#6e7a8c"; ctx.font = `${13 * uPlot.pxRatio}px system-ui, sans-serif`;
      ctx.textAlign = "center"; ctx.fillText(text, left + width / 2, top + height / 2); ctx.restore();
    };
  }

  // (Re)create a chart when its series change (an instance joined or left); otherwise just new data.
  function draw(id, key, makeOpts, data) {
    const el = document.getElementById(id);
    if (!el) return;
    const width = Math.max(200, el.clientWidth);
    let c = charts[id];
    if (c && c.key !== key) { c.plot.destroy(); c = null; }
    if (!c) {
      c = charts[id] = {key, plot: new uPlot({width, height: el.dataset.height ? +el.dataset.height : 210,
        legend: {live: false}, cursor: {drag: {x: false, y: false}}, ...makeOpts()}, data, el)};
    } else {
      if (c.plot.width !== width) c.plot.setSize({width, height: c.plot.height});
      c.plot.setData(data);
    }
  }

  function render(state) {
    if (!window.uPlot) return;
    const ticks = state.ticks, x = ticks.map((r) => r.t);
    const col = (key) => ticks.map((r) => num(r[key]));

    // Instances: ready (filled), actual, desired (dashed); steps, since counts change at once.
    draw("chart-count", "count", () => ({
      scales: {x: {time: true}, y: {range: (u, min, max) => {
        const top = Math.max(2, max || 0, state.desired || 0);
        return [0, top > 12 ? top * 1.08 : top + 0.6];
      }}},
      axes: [timeAxis(), axis("", {incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500]})],
      series: [{},
        {label: "ready", stroke: "#4cc38a", width: 2, fill: "rgba(76,195,138,0.12)", paths: stepped(), points: {show: false}},
        {label: "actual", stroke: "#5aa9ff", width: 2, paths: stepped(), points: {show: false}},
        {label: "desired", stroke: "#f2b84b", width: 2, dash: [6, 4], paths: stepped(), points: {show: false}}],
      hooks: {draw: [eventsHook(state, true)]},
    }), [x, col("ready"), col("actual"), col("desired")]);

    // CPU: the min-max band over ready instances, their own lines while readable, and the mean.
    const names = new Set(), mean = [], lo = [], hi = [];
    for (const r of ticks) {
      const v = Object.entries(r.instances || {}).filter(([, i]) => i.state === "ready" && num(i.cpu) != null);
      v.forEach(([n]) => names.add(n));
      const c = v.map(([, i]) => i.cpu);
      mean.push(c.length ? c.reduce((a, b) => a + b, 0) / c.length : null);
      lo.push(c.length ? Math.min(...c) : null); hi.push(c.length ? Math.max(...c) : null);
    }
    const own = names.size <= PER_INSTANCE_LINES ? [...names].sort(state.byName) : [];
    const ownData = own.map((n) => ticks.map((r) => {
      const i = (r.instances || {})[n];
      return i && i.state === "ready" ? num(i.cpu) : null;
    }));
    draw("chart-cpu", "cpu:" + own.join(","), () => ({
      scales: {x: {time: true}, y: {range: [0, 105]}},
      axes: [timeAxis(), axis("%")],
      series: [{},
        {label: "max", stroke: "rgba(90,169,255,0.35)", width: 1, points: {show: false}},
        {label: "min", stroke: "rgba(90,169,255,0.35)", width: 1, points: {show: false}},
        ...own.map((n, k) => ({label: n, stroke: COLORS[k % COLORS.length], width: 1.4, points: {show: false}})),
        {label: "mean", stroke: "#e6edf3", width: 2.6, points: {show: false}}],
      bands: [{series: [1, 2], fill: "rgba(90,169,255,0.13)"}],
      hooks: {draw: [eventsHook(state, false)]},
    }), [x, hi, lo, ...ownData, mean]);

    const lat = ticks.map((r) => { const v = num(r.latency_p95_s); return v == null ? null : v * 1000; });
    draw("chart-latency", "latency", () => ({
      scales: {x: {time: true}, y: {range: (u, min, max) => [0, Math.max(10, (max || 0) * 1.1)]}},
      axes: [timeAxis(), axis(" ms")],
      series: [{}, {label: "p95", stroke: "#f0883e", width: 2, points: {show: false}, spanGaps: false}],
      hooks: {draw: [eventsHook(state, false), emptyNote("no latency reported yet")]},
    }), [x, lat]);
  }

  window.vmscaleCharts = {render, charts};
})();
