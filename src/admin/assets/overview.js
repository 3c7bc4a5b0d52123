// Overview: counts by reason and decision, drawn as SVG from /api/overview.
"use strict";

(() => {
  const { el, svg, clear, json } = Explorer;
  let windowName = "1h";
  let timer = null;

  function bars(id, counts, deny) {
    const box = clear(document.getElementById(id));
    if (!counts.length) {
      box.append(el("p", { class: "empty" }, "none in this window"));
      return;
    }
    const max = Math.max(...counts.map((c) => c.count));
    for (const c of counts) {
      const bar = el("div", { class: "bar" + (deny ? " deny" : "") });
      // Width through the CSSOM, not a style attribute (the CSP allows no inline styles).
      bar.style.width = Math.max(1, (100 * c.count) / max) + "%";
      box.append(el("div", { class: "row" },
        el("div", { class: "name", title: c.name }, c.name),
        el("div", {}, bar),
        el("div", { class: "n" }, c.count.toLocaleString())));
    }
  }

  function series(o) {
    const box = clear(document.getElementById("series"));
    const W = 1000, H = 220, L = 48, B = 24, T = 8;
    const n = o.series.length;
    const max = Math.max(1, ...o.series.map((s) => s.allowed + s.denied));
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", height: H, role: "img", "aria-label": "decisions over time" });
    for (let i = 0; i <= 4; i++) {
      const y = T + ((H - B - T) * i) / 4;
      g.append(svg("line", { x1: L, x2: W, y1: y, y2: y, stroke: "#e6e9ef" }));
      g.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, Math.round(max * (1 - i / 4)).toLocaleString()));
    }
    const bw = (W - L) / Math.max(1, n);
    o.series.forEach((s, i) => {
      const x = L + i * bw + bw * 0.1, w = Math.max(1, bw * 0.8);
      const hd = ((H - B - T) * s.denied) / max, ha = ((H - B - T) * s.allowed) / max;
      const base = H - B;
      const title = `${new Date(s.start_ms).toLocaleTimeString([], { hour12: false })}: ${s.allowed} allowed, ${s.denied} denied`;
      g.append(svg("rect", { x, y: base - ha, width: w, height: ha, fill: "#2f9e63" }, svg("title", {}, title)));
      g.append(svg("rect", { x, y: base - ha - hd, width: w, height: hd, fill: "#c9364a" }, svg("title", {}, title)));
      const every = Math.max(1, Math.ceil(n / 8));
      if (i % every === 0) {
        g.append(svg("text", { x: x + w / 2, y: H - 6, "text-anchor": "middle" },
          new Date(s.start_ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false })));
      }
    });
    box.append(g);
    box.append(el("p", { class: "hint" }, `one bar per ${o.slot_secs / 60} minute(s); green allowed, red denied`));
  }

  async function load() {
    let o;
    try {
      o = await json("/api/overview?window=" + windowName);
    } catch (e) {
      document.getElementById("series").textContent = "cannot load: " + e.message;
      return;
    }
    document.getElementById("k-total").textContent = o.total.toLocaleString();
    document.getElementById("k-allowed").textContent = o.allowed.toLocaleString();
    document.getElementById("k-denied").textContent = o.denied.toLocaleString();
    document.getElementById("k-p50").textContent = o.latency_ms.p50.toFixed(2) + " ms";
    document.getElementById("k-p99").textContent = o.latency_ms.p99.toFixed(2) + " ms";
    series(o);
    bars("reasons", o.by_reason, false);
    bars("tokens", o.token_failures, true);
    bars("routes", o.top_denied_routes, true);
    bars("subjects", o.top_denied_subjects, true);
  }

  function pick(name) {
    windowName = name;
    for (const b of document.querySelectorAll("#windows button")) {
      b.classList.toggle("here", b.getAttribute("data-window") === name);
    }
    load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const b of document.querySelectorAll("#windows button")) {
      b.addEventListener("click", () => pick(b.getAttribute("data-window")));
    }
    pick("1h");
    timer = setInterval(load, 5000);
  });
})();
