// Policy: the serving revision, its sources and the reload history.
"use strict";

(() => {
  const { el, clear, json } = Explorer;
  let allLines = [];

  function kv(id, pairs) {
    const dl = clear(document.getElementById(id));
    for (const [k, v] of pairs) {
      dl.append(el("dt", {}, k), el("dd", {}, v === null || v === undefined ? "—" : String(v)));
    }
  }

  function filter() {
    const q = document.getElementById("p-search").value.trim().toLowerCase();
    const shown = q ? allLines.filter((l) => l.toLowerCase().includes(q)) : allLines;
    document.getElementById("p-lines").textContent = shown.join("\n");
    document.getElementById("p-count").textContent = shown.length + " of " + allLines.length + " lines";
  }

  async function load() {
    let p;
    try {
      p = await json("/api/policy");
    } catch (e) {
      document.getElementById("p-alerts").textContent = "cannot load: " + e.message;
      return;
    }
    document.getElementById("p-revision").textContent = p.revision;
    document.getElementById("p-rules").textContent = p.rules.toLocaleString();
    document.getElementById("p-groupings").textContent = p.groupings.toLocaleString();
    document.getElementById("p-routes").textContent = p.routes.length;
    const alerts = clear(document.getElementById("p-alerts"));
    if (p.last_error) alerts.append(el("div", { class: "error", id: "p-last-error" }, "Last reload rejected (the revision above still serves): " + p.last_error));
    if (p.restart_required) alerts.append(el("div", { class: "error" }, p.restart_required));
    kv("p-source", [
      ["config", p.config], ["model", p.model_file], ["policy", p.policy_source],
      ["evaluator", p.evaluator], ["loaded at", p.loaded_at],
      ...(p.store ? [["store", p.store.kind + " " + p.store.url], ["serving from", p.store.serving_from],
        ["connected", p.store.connected], ["last sync", p.store.last_sync], ["store error", p.store.error]] : []),
    ]);
    const hist = clear(document.getElementById("p-history"));
    for (const h of p.history) {
      hist.append(el("tr", { class: "reload" },
        el("td", { class: "mono" }, h.at),
        el("td", {}, el("span", { class: "badge " + (h.result === "error" ? "deny" : "allow") }, h.result)),
        el("td", { class: "mono" }, h.revision), el("td", {}, String(h.rules)),
        el("td", { class: "mono" }, h.error || "")));
    }
    const sp = document.getElementById("p-shadow-panel");
    if (p.shadow) {
      kv("p-shadow", [["model", p.shadow.model], ["policy", p.shadow.policy], ["sample", p.shadow.sample],
        ["revision", p.shadow.revision], ["rules", p.shadow.rules], ["error", p.shadow.error]]);
    }
    sp.hidden = !p.shadow;
    const rr = clear(document.getElementById("p-route-rows"));
    for (const r of p.routes) {
      rr.append(el("tr", {}, el("td", { class: "mono" }, r.method), el("td", { class: "mono" }, r.path),
        el("td", {}, r.public ? el("span", { class: "badge warn" }, "public") : (r.scopes.join(" or ") || "—"))));
    }
    document.getElementById("p-model").textContent = p.model || "";
    if (p.policy === null || p.policy === undefined) {
      allLines = [p.policy_too_large ? "(the policy is too large to show here; " + p.rules + " rules)" : "(not kept)"];
    } else {
      allLines = p.policy.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
    }
    filter();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("p-search").addEventListener("input", filter);
    load();
    setInterval(load, 5000);
  });
})();
