// authzd decision explorer: shared helpers. Every value from a record,
// a token or the policy reaches the page as text (textContent), never as
// markup: a subject named `<script>` is shown, not run.
"use strict";

const Explorer = (() => {
  /** Builds an element; string and number children become text nodes. */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  /** An SVG element (same rules: text stays text). */
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  async function json(url, options) {
    const r = await fetch(url, Object.assign({ credentials: "same-origin" }, options || {}));
    if (r.status === 401) {
      window.location.assign("/login");
      throw new Error("signed out");
    }
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.message || ("HTTP " + r.status));
    return body;
  }

  function badge(allowed, text) {
    return el("span", { class: "badge " + (allowed ? "allow" : "deny") }, text);
  }

  function time(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso || "";
    return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  /** Marks the current page in the header and shows who is signed in. */
  async function header() {
    for (const a of document.querySelectorAll("header.top nav a")) {
      if (a.getAttribute("href") === window.location.pathname) a.classList.add("here");
    }
    try {
      const me = await json("/api/whoami");
      const who = document.getElementById("who");
      if (who) who.textContent = me.signs_in ? me.subject : "local (no sign-in)";
    } catch (_) { /* the page itself reports errors */ }
  }

  document.addEventListener("DOMContentLoaded", header);
  return { el, svg, clear, json, badge, time };
})();
