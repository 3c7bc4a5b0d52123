// Live: recent decisions, then new ones as they are made (server-sent events).
"use strict";

(() => {
  const { el, clear, json, badge, time } = Explorer;
  const MAX_ROWS = 500;
  let source = null;
  let shown = 0;
  let held = 0;
  let capacity = 0;
  const byId = new Map();

  function query() {
    const f = document.getElementById("filters");
    const p = new URLSearchParams();
    for (const name of ["allowed", "reason", "subject", "role", "route", "issuer"]) {
      const v = f.elements[name].value.trim();
      if (v) p.set(name, v);
    }
    for (const name of ["since", "until"]) {
      const v = f.elements[name].value;
      if (v) p.set(name, String(new Date(v).getTime()));
    }
    return p;
  }

  function row(r, fresh) {
    byId.set(r.decision_id, r);
    const tr = el("tr", { class: "rec" + (fresh ? " fresh" : ""), "data-id": r.decision_id, onclick: () => open(r.decision_id) },
      el("td", { class: "mono" }, time(r.time)),
      el("td", {}, badge(r.allowed, r.allowed ? "allow" : "deny")),
      el("td", {}, String(r.status)),
      el("td", { class: "reason" }, r.reason),
      el("td", { class: "mono subject" }, r.subject || "—"),
      el("td", { class: "mono" }, r.action),
      el("td", { class: "mono resource" }, r.resource),
      el("td", { class: "mono" }, r.route || "—"),
      el("td", {}, r.source),
      el("td", { class: "mono" }, (r.latency_us / 1000).toFixed(2) + " ms"));
    return tr;
  }

  function setStatus() {
    document.getElementById("count").textContent = shown + " shown";
    document.getElementById("held").textContent =
      held.toLocaleString() + " recent decisions kept in memory (at most " + capacity.toLocaleString() + ").";
  }

  function add(r) {
    held = Math.min(capacity, held + 1);
    const body = document.getElementById("rows");
    body.insertBefore(row(r, true), body.firstChild);
    shown++;
    while (body.children.length > MAX_ROWS) {
      const last = body.lastChild;
      byId.delete(last.getAttribute("data-id"));
      body.removeChild(last);
      shown--;
    }
    setStatus();
  }

  function field(name, value) {
    let text;
    if (value === null || value === undefined) text = "—";
    else if (typeof value === "object") text = JSON.stringify(value);
    else text = String(value);
    return [el("dt", {}, name), el("dd", {}, text)];
  }

  function open(id) {
    const r = byId.get(id);
    if (!r) return;
    const d = document.getElementById("detail");
    d.classList.add("open");
    const kv = clear(document.getElementById("detail-fields"));
    for (const [k, v] of Object.entries(r)) kv.append(...field(k, v));
    document.getElementById("detail-json").textContent = JSON.stringify(r, null, 2);
    const link = document.getElementById("detail-explain");
    link.setAttribute("href", "/explain?" + new URLSearchParams({ method: r.action, path: r.resource }).toString());
    d.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  async function load() {
    if (source) source.close();
    const dot = document.getElementById("live");
    dot.classList.remove("on");
    const q = query();
    const body = clear(document.getElementById("rows"));
    byId.clear();
    shown = 0;
    let data;
    try {
      data = await json("/api/decisions?" + q.toString());
    } catch (e) {
      document.getElementById("count").textContent = "cannot load decisions: " + e.message;
      return;
    }
    for (const r of data.records) { body.append(row(r, false)); shown++; }
    held = data.held;
    capacity = data.capacity;
    setStatus();
    q.set("after", String(data.next));
    source = new EventSource("/api/stream?" + q.toString());
    source.addEventListener("open", () => dot.classList.add("on"));
    source.addEventListener("error", () => dot.classList.remove("on"));
    source.addEventListener("decisions", (ev) => {
      let records;
      try { records = JSON.parse(ev.data); } catch (_) { return; /* a malformed batch is skipped */ }
      for (const r of records) add(r);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const f = document.getElementById("filters");
    f.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    document.getElementById("reset").addEventListener("click", () => { f.reset(); load(); });
    document.getElementById("detail-close").addEventListener("click", () =>
      document.getElementById("detail").classList.remove("open"));
    load();
  });
})();
