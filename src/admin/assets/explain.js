// Explain: one request through the pipeline, step by step.
"use strict";

(() => {
  const { el, clear, json } = Explorer;

  function lines(title, list, cls, hit) {
    if (!list || !list.length) return null;
    return el("div", {},
      el("p", { class: "hint" }, title),
      el("div", {}, list.map((l) => el("div", { class: "line " + (l === hit ? "hit" : cls) }, l))));
  }

  function step(s) {
    const li = el("li", { class: s.outcome, "data-step": s.step },
      el("span", { class: "name" }, s.step),
      el("span", { class: "badge " + ({ ok: "allow", failed: "deny", decided: "warn" }[s.outcome] || "skip") }, s.outcome),
      el("div", { class: "summary" }, s.summary));
    if (s.checks) {
      li.append(el("ul", {}, s.checks.map((c) =>
        el("li", {}, el("span", { class: "badge " + ({ ok: "allow", failed: "deny" }[c.outcome] || "skip") }, c.outcome), " ", c.check))));
    }
    if (s.from_token_or_lookup) {
      li.append(el("ul", {},
        el("li", {}, "from the token or lookup: ", s.from_token_or_lookup.length ? s.from_token_or_lookup.join(", ") : "none"),
        el("li", {}, "through g lines: ", s.through_grouping.length ? s.through_grouping.join(", ") : "none"),
        s.attributes.length ? el("li", {}, "attributes: ",
          s.attributes.map((a) => a.name + " = " + (a.value === null ? "(not shown)" : a.value)).join(", ")) : null));
    }
    if (s.step === "policy") {
      li.append(lines("Lines for this caller's subject and roles:", s.considered, "", s.matched));
      if (s.matched) li.append(el("p", {}, "Decided by ", el("span", { class: "line hit", id: "deciding" }, s.matched)));
    }
    return li;
  }

  function render(r) {
    const out = clear(document.getElementById("result"));
    const d = r.decision;
    out.append(el("div", { class: "verdict " + (d.allowed ? "allow" : "deny"), id: "verdict" },
      (d.allowed ? "Allowed" : "Denied") + " · " + d.status + " · " + d.reason));
    out.append(el("section", { class: "panel" }, el("h2", {}, "Steps"),
      el("ol", { class: "steps", id: "steps" }, r.steps.map(step))));
    if (!d.allowed && r.would_allow.length) {
      out.append(el("section", { class: "panel", id: "would-allow" },
        el("h2", {}, "Would allow the same resource and action to someone else"),
        r.would_allow.map((l) => el("div", { class: "line other" }, l)),
        r.would_allow_truncated ? el("p", { class: "hint" }, "(only the first 500 subjects were tried)") : null));
    }
    if (r.claims) {
      out.append(el("section", { class: "panel" },
        el("h2", {}, r.claims_verified ? "Claims (verified)" : "Claims (NOT verified: the token failed)"),
        el("pre", { id: "claims" }, JSON.stringify(r.claims, null, 2))));
    }
    out.append(el("p", { class: "hint" }, "policy revision " + d.policy_revision));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const params = new URLSearchParams(window.location.search);
    if (params.get("method")) document.getElementById("method").value = params.get("method");
    if (params.get("path")) document.getElementById("path").value = params.get("path");
    document.getElementById("ask").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = ev.target;
      const body = { method: f.elements.method.value, path: f.elements.path.value, token: f.elements.token.value };
      // The token has been read: it does not stay on the screen.
      f.elements.token.value = "";
      f.elements.token.placeholder = body.token ? "(token read and cleared; paste it again to ask again)" : "eyJhbGciOi…";
      try {
        render(await json("/api/explain", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        }));
      } catch (e) {
        clear(document.getElementById("result")).append(el("div", { class: "error" }, e.message));
      }
    });
  });
})();
