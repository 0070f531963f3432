// The admin page's three assets, served by admin.ts. Plain HTML, CSS and script with no
// build step; the script shows data only through textContent and SVG attributes.

/**
 * The page. Its script and stylesheet are separate so that the CSP can forbid inline ones.
 *
 * @example
 * ```ts
 * import { ADMIN_HTML } from "./admin_page.ts";
 * console.log(ADMIN_HTML.includes('<script src="/admin/app.js">')); // true
 * ```
 */
export const ADMIN_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Comet admin</title>
<link rel="stylesheet" href="/admin/app.css">
</head>
<body>
<header>
  <h1>Comet</h1>
  <span class="tag">node <b id="node">…</b></span>
  <span class="tag">cluster <b id="cluster">…</b></span>
  <span class="tag">up <b id="uptime">…</b></span>
  <span id="status" role="status"></span>
</header>
<main>
  <section class="figures" aria-label="Live figures">
    <div class="figure"><span class="label">Connections</span><b id="connections">–</b>
      <span class="sub" id="transports"></span></div>
    <div class="figure"><span class="label">Handshaking</span><b id="handshaking">–</b></div>
    <div class="figure"><span class="label">Rooms</span><b id="rooms">–</b></div>
    <div class="figure"><span class="label">Pushes/s</span><b id="push-rate">–</b>
      <span class="sub">total <span id="pushes">–</span></span></div>
    <div class="figure"><span class="label">Deliveries/s</span><b id="delivery-rate">–</b>
      <span class="sub">total <span id="deliveries">–</span></span></div>
    <div class="figure"><span class="label">Bytes in</span><b id="bytes-in">–</b>
      <span class="sub">out <span id="bytes-out">–</span></span></div>
    <div class="figure"><span class="label">Queued frames</span><b id="queue">–</b>
      <span class="sub">max <span id="queue-max">–</span></span></div>
    <div class="figure"><span class="label">Memory (RSS)</span><b id="rss">–</b>
      <span class="sub">heap <span id="heap">–</span></span></div>
  </section>
  <section class="charts" aria-label="Charts, last two minutes">
    <figure><figcaption>Connections</figcaption>
      <svg id="chart-connections" viewBox="0 0 300 90" preserveAspectRatio="none"></svg></figure>
    <figure><figcaption>Rooms</figcaption>
      <svg id="chart-rooms" viewBox="0 0 300 90" preserveAspectRatio="none"></svg></figure>
    <figure><figcaption>Messages per second: <span class="key deliveries">deliveries</span>
      <span class="key pushes">pushes</span></figcaption>
      <svg id="chart-rate" viewBox="0 0 300 90" preserveAspectRatio="none"></svg></figure>
  </section>
  <section class="lower">
    <form id="push-form" autocomplete="off">
      <h2>Push</h2>
      <label>Kind <select name="kind">
        <option value="room">room</option>
        <option value="keys">keys</option>
        <option value="mids">mids</option>
        <option value="all">all</option>
      </select></label>
      <label>Operation <input name="operation" type="number" value="1000" required></label>
      <label>Target <input name="target" value="live://1000"
        placeholder="room: live://1000 · keys: k1,k2 · mids: 1,2"></label>
      <label>Speed <input name="speed" type="number" min="0" placeholder="all: connections/s"></label>
      <label class="wide">Body <textarea name="body" rows="3">hello</textarea></label>
      <button type="submit">Push</button>
      <output id="push-result" class="wide"></output>
    </form>
    <div>
      <h2>Top rooms</h2>
      <table><thead><tr><th>room</th><th>online</th></tr></thead>
        <tbody id="top-rooms"></tbody></table>
      <h2>Counters</h2>
      <table><tbody id="counters"></tbody></table>
    </div>
  </section>
</main>
<script src="/admin/app.js"></script>
</body>
</html>
`;

/**
 * The stylesheet.
 *
 * @example
 * ```ts
 * import { ADMIN_CSS } from "./admin_page.ts";
 * console.log(ADMIN_CSS.length > 0); // true
 * ```
 */
export const ADMIN_CSS = `:root { color-scheme: light dark; --fg: #1d2330; --muted: #667085;
  --bg: #f6f7f9; --card: #fff; --line: #d0d5dd; --a: #2563eb; --b: #e8590c; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ec; --muted: #98a2b3;
  --bg: #12151b; --card: #1b1f27; --line: #344054; --a: #60a5fa; --b: #fb923c; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap;
  padding: .75rem 1.25rem; border-bottom: 1px solid var(--line); background: var(--card); }
h1 { font-size: 1.25rem; margin: 0; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
.tag { color: var(--muted); }
.tag b { color: var(--fg); font-weight: 600; }
#status { margin-left: auto; color: var(--b); }
main { padding: 1rem 1.25rem; display: grid; gap: 1rem; }
.figures { display: grid; gap: .75rem; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); }
.figure, figure, form, .lower > div { background: var(--card); border: 1px solid var(--line);
  border-radius: 8px; padding: .75rem; margin: 0; }
.figure { display: flex; flex-direction: column; }
.figure b { font-size: 1.5rem; font-variant-numeric: tabular-nums; }
.label, .sub, figcaption { color: var(--muted); font-size: .8rem; }
.charts { display: grid; gap: .75rem; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); }
svg { width: 100%; height: 90px; display: block; margin-top: .25rem; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .line { fill: none; stroke-width: 2; vector-effect: non-scaling-stroke; }
svg .a { stroke: var(--a); }
svg .area { stroke: none; fill: var(--a); opacity: .15; }
svg .b { stroke: var(--b); }
svg text { fill: var(--muted); font-size: 10px; }
.key.deliveries { color: var(--a); }
.key.pushes { color: var(--b); }
.lower { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr));
  align-items: start; }
form { display: grid; gap: .5rem; grid-template-columns: 1fr 1fr; }
form h2, .wide { grid-column: 1 / -1; }
label { display: flex; flex-direction: column; gap: .2rem; color: var(--muted); font-size: .8rem; }
input, select, textarea, button { font: inherit; color: var(--fg); background: var(--bg);
  border: 1px solid var(--line); border-radius: 6px; padding: .35rem .5rem; }
button { background: var(--a); color: #fff; border: 0; cursor: pointer; grid-column: 1 / -1; }
output { min-height: 1.4em; font-family: ui-monospace, monospace; font-size: .85rem; }
output.error { color: var(--b); }
table { width: 100%; border-collapse: collapse; margin-bottom: 1rem; font-variant-numeric: tabular-nums; }
td, th { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid var(--line); }
td:last-child, th:last-child { text-align: right; }
`;

/**
 * The script: draws the server's last two minutes from `/admin/history` at
 * load, then polls `/admin/stats` once a second (the next poll is scheduled
 * when the last one ends, so they never pile up), keeps two minutes of
 * history for the SVG charts, and posts the push form to `/admin/push/<kind>`.
 *
 * @example
 * ```ts
 * import { ADMIN_JS } from "./admin_page.ts";
 * console.log(ADMIN_JS.includes("innerHTML")); // false: data is shown as text
 * ```
 */
export const ADMIN_JS = String.raw`"use strict";
(function () {
  const BASE = "/admin";
  const HISTORY = 120;
  const SVG = "http://www.w3.org/2000/svg";
  const W = 300;
  const H = 90;
  const history = { connections: [], rooms: [], deliveries: [], pushes: [] };
  const state = { ticks: 0, snapshot: null, error: null, loaded: 0 };
  // Read by tests and by whoever opens the console.
  window.cometAdmin = state;
  let last = null;

  const $ = (id) => document.getElementById(id);
  const show = (id, text) => {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
  };

  function int(n) {
    return Math.round(n).toLocaleString("en-US");
  }

  function rate(n) {
    return n >= 100 ? int(n) : n.toFixed(1);
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + " " + units[i];
  }

  function duration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    return m + "m " + (s % 60) + "s";
  }

  /** Sums every number in a value, nested objects included (stats.pushes by kind). */
  function total(value) {
    if (typeof value === "number") return value;
    if (value === null || typeof value !== "object") return 0;
    let n = 0;
    for (const v of Object.values(value)) n += total(v);
    return n;
  }

  function flatten(value, prefix, out) {
    for (const [k, v] of Object.entries(value)) {
      const name = prefix ? prefix + "." + k : k;
      if (typeof v === "number") out.push([name, v]);
      else if (v !== null && typeof v === "object") flatten(v, name, out);
    }
    return out;
  }

  function push(series, value) {
    series.push(value);
    if (series.length > HISTORY) series.shift();
  }

  function svg(name, attrs, parent) {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    parent.appendChild(el);
    return el;
  }

  /** A sparkline chart: a scale label, a baseline and one polyline per series. */
  function chart(id, classes) {
    const root = $(id);
    svg("line", { class: "grid", x1: 0, y1: H - 1, x2: W, y2: H - 1 }, root);
    svg("line", { class: "grid", x1: 0, y1: 12, x2: W, y2: 12 }, root);
    const max = svg("text", { x: 2, y: 10 }, root);
    const now = svg("text", { x: W - 2, y: 10, "text-anchor": "end" }, root);
    const area = svg("polygon", { class: "area " + classes[0], points: "" }, root);
    const lines = classes.map((c) => svg("polyline", { class: "line " + c, points: "" }, root));
    return function draw(seriesList, format) {
      let top = 1;
      for (const s of seriesList) for (const v of s) if (v > top) top = v;
      max.textContent = "max " + format(top);
      now.textContent = "now " + format(seriesList[0][seriesList[0].length - 1] || 0);
      seriesList.forEach((s, i) => {
        const step = W / (HISTORY - 1);
        const x0 = W - (s.length - 1) * step;
        const points = s.map((v, j) =>
          (x0 + j * step).toFixed(1) + "," + (H - 2 - (v / top) * (H - 16)).toFixed(1)
        );
        lines[i].setAttribute("points", points.join(" "));
        if (i === 0 && s.length > 0) {
          const base = (H - 1).toFixed(1);
          points.push(W.toFixed(1) + "," + base, x0.toFixed(1) + "," + base);
          area.setAttribute("points", points.join(" "));
        }
      });
    };
  }

  const drawConnections = chart("chart-connections", ["a"]);
  const drawRooms = chart("chart-rooms", ["a"]);
  const drawRate = chart("chart-rate", ["a", "b"]);

  function rows(tbody, entries) {
    const body = $(tbody);
    while (body.rows.length > entries.length) body.deleteRow(-1);
    entries.forEach(([name, value], i) => {
      const row = body.rows[i] || body.insertRow();
      while (row.cells.length < 2) row.insertCell();
      if (row.cells[0].textContent !== name) row.cells[0].textContent = name;
      const text = int(value);
      if (row.cells[1].textContent !== text) row.cells[1].textContent = text;
    });
  }

  function update(s) {
    const pushes = total(s.stats.pushes);
    const deliveries = total(s.stats.deliveries);
    let pushRate = 0;
    let deliveryRate = 0;
    let inText = "–";
    let outText = "–";
    if (last !== null && s.time > last.time) {
      const dt = (s.time - last.time) / 1000;
      pushRate = Math.max(0, (pushes - last.pushes) / dt);
      deliveryRate = Math.max(0, (deliveries - last.deliveries) / dt);
      let inRate = 0;
      let outRate = 0;
      for (const [t, c] of Object.entries(s.traffic)) {
        const before = last.traffic[t] || { bytesIn: 0, bytesOut: 0 };
        inRate += (c.bytesIn - before.bytesIn) / dt;
        outRate += (c.bytesOut - before.bytesOut) / dt;
      }
      inText = bytes(Math.max(0, inRate)) + "/s";
      outText = bytes(Math.max(0, outRate)) + "/s";
    }
    const first = last === null;
    last = { time: s.time, pushes, deliveries, traffic: s.traffic };

    show("node", s.node);
    show("cluster", s.cluster + (s.ready ? "" : " (not ready)"));
    show("uptime", duration(s.uptime));
    show("connections", int(s.connectionsTotal));
    show(
      "transports",
      Object.entries(s.connections).filter(([, n]) => n > 0).map(([t, n]) => t + " " + int(n))
        .join(" · "),
    );
    show("handshaking", int(s.handshaking));
    show("rooms", int(s.rooms));
    show("push-rate", rate(pushRate));
    show("pushes", int(pushes));
    show("delivery-rate", rate(deliveryRate));
    show("deliveries", int(deliveries));
    show("bytes-in", inText);
    show("bytes-out", outText);
    show("queue", int(s.queue.depth));
    show("queue-max", int(s.queue.max));
    show("rss", bytes(s.memory.rss));
    show("heap", bytes(s.memory.heapUsed));

    push(history.connections, s.connectionsTotal);
    push(history.rooms, s.rooms);
    // The first poll has no rate of its own: after the server's history, a zero would be a dip.
    if (!first || state.loaded === 0) {
      push(history.deliveries, deliveryRate);
      push(history.pushes, pushRate);
    }
    drawConnections([history.connections], int);
    drawRooms([history.rooms], int);
    drawRate([history.deliveries, history.pushes], rate);

    rows("top-rooms", s.topRooms.map((r) => [r.room, r.count]));
    rows("counters", flatten(s.stats, "", []));
  }

  async function tick() {
    try {
      const res = await fetch(BASE + "/stats", { cache: "no-store", credentials: "same-origin" });
      if (res.status === 401) throw new Error("unauthorized: open /admin?token=… again");
      const envelope = await res.json();
      if (envelope.code !== 0) throw new Error(envelope.message);
      update(envelope.data);
      state.snapshot = envelope.data;
      state.ticks++;
      state.error = null;
      show("status", "");
    } catch (err) {
      state.error = String(err.message || err);
      show("status", state.error);
    } finally {
      setTimeout(tick, 1000);
    }
  }

  const form = $("push-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = $("push-result");
    const f = new FormData(form);
    const kind = String(f.get("kind"));
    const target = String(f.get("target") || "").trim();
    const params = new URLSearchParams({ operation: String(f.get("operation")) });
    const list = target.split(",").map((t) => t.trim()).filter((t) => t !== "");
    if (kind === "keys") list.forEach((k) => params.append("keys", k));
    if (kind === "mids") list.forEach((m) => params.append("mids", m));
    if (kind === "room") {
      const at = target.indexOf("://");
      if (at <= 0) {
        out.className = "error";
        out.textContent = "Room must be type://id, e.g. live://1000";
        return;
      }
      params.set("type", target.slice(0, at));
      params.set("room", target.slice(at + 3));
    }
    if (kind === "all" && f.get("speed")) params.set("speed", String(f.get("speed")));
    out.className = "";
    out.textContent = "pushing…";
    try {
      const res = await fetch(BASE + "/push/" + encodeURIComponent(kind) + "?" + params, {
        method: "POST",
        body: String(f.get("body") || ""),
        credentials: "same-origin",
      });
      const envelope = await res.json();
      out.className = envelope.code === 0 ? "" : "error";
      out.textContent = res.status + " code " + envelope.code +
        (envelope.message ? ": " + envelope.message : ": pushed");
      state.pushed = (state.pushed || 0) + (envelope.code === 0 ? 1 : 0);
    } catch (err) {
      out.className = "error";
      out.textContent = String(err.message || err);
    }
  });

  /** The server's last two minutes, so that a reload does not start the charts empty. */
  async function load() {
    try {
      const res = await fetch(BASE + "/history", { cache: "no-store", credentials: "same-origin" });
      const envelope = await res.json();
      if (envelope.code !== 0) return;
      const samples = envelope.data.samples;
      samples.forEach((s, i) => {
        push(history.connections, s.connections);
        push(history.rooms, s.rooms);
        const p = samples[i - 1];
        if (p === undefined || s.time <= p.time) return;
        const dt = (s.time - p.time) / 1000;
        push(history.deliveries, Math.max(0, (s.deliveries - p.deliveries) / dt));
        push(history.pushes, Math.max(0, (s.pushes - p.pushes) / dt));
      });
      state.loaded = samples.length;
    } catch {
      // The live figures follow all the same.
    }
  }

  load().finally(tick);
})();
`;
