/*! contrail.js v1, Contrail's tracking snippet. Install:
 * <script defer src="https://COLLECTOR/contrail.js" data-write-key="KEY"></script>
 * Docs: docs/tracking-snippet.md */
(() => {
  "use strict";
  const w = window, d = document, nav = navigator, loc = location;
  const queued = w.contrail;
  if (queued && queued.__v) return; // loaded twice: the first copy runs

  // Nothing may throw into the host page.
  const tryOr = (fn, dflt) => { try { return fn(); } catch (e) { return dflt; } };
  const guard = (fn) => function () {
    try { return fn.apply(this, arguments); } catch (e) { console.warn("contrail.js:", e); }
  };

  // Settings come from our own script tag; the collector is its origin.
  const tag = d.currentScript || d.querySelector('script[src*="/contrail.js"]');
  const attr = (n) => (tag && tag.getAttribute("data-" + n)) || "";
  const writeKey = attr("write-key");
  const api = tryOr(() => (attr("api") || new URL(tag.src).origin).replace(/\/+$/, ""), "");
  const dnt = tag && tag.hasAttribute("data-respect-dnt") && (nav.doNotTrack === "1" || w.doNotTrack === "1");
  const on = !!(writeKey && api) && !dnt;
  if (!writeKey) console.warn("contrail.js: the script tag has no data-write-key");

  // A version 4 UUID, also where randomUUID is missing (plain http).
  const uuid = () => (crypto.randomUUID ? crypto.randomUUID() :
    "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
      (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16)));

  // The visitor: our first-party cookie, else the form endpoint's (when the
  // collector shares the site's host), else analytics.js's id (sites moving
  // from Segment keep their visitors), else a new one.
  const COOKIE = "contrail_aid", UID = "contrail_uid";
  const cookie = (name) => tryOr(() => {
    const v = decodeURIComponent((d.cookie.match("(?:^|; *)" + name + "=([^;]*)") || [])[1] || "");
    return v[0] === '"' ? JSON.parse(v) : v; // analytics.js quotes it
  }, "");
  const usable = (id) => /^[^\s;,]{1,200}$/.test(id) && id !== "null" && id !== "undefined";
  let anonId = [cookie(COOKIE), cookie("contrail_id"), cookie("ajs_anonymous_id")].find(usable) || uuid();
  let userId = tryOr(() => localStorage.getItem(UID)) || "";
  const keepId = () => tryOr(() => {
    d.cookie = COOKIE + "=" + encodeURIComponent(anonId) + "; Path=/; Max-Age=63072000; SameSite=Lax" +
      (loc.protocol === "https:" ? "; Secure" : "");
  });

  // sendBeacon outlives the page and, with a text/plain body, needs no CORS
  // preflight (hence the write key in the body); fetch with keepalive is the
  // fallback. A form fill uses fetch, which may send the whole page URL as
  // Referer: the form endpoint takes it as the page of the fill.
  const send = (path, body, form) => {
    const url = api + path, json = JSON.stringify(body);
    if (!form && nav.sendBeacon && nav.sendBeacon(url, new Blob([json], { type: "text/plain" }))) return;
    if (w.fetch) fetch(url, {
      method: "POST", body: json, keepalive: true, credentials: "omit", headers: { "Content-Type": "text/plain" },
      referrerPolicy: form ? "no-referrer-when-downgrade" : undefined,
    }).catch(() => {});
  };

  const here = () => loc.href.split("#")[0];
  let referrer = d.referrer, lastUrl = "";
  const pageInfo = () => ({ path: loc.pathname, referrer, search: loc.search, title: d.title, url: here() });
  const obj = (v) => (v && typeof v === "object" ? v : {});

  // message builds a Segment-spec event.
  const message = (type, fields) => {
    const now = new Date().toISOString();
    return Object.assign({
      type, messageId: uuid(), anonymousId: anonId, userId: userId || undefined, timestamp: now, sentAt: now, writeKey,
      context: { page: pageInfo(), userAgent: nav.userAgent, locale: nav.language, library: { name: "contrail.js", version: "1" } },
    }, fields);
  };

  const calls = {
    page(name, props) { // page([name], [properties])
      if (typeof name !== "string") { props = name; name = undefined; }
      const p = pageInfo();
      lastUrl = p.url;
      send("/v1/page", message("page", { name, properties: Object.assign(p, obj(props)) }));
    },
    track(event, props) {
      send("/v1/track", message("track", { event: String(event), properties: obj(props) }));
    },
    identify(id, traits) { // identify([userId], [traits]); later events carry the id
      if (id && typeof id === "object") { traits = id; id = ""; }
      if (id != null && id !== "") tryOr(() => localStorage.setItem(UID, (userId = String(id))));
      send("/v1/identify", message("identify", { traits: obj(traits) }));
    },
    reset() { // at logout: forget the user, start a new visitor
      userId = "";
      tryOr(() => localStorage.removeItem(UID));
      anonId = uuid();
      keepId();
    },
  };

  // Page views on load and on single-page-app navigations, never twice in a
  // row for one URL (the hash does not count).
  const autoPage = () => {
    if (here() === lastUrl) return;
    if (lastUrl) referrer = lastUrl;
    calls.page();
  };

  // Link clicks, middle and ctrl clicks too. Nothing waits: the beacon
  // outlives the navigation.
  const onClick = (e) => {
    const a = e.target.closest && e.target.closest("a[href]");
    if (!a || (e.type === "auxclick" && e.button !== 1)) return;
    const u = new URL(a.getAttribute("href"), d.baseURI);
    if (u.protocol === "javascript:") return;
    calls.track("Link Clicked", {
      href: u.href,
      text: (a.innerText || a.textContent || "").replace(/\s+/g, " ").trim().slice(0, 100),
      id: a.id,
      classes: a.getAttribute("class") || "",
      outbound: /^https?:$/.test(u.protocol) && u.hostname !== loc.hostname,
    });
  };

  // Form fills: <form data-contrail-form="ID">, or with data-forms="all" any
  // form with an id or a name. Passwords, files, card numbers and the like
  // are never sent. The form's own submission goes on untouched.
  const SKIP = /^(password|file|submit|button|reset|image)$/;
  const SECRET = /pass|card|cc-?(num|csc|exp)|cvc|cvv|ssn|social.?sec|iban|secret|token|csrf|^(writeKey|anonymousId|messageId|_?redirect|context)$/i;
  const sent = new WeakMap(); // form → last body, to skip a double click
  const onSubmit = (e) => {
    const f = e.target;
    const id = (f.getAttribute("data-contrail-form") ||
      (attr("forms") === "all" && (f.getAttribute("id") || f.getAttribute("name"))) || "").replace(/[^\w.-]/g, "-").slice(0, 128);
    if (new URL(f.getAttribute("action") || "", d.baseURI).href.startsWith(api + "/v1/form/")) {
      // The form posts to the collector itself: only tell it who the visitor is.
      if (!f.elements.anonymousId) f.append(Object.assign(d.createElement("input"), { type: "hidden", name: "anonymousId", value: anonId }));
      return;
    }
    if (!id) return;
    // The page goes in the context: the Referer may be cut to the origin.
    const body = { writeKey, anonymousId: anonId, userId: userId || undefined, context: { page: pageInfo() } };
    for (const el of f.elements) {
      const n = el.name, type = el.type;
      if (!n || el.disabled || typeof el.value !== "string" || SKIP.test(type) || SECRET.test(n) ||
        /^cc-|password/.test(el.getAttribute("autocomplete"))) continue;
      if (/^(checkbox|radio)$/.test(type) && !el.checked) continue;
      for (const v of type === "select-multiple" ? Array.from(el.selectedOptions, (o) => o.value) : [el.value])
        body[n] = n in body && n !== "userId" ? [].concat(body[n], v) : v;
    }
    const email = f.querySelector("input[type=email]:enabled");
    if (!body.email && email) body.email = email.value;
    if (!body.email && !body.userId) return; // the collector needs one of them
    const json = JSON.stringify(body);
    if (sent.get(f) === json) return;
    sent.set(f, json);
    send("/v1/form/" + id, body, true);
  };

  // window.contrail. Calls queued before the script loaded run first:
  // window.contrail = window.contrail || []; contrail.push(["track", "Signup"]).
  const run = guard((args) => on && calls[args[0]] && calls[args[0]](...Array.from(args).slice(1)));
  const contrail = (w.contrail = { __v: "1", push: run, anonymousId: () => anonId });
  for (const k in calls) contrail[k] = (...args) => run([k, ...args]);
  guard(() => {
    if (!on) return;
    keepId(); // each visit renews the two years
    if (Array.isArray(queued)) queued.forEach(run);
    if (attr("auto-page") !== "false") {
      guard(autoPage)();
      const later = () => setTimeout(guard(autoPage)); // once the router set the title
      for (const fn of ["pushState", "replaceState"]) {
        const orig = history[fn];
        history[fn] = function () {
          const r = orig.apply(this, arguments);
          later();
          return r;
        };
      }
      w.addEventListener("popstate", later);
    }
    for (const type of ["click", "auxclick"]) d.addEventListener(type, guard(onClick), true);
    d.addEventListener("submit", guard(onSubmit), true);
  })();
})();
