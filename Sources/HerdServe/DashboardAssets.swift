import Foundation

/// The dashboard's three files, compiled into the binary so that `herd
/// serve` needs nothing beside itself and a page never fetches anything
/// but this server's API. Plain HTML, CSS and JavaScript drawing SVG: no
/// build step. Elements the tests read carry ids and data- attributes
/// (#status says "ready" once a page has rendered).
enum DashboardAssets {
    static let indexHTML = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Herd</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="style.css">
<script src="app.js"></script>
</head>
<body>
<header><a href="#/"><b>Herd</b></a> <span class="muted">training jobs and RLHF pipelines</span> <div id="status">loading</div></header>

<section id="page-jobs" class="page">
  <h2>Jobs</h2>
  <table id="jobs">
    <thead><tr><th>ID</th><th>Name</th><th>State</th><th>Progress</th><th>Loss</th><th>Tokens/s</th><th>Restarts</th></tr></thead>
    <tbody></tbody>
  </table>
  <p id="no-jobs" class="muted" hidden>No jobs yet: herd submit JOB.yaml starts one.</p>
  <h2>RLHF pipelines</h2>
  <ul id="pipelines"></ul>
</section>

<section id="page-job" class="page" hidden>
  <h2 id="job-title">Job</h2>
  <p><span id="job-state" class="state"></span></p>
  <div id="job-progress" class="bar wide"><div class="fill"></div></div>
  <p id="job-numbers" class="muted"></p>
  <div class="charts">
    <figure><figcaption>Loss</figcaption><svg id="loss-chart" class="chart"></svg></figure>
    <figure><figcaption>Tokens/s</figcaption><svg id="tps-chart" class="chart"></svg></figure>
  </div>
  <h3>Workers</h3>
  <div id="workers" class="grid"></div>
  <p id="workers-note" class="muted"></p>
  <h3>Restarts</h3>
  <ul id="restarts"></ul>
  <h3>Checkpoints</h3>
  <table id="checkpoints"><thead><tr><th>Checkpoint</th><th>Size</th><th>Save time</th></tr></thead><tbody></tbody></table>
  <h3>Log <select id="log-rank"><option value="0">rank 0</option></select></h3>
  <pre id="log"></pre>
</section>

<section id="page-pipeline" class="page" hidden>
  <h2 id="pipeline-title">Pipeline</h2>
  <h3>Iteration graph</h3>
  <svg id="pipeline-graph" class="graph"></svg>
  <h3>Per-iteration report</h3>
  <svg id="report-chart" class="chart"></svg>
  <table id="report-table"><thead><tr><th>Iteration</th><th>Policy</th><th>Right (greedy, 95% interval)</th><th>Right (T = 1)</th><th>Violations</th><th>Promoted</th></tr></thead><tbody></tbody></table>
  <p id="report-result"></p>
  <p id="report-note" class="muted"></p>
</section>
</body>
</html>
"""#

    static let appJS = #"""
// Herd's dashboard: plain JavaScript and SVG, no build step, nothing
// fetched but this server's own API. Pages by URL hash: #/ (jobs),
// #/job/ID, #/pipeline/NAME. Every page polls while it is shown.
"use strict";
(function () {
  const POLL_MS = Number(new URLSearchParams(location.search).get("poll")) || 1000;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const statusEl = () => $("#status");
  let timer = null;
  let page = null; // {kind, id, ...state}

  function el(tag, attrs, ...children) {
    const svgTags = ["svg", "g", "rect", "line", "polyline", "text", "path", "circle", "title"];
    const e = svgTags.includes(tag) ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  async function api(path) {
    const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || (r.status + " " + r.statusText));
    return body;
  }

  function fmt(v, digits) { return v === null || v === undefined ? "-" : Number(v).toFixed(digits); }
  function age(s) { return s < 60 ? s.toFixed(1) + " s" : s < 3600 ? Math.floor(s / 60) + " min" : (s / 3600).toFixed(1) + " h"; }
  function bytes(n) { const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; while (n >= 1024 && i < 4) { n /= 1024; i++; } return n.toFixed(i ? 1 : 0) + " " + u[i]; }
  function setStatus(text) { statusEl().textContent = text; document.body.dataset.ready = text === "ready" ? "1" : "0"; }

  // A line chart: series [{name, color, points: [[x, y], ...]}].
  function lineChart(svg, series, xLabel, yLabel, xTicks) {
    const W = 640, H = 260, L = 60, R = 12, T = 12, B = 36;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    while (svg.firstChild) svg.firstChild.remove();
    const pts = series.flatMap(s => s.points);
    let x0 = Math.min(...pts.map(p => p[0]), 0), x1 = Math.max(...pts.map(p => p[0]), 1);
    let y0 = Math.min(...pts.map(p => p[1])), y1 = Math.max(...pts.map(p => p[1]));
    if (!isFinite(y0)) { y0 = 0; y1 = 1; }
    if (y1 <= y0) { y0 -= 0.5; y1 += 0.5; }
    const pad = (y1 - y0) * 0.05; y0 = y0 >= 0 ? Math.max(0, y0 - pad) : y0 - pad; y1 += pad;
    const tick = v => Math.abs(v) >= 1e6 ? (v / 1e6).toPrecision(3) + "M" : Math.abs(v) >= 1e4 ? (v / 1e3).toPrecision(3) + "k" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
    if (x1 <= x0) x1 = x0 + 1;
    const px = x => L + (x - x0) / (x1 - x0) * (W - L - R), py = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    const grid = el("g", { class: "grid" });
    for (let i = 0; i <= 4; i++) {
      const yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;
      grid.append(el("line", { x1: L, x2: W - R, y1: py(yv), y2: py(yv) }));
      grid.append(el("text", { x: L - 5, y: py(yv) + 4, "text-anchor": "end", text: tick(yv) }));
      if (!xTicks) grid.append(el("text", { x: px(xv), y: H - B + 16, "text-anchor": "middle", text: xv.toFixed(0) }));
    }
    for (const [xv, label] of xTicks || []) grid.append(el("text", { x: px(xv), y: H - B + 16, "text-anchor": "middle", text: label }));
    svg.append(grid, el("rect", { class: "frame", x: L, y: T, width: W - L - R, height: H - T - B }));
    svg.append(el("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", text: xLabel }));
    svg.append(el("text", { x: 12, y: (T + H - B) / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${(T + H - B) / 2})`, text: yLabel }));
    series.forEach((s, i) => {
      svg.append(el("polyline", { class: "series", "data-name": s.name, "data-points": s.points.length, stroke: s.color, fill: "none",
        points: s.points.map(p => px(p[0]).toFixed(1) + "," + py(p[1]).toFixed(1)).join(" ") }));
      svg.append(el("text", { x: W - R - 150, y: T + 14 + 14 * i, style: "fill:" + s.color, text: s.name }));
    });
    svg.dataset.points = pts.length;
  }

  // ---- the job list ----
  async function renderJobs() {
    const [{ jobs }, { pipelines }] = await Promise.all([api("api/jobs"), api("api/pipelines")]);
    const tbody = $("#jobs tbody");
    tbody.replaceChildren(...jobs.slice().reverse().map(j => {
      const pct = Math.round(j.progress * 100);
      return el("tr", { class: "job", "data-id": j.id, "data-state": j.state },
        el("td", {}, el("a", { href: "#/job/" + j.id, text: String(j.id) })),
        el("td", { class: "name", text: j.name }),
        el("td", {}, el("span", { class: "state state-" + j.state, text: j.state })),
        el("td", { class: "progress" }, el("div", { class: "bar" }, el("div", { class: "fill", style: `width:${pct}%` })),
          el("span", { text: `${j.step}/${j.totalSteps} (${pct}%)` })),
        el("td", { class: "loss", text: fmt(j.loss, 4) }),
        el("td", { text: fmt(j.tokensPerSecond, 0) }),
        el("td", { text: `${j.restarts}/${j.maxRestarts}` }));
    }));
    $("#no-jobs").hidden = jobs.length > 0;
    $("#pipelines").replaceChildren(...pipelines.map(p => el("li", {}, el("a", { href: "#/pipeline/" + encodeURIComponent(p.name), text: p.name }), " — " + p.run)));
  }

  // ---- one job ----
  async function renderJob() {
    const id = page.id;
    const detail = await api(`api/jobs/${id}`);
    const j = detail.job;
    $("#job-title").textContent = `Job ${j.id}: ${j.name}`;
    const st = $("#job-state");
    st.textContent = j.state + (j.attempt ? ` (attempt ${j.attempt})` : "");
    st.dataset.state = j.state;
    st.className = "state state-" + j.state;
    $("#job-progress .fill").style.width = Math.round(j.progress * 100) + "%";
    $("#job-numbers").textContent = `step ${j.step}/${j.totalSteps} · loss ${fmt(j.loss, 4)} · held-out ${fmt(j.validationLoss, 4)} · ${fmt(j.tokensPerSecond, 0)} tok/s` +
      (detail.flopsPerSecond ? ` · ${(detail.flopsPerSecond / 1e9).toFixed(2)} GFLOP/s` : "") +
      (detail.utilization ? ` · ${(detail.utilization * 100).toFixed(1)}% of peak` : "") +
      ` · restarts ${j.restarts}/${j.maxRestarts}` + (j.message ? ` · ${j.message}` : "");

    // Events since the last look (byte offset), kept per step: a restart replays steps.
    const ev = await api(`api/jobs/${id}/events?offset=${page.offset}`);
    page.offset = ev.next;
    for (const e of ev.events) {
      if (e.event === "step" && typeof e.step === "number") {
        if (typeof e.loss === "number") page.loss.set(e.step, e.loss);
        if (typeof e.tokens_per_s === "number") page.tps.set(e.step, e.tokens_per_s);
      } else if (e.event === "eval" && typeof e.val_loss === "number") page.val.set(e.step, e.val_loss);
    }
    const sorted = m => [...m.entries()].sort((a, b) => a[0] - b[0]);
    lineChart($("#loss-chart"), [{ name: "training loss", color: "#1f77b4", points: sorted(page.loss) },
                                 { name: "held-out loss", color: "#d62728", points: sorted(page.val) }], "step", "loss");
    lineChart($("#tps-chart"), [{ name: "tokens/s", color: "#2ca02c", points: sorted(page.tps) }], "step", "tokens/s");

    $("#workers").replaceChildren(...detail.workers.map(w => el("div", { class: "rank status-" + w.status, "data-rank": w.rank, "data-status": w.status,
      title: `pid ${w.pid} on ${w.host}` },
      el("b", { text: `rank ${w.rank}` }), el("span", { class: "verdict", text: w.status.toUpperCase() }),
      el("span", { text: `step ${w.step} · ${w.phase}` }), el("span", { text: `heartbeat ${age(w.heartbeatAgeSeconds)} ago` }))));
    $("#workers-note").textContent = `stale after ${detail.staleAfterSeconds.toFixed(1)} s without a heartbeat; dead when the process is gone`;

    const { checkpoints } = await api(`api/jobs/${id}/checkpoints`);
    $("#checkpoints tbody").replaceChildren(...checkpoints.slice().reverse().map(c => el("tr", { class: "checkpoint", "data-step": c.step },
      el("td", { text: c.name + (c.latest ? " (latest)" : "") }), el("td", { text: bytes(c.bytes) }),
      el("td", { text: c.saveSeconds === undefined || c.saveSeconds === null ? "-" : c.saveSeconds.toFixed(2) + " s" }))));
    $("#restarts").replaceChildren(...detail.restarts.map(r => el("li", { text: `attempt ${r.attempt} from step ${r.fromStep ?? 0}: ${r.reason}` })));

    const rank = $("#log-rank").value || "0";
    try {
      const log = await api(`api/jobs/${id}/logs/${rank}?tail=4000`);
      $("#log").textContent = log.text;
    } catch (e) { $("#log").textContent = "(" + e.message + ")"; }
    if ($("#log-rank").options.length !== j.data * j.tensor + 1) {
      const opts = [...Array(j.data * j.tensor).keys()].map(r => el("option", { value: r, text: "rank " + r }));
      $("#log-rank").replaceChildren(...opts, el("option", { value: "coordinator", text: "coordinator" }));
    }
  }

  // ---- one pipeline ----
  async function renderPipeline() {
    const name = page.id;
    const p = await api(`api/pipelines/${encodeURIComponent(name)}`);
    $("#pipeline-title").textContent = `Pipeline ${p.name} (${p.selection}) — ${p.run}`;
    const svg = $("#pipeline-graph");
    const bw = 118, bh = 42, gap = 22, rowH = 64;
    const widest = Math.max(...p.iterations.map(it => it.stages.length));
    svg.setAttribute("viewBox", `0 0 ${70 + widest * (bw + gap)} ${p.iterations.length * rowH + 10}`);
    svg.replaceChildren();
    p.iterations.forEach((it, row) => {
      const y = 10 + row * rowH;
      svg.append(el("text", { x: 4, y: y + bh / 2 + 4, class: "iteration", text: it.name }));
      it.stages.forEach((s, i) => {
        const x = 60 + i * (bw + gap);
        if (i > 0) svg.append(el("line", { class: "edge", x1: x - gap, y1: y + bh / 2, x2: x - 3, y2: y + bh / 2 }));
        svg.append(el("g", { class: "stage stage-" + s.state, "data-id": s.id, "data-state": s.state },
          el("title", { text: `${s.id}: ${s.state}${s.seconds ? ", " + s.seconds.toFixed(1) + " s" : ""}` }),
          el("rect", { x, y, width: bw, height: bh, rx: 5 }),
          el("text", { x: x + bw / 2, y: y + 16, "text-anchor": "middle", text: s.name }),
          el("text", { x: x + bw / 2, y: y + 32, "text-anchor": "middle", class: "small",
            text: s.state + (s.progress ? " " + s.progress : "") + (s.seconds ? ` ${s.seconds.toFixed(0)}s` : "") })));
      });
    });
    try {
      const f = await api(`api/pipelines/${encodeURIComponent(name)}/report`);
      const iters = [...new Set(f.policies.map(r => r.iteration))];
      const series = [];
      const colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
      for (const pol of [...new Set(f.policies.map(r => r.policy))]) {
        for (const [key, label] of [["right", "right"], ["violations", "violations"]]) {
          series.push({ name: `${pol}: ${label}`, color: colors[series.length % colors.length],
            points: f.policies.filter(r => r.policy === pol).map(r => [iters.indexOf(r.iteration), r[key]]) });
        }
      }
      lineChart($("#report-chart"), series, "iteration", "share of answers", iters.map((n, i) => [i, n]));
      const ci = (r, m, v) => { const i = (r.intervals || {})[m]; return fmt(v, 3) + (i ? ` [${fmt(i.low, 3)}, ${fmt(i.high, 3)}]` : ""); };
      $("#report-table tbody").replaceChildren(...f.policies.map(r => el("tr", { class: "policy-row", "data-promoted": r.promoted === undefined || r.promoted === null ? "" : String(r.promoted) },
        el("td", { text: r.iteration }), el("td", { text: r.policy }), el("td", { text: ci(r, "right", r.right) }),
        el("td", { text: ci(r, "right_sampled", r.rightSampled) }), el("td", { text: ci(r, "violations", r.violations) }),
        el("td", { text: r.promoted === undefined || r.promoted === null ? "-" : r.promoted ? `yes, over ${r.judgedAgainst}` : `no, ${r.judgedAgainst} stays: ${r.promotion}` }))));
      $("#report-result").textContent = f.result ? "The pipeline's policies (the last promoted of each size): " + f.result.map(x => `${x.policy} ${x.iteration}`).join(", ") : "";
      $("#report-note").textContent = "";
    } catch (e) { $("#report-note").textContent = e.message; }
  }

  const views = { jobs: renderJobs, job: renderJob, pipeline: renderPipeline };

  function route() {
    const parts = location.hash.replace(/^#\/?/, "").split("/");
    if (parts[0] === "job" && /^\d+$/.test(parts[1])) page = { kind: "job", id: parts[1], offset: 0, loss: new Map(), val: new Map(), tps: new Map() };
    else if (parts[0] === "pipeline" && parts[1]) page = { kind: "pipeline", id: decodeURIComponent(parts[1]) };
    else page = { kind: "jobs" };
    for (const s of document.querySelectorAll("section.page")) s.hidden = s.id !== "page-" + page.kind;
    setStatus("loading");
    if (timer) clearTimeout(timer);
    tick();
  }

  async function tick() {
    const current = page;
    try {
      await views[current.kind]();
      if (current === page) setStatus("ready");
    } catch (e) {
      if (current === page) setStatus("error: " + e.message);
    }
    if (current === page) timer = setTimeout(tick, POLL_MS);
  }

  window.addEventListener("hashchange", route);
  window.addEventListener("DOMContentLoaded", () => {
    $("#log-rank").addEventListener("change", () => { if (page.kind === "job") tick(); });
    route();
  });
})();
"""#

    static let styleCSS = #"""
body { font: 14px/1.4 system-ui, "DejaVu Sans", sans-serif; margin: 0 24px 24px; color: #222; }
header { display: flex; gap: 12px; align-items: baseline; padding: 10px 0; border-bottom: 1px solid #ddd; }
header a { color: inherit; text-decoration: none; font-size: 18px; }
#status { margin-left: auto; font-size: 12px; color: #666; }
.muted { color: #666; }
table { border-collapse: collapse; min-width: 60%; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eee; }
.bar { display: inline-block; width: 160px; height: 10px; background: #eee; border-radius: 5px; overflow: hidden; vertical-align: middle; margin-right: 8px; }
.bar.wide { width: 100%; max-width: 900px; height: 12px; }
.bar .fill { height: 100%; background: #1f77b4; }
.state { padding: 1px 8px; border-radius: 8px; background: #eee; }
.state-running { background: #d6ecff; } .state-succeeded { background: #d8f5d8; }
.state-failed { background: #ffd6d6; } .state-restarting { background: #ffe8c2; } .state-cancelled { background: #e6e6e6; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; } figcaption { font-weight: bold; }
svg.chart { width: 640px; height: 260px; border: 1px solid #ddd; }
svg .grid line { stroke: #eee; } svg .frame { fill: none; stroke: #999; } svg text { font-size: 11px; fill: #444; }
svg .series { stroke-width: 1.6; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; }
.rank { display: flex; flex-direction: column; width: 170px; padding: 6px 8px; border-radius: 6px; border: 2px solid #8c8; background: #efe; font-size: 12px; }
.rank .verdict { font-weight: bold; }
.rank.status-stale { border-color: #e90; background: #fff3dc; }
.rank.status-dead { border-color: #c00; background: #ffd9d9; color: #900; }
.rank.status-exited { border-color: #aaa; background: #f4f4f4; color: #666; }
pre#log { background: #111; color: #ddd; padding: 8px; max-height: 300px; overflow: auto; font-size: 12px; }
svg.graph { width: 100%; max-width: 1200px; border: 1px solid #ddd; }
.stage rect { fill: #eee; stroke: #999; } .stage-finished rect { fill: #d8f5d8; stroke: #5a5; }
.stage-running rect { fill: #d6ecff; stroke: #38c; } .stage-failed rect { fill: #ffd6d6; stroke: #c33; }
.stage-stopped rect { fill: #ffe8c2; stroke: #e90; }
.edge { stroke: #999; stroke-width: 1.5; } .small { font-size: 10px; } .iteration { font-weight: bold; font-size: 13px; }
"""#

    /// Path → (content type, body).
    static let files: [String: (String, String)] = [
        "/": ("text/html; charset=utf-8", indexHTML),
        "/index.html": ("text/html; charset=utf-8", indexHTML),
        "/app.js": ("text/javascript; charset=utf-8", appJS),
        "/style.css": ("text/css; charset=utf-8", styleCSS),
    ]
}
