// seen-worker dashboard: the live downloads page (SSE) and small helpers. No inline script
// anywhere (strict CSP): this file is the only code the pages run.
"use strict";

(function () {
  const page = document.body.dataset.page;
  if (page === "downloads") liveDownloads();
  if (page === "overview") history();
  if (page === "overview" || page === "schedules" || page === "locks" || page === "job") {
    // these pages are snapshots rendered by the server; refresh them gently, never while
    // the operator types (a pause reason) or on a job that is over
    const state = document.getElementById("job-state");
    const over = state && ["complete", "failed", "not found"].includes(state.textContent);
    if (!over) setTimeout(refresh, page === "job" ? 5000 : 15000);
  }

  function refresh() {
    const typing = document.activeElement &&
      ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (typing) { setTimeout(refresh, 5000); return; }
    window.location.reload();
  }

  // -- the overview's graphs: the fleet's history (/api/history), drawn as inline SVG ------
  const SVG = "http://www.w3.org/2000/svg";
  const CHARTS = [
    { id: "chart-throughput", title: "Jobs ended per minute, by outcome", unit: "",
      series: [["complete", p => p.ended.complete], ["failed", p => p.ended.failed],
               ["retried", p => p.ended.retried], ["cancelled", p => p.ended.cancelled],
               ["stale", p => p.ended.stale]] },
    { id: "chart-queue", title: "Queue: due, running, deferred", unit: "",
      series: [["due", p => p.due], ["running", p => p.running], ["deferred", p => p.deferred]] },
    { id: "chart-age", title: "Oldest waiting job (seconds)", unit: " s",
      series: [["oldest", p => p.oldest_s]] },
    { id: "chart-duration", title: "Job run time p50 / p95 (seconds)", unit: " s",
      series: [["p50", p => p.duration_p50_s], ["p95", p => p.duration_p95_s]] },
  ];

  function history() {
    const box = document.getElementById("history");
    if (!box) return;
    const stats = window.seenHistory = { loads: 0, errors: 0, points: 0, range: null, totals: {} };
    let range = window.location.hash === "#day" ? "day" : "hour";
    for (const button of box.querySelectorAll("button[data-range]")) {
      button.addEventListener("click", () => {
        range = button.dataset.range;
        window.location.hash = range === "day" ? "#day" : "";
        load();
      });
    }
    async function load() {
      try {
        const response = await fetch("/api/history?range=" + range, { cache: "no-store" });
        if (!response.ok) throw new Error(response.status + " " + (await response.text()));
        const data = await response.json();
        stats.loads++;
        stats.points = data.points.length;
        stats.range = data.range;
        stats.totals = {};
        for (const p of data.points) {
          for (const [k, v] of Object.entries(p.ended)) stats.totals[k] = (stats.totals[k] || 0) + v;
        }
        for (const button of box.querySelectorAll("button[data-range]")) {
          button.classList.toggle("on", button.dataset.range === range);
        }
        for (const chart of CHARTS) draw(document.getElementById(chart.id), chart, data);
        document.getElementById("history-note").textContent = "";
      } catch (err) {
        stats.errors++;
        document.getElementById("history-note").textContent = "history not loaded: " + err.message;
      }
    }
    load();
    setInterval(load, 15000);
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function hm(ms) {
    const d = new Date(ms);
    return String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0");
  }

  function nice(v) {
    if (Number.isInteger(v)) return String(v);
    if (v >= 100) return v.toFixed(0);
    if (v >= 10) return v.toFixed(1);
    return Number(v.toPrecision(2)).toString();
  }

  function draw(figure, chart, data) {
    const W = 560, H = 170, L = 46, R = 10, T = 10, B = 24;
    const points = data.points;
    const n = points.length;
    let max = 0;
    const values = chart.series.map(([name, get]) => points.map(p => {
      const v = get(p);
      if (v !== null && v !== undefined && v > max) max = v;
      return v === undefined ? null : v;
    }));
    if (max <= 0) max = 1;
    const x = i => L + (W - L - R) * (n <= 1 ? 0 : i / (n - 1));
    const y = v => T + (H - T - B) * (1 - v / max);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "data-points": n,
                            "aria-label": chart.title });
    svg.appendChild(el("title", {}, chart.title + " (" + data.range + ", UTC)"));
    for (const frac of [0, 0.5, 1]) {
      const v = max * frac;
      svg.appendChild(el("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.appendChild(el("text", { class: "tick", x: L - 4, y: y(v) + 4, "text-anchor": "end" },
                         nice(v) + chart.unit));
    }
    [[0, "start"], [Math.floor((n - 1) / 2), "middle"], [n - 1, "end"]].forEach(([i, anchor]) => {
      if (i < 0) return;
      svg.appendChild(el("text", { class: "tick", x: x(i), y: H - 6, "text-anchor": anchor },
                         hm(points[i].at_ms)));
    });
    const legend = document.createElement("p");
    legend.className = "legend";
    chart.series.forEach(([name], s) => {
      let path = "";
      let drawn = 0;
      values[s].forEach((v, i) => {
        if (v === null) return;
        path += (path && values[s][i - 1] !== null && i > 0 ? " L" : " M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
        drawn++;
      });
      const line = el("path", { class: "series s-" + name, d: path.trim() || "M0 0",
                                "data-series": name, "data-drawn": drawn });
      svg.appendChild(line);
      values[s].forEach((v, i) => {  // a lone sample has no line: a dot shows it
        const alone = (i === 0 || values[s][i - 1] === null) &&
          (i === n - 1 || values[s][i + 1] === null);
        if (v !== null && alone) {
          svg.appendChild(el("circle", { class: "dot s-" + name, cx: x(i), cy: y(v), r: 3 }));
        }
      });
      const last = [...values[s]].reverse().find(v => v !== null);
      const key = document.createElement("span");
      key.className = "key s-" + name;
      key.textContent = name + (last === undefined ? " -" : " " + nice(last) + chart.unit);
      legend.appendChild(key);
    });
    figure.replaceChildren(svg, legend);
  }

  function fmtBytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let v = n, i = 0;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return i === 0 ? v.toFixed(0) + " " + units[i] : v.toFixed(1) + " " + units[i];
  }

  function fmtEta(s) {
    if (s === null || s === undefined) return "-";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h) return h + "h" + String(m).padStart(2, "0") + "m";
    return m ? m + "m" + String(r).padStart(2, "0") + "s" : r + "s";
  }

  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const SEQ_HISTORY = 1000;

  function liveDownloads() {
    const table = document.getElementById("downloads");
    const tbody = table.querySelector("tbody");
    // the page's filters (user, status, download id): rows that do not match are not shown
    const filter = { u: table.dataset.user, s: table.dataset.status, j: table.dataset.id };
    const shownEl = document.getElementById("shown");
    function matches(it) {
      return (!filter.u || it.u === filter.u) && (!filter.s || it.s === filter.s) &&
        (!filter.j || it.j === filter.j);
    }
    const conn = document.getElementById("conn");
    const activeEl = document.getElementById("active");
    const eventsEl = document.getElementById("events");
    const rows = new Map(); // job id -> {item, tr}
    const dirty = new Set();
    // what the browser tests read: counts, the seqs seen per download, duplicates
    const stats = window.seenDash = {
      events: 0, duplicates: 0, snapshots: 0, resyncs: 0, connects: 0,
      lastId: null, seqs: {}, seen: new Set(), reconnect: reconnect,
    };
    let source = null;
    let scheduled = false;

    function connect(last) {
      const url = last ? "/events/downloads?last=" + encodeURIComponent(last) : "/events/downloads";
      source = new EventSource(url);
      stats.connects++;
      source.onopen = () => { conn.textContent = "live"; conn.className = "good"; };
      source.onerror = () => { conn.textContent = "reconnecting"; conn.className = "bad"; };
      source.addEventListener("snapshot", (ev) => {
        stats.snapshots++;
        stats.lastId = ev.lastEventId;
        const snap = JSON.parse(ev.data);
        const bad = document.getElementById("unreadable");
        bad.hidden = !snap.unreadable;
        bad.textContent = snap.unreadable ? snap.unreadable + " unreadable " +
          (snap.unreadable === 1 ? "entry" : "entries") + " skipped; the dashboard's log names their keys" : "";
        for (const item of snap.downloads) apply(item, false);
      });
      source.addEventListener("progress", (ev) => {
        stats.lastId = ev.lastEventId;
        for (const item of JSON.parse(ev.data).events) {
          const key = item.h + ":" + item.i; // entry ids are unique per shard
          if (stats.seen.has(key)) { stats.duplicates++; continue; }
          stats.seen.add(key);
          stats.events++;
          const list = stats.seqs[item.j] || (stats.seqs[item.j] = []);
          if (list.length < SEQ_HISTORY) list.push(item.q);
          apply(item, true);
        }
      });
      source.addEventListener("resync", () => {
        // too slow for the server: resume from the last id we have (no gap, no duplicate)
        stats.resyncs++;
        reconnect();
      });
      source.addEventListener("error", (ev) => {
        if (ev.data) { conn.textContent = JSON.parse(ev.data).error; conn.className = "bad"; }
      });
    }

    function reconnect() {
      if (source) source.close();
      conn.textContent = "reconnecting";
      connect(stats.lastId);
    }

    function apply(item, live) {
      const row = rows.get(item.j);
      if (!matches(item)) {  // it left the filter (a status filter): its row goes
        if (row && item.q > row.item.q) {
          if (row.tr) row.tr.remove();
          rows.delete(item.j);
          dirty.delete(item.j);
        }
        return;
      }
      if (row && (TERMINAL.has(row.item.s) || item.q <= row.item.q)) return;
      if (row) row.item = item; else rows.set(item.j, { item: item, tr: null });
      dirty.add(item.j);
      if (!scheduled) { scheduled = true; requestAnimationFrame(render); }
    }

    function render() {
      scheduled = false;
      for (const job of dirty) {
        const row = rows.get(job);
        if (!row.tr) {
          row.tr = document.createElement("tr");
          row.tr.dataset.job = job;
          for (let i = 0; i < 8; i++) row.tr.appendChild(document.createElement("td"));
          const bar = document.createElement("progress");
          bar.max = 100;
          row.tr.children[3].appendChild(bar);
          tbody.appendChild(row.tr);
        }
        const it = row.item, c = row.tr.children;
        row.tr.dataset.status = it.s;
        row.tr.dataset.seq = it.q;
        row.tr.dataset.percent = it.p;
        row.tr.className = it.s;
        c[0].textContent = it.j;
        c[1].textContent = it.u;
        c[2].textContent = it.s + (it.x ? " (" + it.x + ")" : "");
        c[3].firstChild.value = it.p;
        c[4].textContent = it.p.toFixed(1);
        c[5].textContent = fmtBytes(it.d) + " / " + (it.t ? fmtBytes(it.t) : "?");
        c[6].textContent = it.v ? (it.v * 8 / 1e6).toFixed(2) + " Mbps" : "-";
        c[7].textContent = fmtEta(it.e);
      }
      dirty.clear();
      let active = 0;
      for (const row of rows.values()) if (!TERMINAL.has(row.item.s)) active++;
      activeEl.textContent = active;
      shownEl.textContent = rows.size;
      eventsEl.textContent = stats.events;
    }

    document.getElementById("reconnect").addEventListener("click", reconnect);
    connect(null);
  }
})();
