// Contrail dashboard: small enhancements of server-rendered pages. Every
// page works without this file, but for the live view.
"use strict";
(function () {

  // Auto-refresh: a main element with data-refresh="N" reloads its
  // content every N seconds (not while hidden or turned off), keeping
  // focus and scroll.
  const main = document.getElementById("main");
  const secs = Number(main?.dataset.refresh || 0);
  if (secs > 0) {
    let on = true, busy = false;
    const toggle = () => document.querySelector("[data-refresh-toggle]");
    const wire = () => {
      const b = toggle();
      if (!b) return;
      b.hidden = false;
      b.setAttribute("aria-pressed", String(on));
      b.textContent = on ? "Live updates on" : "Live updates off";
      b.onclick = () => { on = !on; wire(); };
    };
    wire();
    setInterval(async () => {
      if (!on || busy || document.hidden) return;
      // Do not replace a form the user is typing in.
      if (main.contains(document.activeElement) && /INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName)) return;
      busy = true;
      try {
        const res = await fetch(location.href, { headers: { "X-Contrail-Partial": "1" }, credentials: "same-origin" });
        if (res.status === 401) { location.reload(); return; }
        if (res.ok) { main.innerHTML = await res.text(); wire(); main.dispatchEvent(new Event("contrail:refreshed")); }
      } catch (e) { /* offline for a moment: try again next tick */ }
      finally { busy = false; }
    }, secs * 1000);
  }

  // Selects that filter a page submit on change.
  document.addEventListener("change", (e) => {
    if (e.target.matches("select[data-autosubmit]")) e.target.form.submit();
  });

  // Campaign editor: a problem's line link moves the caret there.
  const spec = document.getElementById("spec");
  if (spec) {
    const goto = (line) => {
      const lines = spec.value.split("\n");
      let at = 0;
      for (let i = 0; i < line - 1 && i < lines.length; i++) at += lines[i].length + 1;
      spec.focus();
      spec.setSelectionRange(at, at + (lines[line - 1] || "").length);
      const lh = parseFloat(getComputedStyle(spec).lineHeight) || 18;
      spec.scrollTop = Math.max(0, (line - 3) * lh);
    };
    document.querySelectorAll("[data-line]").forEach((a) => a.addEventListener("click", (e) => { e.preventDefault(); goto(Number(a.dataset.line)); }));
    const first = document.querySelector("[data-line]");
    if (first) goto(Number(first.dataset.line));
  }

  // Live view: server-sent events from /live/stream, newest on top; pause
  // holds new rows back, the filter hides rows that do not match.
  const table = document.querySelector("[data-live-stream]");
  if (table) {
    const body = table.tBodies[0], status = document.querySelector("[data-live-status]");
    const empty = document.querySelector("[data-live-empty]");
    const typeSel = document.querySelector("[data-live-type]"), filter = document.querySelector("[data-live-filter]");
    const pauseBtn = document.querySelector("[data-live-pause]");
    let paused = false, held = [], source = null, count = 0;
    const MAX = 500;
    const text = (s) => document.createTextNode(s || "");
    const matches = (tr) => {
      const f = (filter.value || "").toLowerCase();
      return !f || tr.textContent.toLowerCase().includes(f);
    };
    const row = (e) => {
      const tr = document.createElement("tr");
      tr.className = "new";
      for (const v of [e.time, e.type, e.name, e.page, e.visitor, e.lead]) {
        const td = document.createElement("td");
        td.appendChild(text(v));
        td.title = v || "";
        tr.appendChild(td);
      }
      tr.hidden = !matches(tr);
      return tr;
    };
    const show = (e) => {
      body.insertBefore(row(e), body.firstChild);
      while (body.rows.length > MAX) body.deleteRow(body.rows.length - 1);
      empty.hidden = true;
    };
    const say = (s) => { status.textContent = s; };
    const connect = () => {
      if (source) source.close();
      body.replaceChildren();
      empty.hidden = false;
      count = 0;
      const url = table.dataset.liveStream + (typeSel.value ? "?type=" + encodeURIComponent(typeSel.value) : "");
      source = new EventSource(url);
      source.onopen = () => say(paused ? "Paused" : "Live: showing events as they arrive (the last five minutes first)");
      source.onerror = () => say("Disconnected; reconnecting…");
      source.onmessage = (m) => {
        const e = JSON.parse(m.data);
        count++;
        if (paused) { held.push(e); pauseBtn.textContent = "Resume (" + held.length + " new)"; return; }
        show(e);
      };
    };
    pauseBtn.addEventListener("click", () => {
      paused = !paused;
      pauseBtn.setAttribute("aria-pressed", String(paused));
      if (!paused) { held.forEach(show); held = []; pauseBtn.textContent = "Pause"; say("Live"); }
      else { pauseBtn.textContent = "Resume"; say("Paused: new events are held back"); }
    });
    filter.addEventListener("input", () => { for (const tr of body.rows) tr.hidden = !matches(tr); });
    typeSel.addEventListener("change", connect);
    connect();
  }
})();
