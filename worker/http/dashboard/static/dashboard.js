// seen-worker dashboard: the live downloads page (SSE) and small helpers. No inline script
// anywhere (strict CSP): this file is the only code the pages run.
"use strict";

(function () {
  const page = document.body.dataset.page;
  if (page === "downloads") liveDownloads();
  if (page === "overview" || page === "schedules" || page === "locks") {
    // these pages are snapshots rendered by the server; refresh them gently
    setTimeout(() => window.location.reload(), 10000);
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
    const tbody = document.querySelector("#downloads tbody");
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
      eventsEl.textContent = stats.events;
    }

    document.getElementById("reconnect").addEventListener("click", reconnect);
    connect(null);
  }
})();
