/*! Community visitor tracker beacon: no dependencies, never throws into the host page.
 * <script src="https://tracker.example/beacon.js" data-endpoint="https://api.example" data-community="quebec-city" async></script>
 * Logged-in users: window.visitorTrackerToken = "<JWT>" (or a function returning one) before it loads, and
 * window.visitorTracker.identify(token | null) on a login or a logout without a reload.
 * README: "Presence", "Beacon script", "Embedding on another origin". */
(function (window, document, navigator) {
  "use strict";
  try {
    var script = document.currentScript || document.querySelector("script[data-community]");
    if (!script || !window.JSON || !window.fetch || window.visitorTracker) return;
    var attr = function (name) { return script.getAttribute("data-" + name); };
    var endpoint = (attr("endpoint") || "").replace(/\/+$/, "");
    var community = attr("community");
    if (!community) return;
    var base = endpoint + "/v1/communities/" + encodeURIComponent(community) + "/";
    var SECOND = 1000, MAX_WAIT = 300 * SECOND, OUTBOX_SIZE = 20, OUTBOX_AGE = 86400 * SECOND, KIN = 10 * SECOND;
    var every = SECOND * (parseInt(attr("heartbeat-seconds"), 10) || 30);
    var liveWindow = SECOND * (parseInt(attr("window-seconds"), 10) || 300);
    var now = function () { return new Date().getTime(); };
    var origin = window.location.origin;

    // Global Privacy Control / Do Not Track: nothing that outlives the tab (README, "Presence").
    var signal = navigator.globalPrivacyControl === true || navigator.doNotTrack === "1" || window.doNotTrack === "1";
    var keep = !signal || attr("privacy-signals") === "ignore";
    var storage = function (kind) {
      try { var s = window[kind]; s.getItem("vt"); return s; } catch (e) { return null; }
    };
    var get = function (s, key) { try { return s ? s.getItem(key) : null; } catch (e) { return null; } };
    var put = function (s, key, value) {
      try { if (s && value == null) s.removeItem(key); else if (s) s.setItem(key, value); } catch (e) { /* full or blocked */ }
    };
    var shared = storage("localStorage"), session = storage("sessionStorage");
    var local = keep ? shared : null;
    if (!keep) { put(shared, "vt_visitor_id", null); put(shared, "vt_outbox", null); }

    var random = function () {
      var bytes = new Uint8Array(16), out = "";
      (window.crypto || window.msCrypto).getRandomValues(bytes);
      for (var i = 0; i < bytes.length; i++) out += ("0" + bytes[i].toString(16)).slice(-2);
      return out;
    };
    var kept = function (s, key, prefix) { // an id only if it is stored: one made per page would be a new person per page
      var value = get(s, key);
      if (!value) { put(s, key, prefix + random()); value = get(s, key); }
      return value || undefined;
    };
    // The person: one random id per browser (every tab of this origin), else the server's daily
    // cookieless hash. The connection: one per tab (same-tab navigations keep it).
    var visitorId = kept(local, "vt_visitor_id", "v-");
    // A tab id made now is a new tab: its first page view says so (new_tab), which spares a
    // community kept in parts a round trip; the API keeps every answer exact without it.
    var newTab = !get(session, "vt_connection_id");
    var connectionId = kept(session, "vt_connection_id", "c-") || "c-" + random();
    var pageId = random();

    var identified = false, identity = null; // set by identify(); else the host's token
    var token = function () {
      try {
        if (identified) return identity || undefined;
        var t = window.visitorTrackerToken;
        return (typeof t === "function" ? t() : t) || undefined;
      } catch (e) { return undefined; }
    };
    var whose = function (t) { // whom a page view was for, without keeping the token: "a", or a hash of its sub
      if (!t) return "a";
      try { t = String(JSON.parse(window.atob(t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub); } catch (e) { /* the token */ }
      for (var h = 2166136261, i = 0; i < t.length; i++) h = Math.imul(h ^ t.charCodeAt(i), 16777619) >>> 0;
      return "u" + h.toString(36);
    };

    var warned = {};
    var warn = function (key, text) {
      if (warned[key]) return;
      warned[key] = true;
      try { window.console.warn("visitor tracker: " + text); } catch (e) { /* no console */ }
    };

    // Every beacon is a CORS "simple" request (text/plain JSON, the token in the body): no preflight.
    var blind = false; // the API does not grant this origin: answers cannot be read
    var post = function (url, data, opaque) {
      return window.fetch(url, {
        method: "POST", body: data, keepalive: true, credentials: "omit", mode: opaque ? "no-cors" : "cors",
        headers: { "Content-Type": "text/plain;charset=UTF-8" }
      });
    };
    // done(status, answer, retryAfterSeconds): status 0 = unreachable, -1 = delivered, answer unreadable.
    var send = function (url, fields, done) {
      var body = { visitor_id: visitorId, connection_id: connectionId, token: token() };
      for (var key in fields) if (Object.prototype.hasOwnProperty.call(fields, key)) body[key] = fields[key];
      var data = JSON.stringify(body);
      var finish = function (status, answer, retry) { try { done(status, answer, retry || 0); } catch (e) { /* ours */ } };
      var opaque = function () {
        post(url, data, true).then(function () { finish(-1); }, function () { finish(0); });
      };
      if (blind) return opaque();
      post(url, data).then(function (r) {
        var retry = parseInt(r.headers.get("Retry-After"), 10);
        r.json().then(function (a) { finish(r.status, a, retry); }, function () { finish(r.status, null, retry); });
      }, function () {
        // Refused by CORS and unreachable look the same (a TypeError); the same beacon again without
        // CORS tells them apart (harmless: a page view keeps its event id, a heartbeat is idempotent).
        post(url, data, true).then(function () {
          blind = true;
          warn("cors", "the API at " + (endpoint || origin) + " does not let this page's origin " + origin +
            " read its answers (CORS): add " + origin + " to the API's VT_CORS_ORIGINS. Visits are still sent," +
            " but cannot be confirmed or retried.");
          finish(-1);
        }, function () {
          warn("down", "cannot reach " + (endpoint || origin) + "; trying again later, less and less often (at most every 5 min)");
          finish(0);
        });
      })["catch"](function () { /* never reaches the page */ });
    };

    var stopped = false, timer = null, failures = 0, views = 0, hiddenAt = null, own = {}, cached = false, restored = 0;
    var stop = function (why) { stopped = true; window.clearTimeout(timer); warn("stop", why); };
    var schedule = function (delay) {
      window.clearTimeout(timer);
      timer = stopped || document.visibilityState === "hidden" ? null : window.setTimeout(heartbeat, delay || every);
    };
    var heartbeat = function () {
      if (stopped) return;
      var seen = views;
      send(base + "heartbeat", {}, function (status, answer, retry) {
        if (status === 0 || status >= 500) return schedule(Math.max(retry * SECOND, Math.min(MAX_WAIT, every * Math.pow(2, ++failures))));
        failures = 0;
        if (status === 404) return stop("community " + community + " is not registered");
        // Not live any more (hidden past the window, or the endpoint was away): a page view, unless one is on its way.
        if (answer && answer.active === false && views === seen && !pending()) pageView();
        schedule(status === 429 ? Math.max(retry * SECOND, every) : every);
      });
    };

    // The outbox: page views not yet answered 2xx (or a 4xx but 429), kept where the connection id
    // is (this browser; this tab under GPC/DNT), resent with their event id. Written before the
    // first try, so a page closed before its answer is resent by the next one.
    var box = keep ? shared : session, spare = "[]", inflight = {}, flushTimer = null;
    var entries = function () {
      var list;
      try { list = JSON.parse((box ? get(box, "vt_outbox") : spare) || "[]"); } catch (e) { list = []; }
      var t = now(), fresh = [];
      for (var i = 0; i < list.length; i++) if (list[i] && list[i].e && t - list[i].t < OUTBOX_AGE) fresh.push(list[i]);
      return fresh;
    };
    var edit = function (change) {
      var list = entries();
      list = change(list) || list;
      var text = list.length ? JSON.stringify(list.slice(-OUTBOX_SIZE)) : null;
      if (box) put(box, "vt_outbox", text); else spare = text || "[]";
    };
    var settle = function (test) { // takes entries out of the outbox
      edit(function (list) {
        return list.filter(function (x) { var done = test(x); if (done) delete own[x.e]; return !done; });
      });
    };
    var pending = function () { // a page view of this page not answered yet
      for (var e in inflight) if (own[e]) return true;
      var list = entries();
      for (var i = 0; i < list.length; i++) if (own[list[i].e]) return true;
      return false;
    };
    var deliver = function (entry) {
      if (inflight[entry.e]) return;
      var done = function (x) { return x.e === entry.e; };
      if (entry.w !== whose(token())) return settle(done); // logged in or out since: that moment is gone
      inflight[entry.e] = true;
      var fields = { event_id: entry.e, url: entry.u, referrer: entry.r, connection_id: entry.c, new_tab: entry.f };
      send(entry.b + "visits", fields, function (status, answer, retry) {
        delete inflight[entry.e];
        if (status === -1 || (status >= 200 && status < 500 && status !== 429)) {
          settle(done);
          if (status === 404 && entry.b === base) stop("community " + community + " is not registered");
          if (status > 0 && status < 300 || status === -1) {
            failures = 0;
            // Another page's (or tab's) page view, sent for it: that connection is not here.
            if (entry.b !== base || entry.c !== connectionId) leave(entry.b, entry.c);
          }
          return;
        }
        var t = now();
        edit(function (list) {
          for (var i = 0; i < list.length; i++) {
            if (list[i].e !== entry.e) continue;
            var n = (list[i].n || 0) + 1;
            list[i].n = n;
            list[i].a = t;
            // Retry-After when the API says (never sooner than a backoff from 1 s), else 30 s, 1, 2, 4, 5 min.
            list[i].h = retry ? t + Math.min(MAX_WAIT, Math.max(retry * SECOND, SECOND * Math.pow(2, n - 1))) : 0;
            list[i].x = t + Math.min(MAX_WAIT, 30 * SECOND * Math.pow(2, n - 1));
            if (retry) list[i].x = list[i].h;
          }
        });
        flush(false);
      });
    };
    var flush = function (loading) {
      var t = now(), next = Infinity, list = entries();
      for (var i = 0; i < list.length; i++) {
        var x = list[i], due = Math.max(x.h || 0, loading ? 0 : x.x || 0);
        if (x.c !== connectionId || x.b !== base) due = Math.max(due, (x.a || x.t) + KIN); // its own page may still be at it
        if (inflight[x.e]) continue;
        if (due <= t) deliver(x); else next = Math.min(next, due);
      }
      window.clearTimeout(flushTimer);
      flushTimer = next < Infinity ? window.setTimeout(function () { flush(false); }, next - t) : null;
    };
    var pageView = function () {
      if (stopped) return;
      views++;
      var t = now();
      var entry = { b: base, e: "e-" + random(), u: window.location.href, r: document.referrer || undefined,
        c: connectionId, w: whose(token()), t: t, a: t, n: 0, f: newTab || undefined };
      newTab = false;
      own[entry.e] = true;
      edit(function (list) { list.push(entry); });
      deliver(entry);
    };
    var leave = function (at, connection) {
      var data = JSON.stringify({ visitor_id: visitorId, connection_id: connection, token: token() });
      try {
        if (navigator.sendBeacon && navigator.sendBeacon(at + "leave", data)) return;
      } catch (e) { /* fall through */ }
      post(at + "leave", data, true)["catch"](function () { /* gone */ });
    };

    // The other tabs of this origin: identify() reaches them; a duplicated tab (same sessionStorage)
    // takes a connection id of its own.
    var channel = null;
    var heard = function (m) {
      if (!m || typeof m !== "object") return;
      if (m.type === "identify") apply(m.token);
      else if (m.type === "hello" && m.c === connectionId && m.p !== pageId) tell({ type: "taken", c: m.c, p: m.p });
      else if (m.type === "taken" && m.c === connectionId && m.p === pageId) {
        connectionId = "c-" + random();
        newTab = true;
        put(session, "vt_connection_id", connectionId);
        heartbeat(); // opens this connection (its person is live: the page view went as the other tab)
      }
    };
    var listen = function () {
      try {
        channel = new window.BroadcastChannel("visitor-tracker");
        channel.onmessage = function (event) { try { heard(event.data); } catch (e) { /* ours */ } };
      } catch (e) { channel = null; }
    };
    var tell = function (message) {
      try {
        if (channel) return channel.postMessage(message);
      } catch (e) { /* fall back */ }
      // Without BroadcastChannel: a storage event in the other tabs, which never carries the token.
      if (message.type !== "identify") return;
      put(shared, "vt_identify", JSON.stringify({ anonymous: !message.token, n: random() }));
      put(shared, "vt_identify", null);
    };
    window.addEventListener("storage", function (event) {
      try {
        if (event.key !== "vt_identify" || !event.newValue || channel) return;
        identified = false; // the host's own token (window.visitorTrackerToken) of that tab
        apply(JSON.parse(event.newValue).anonymous ? null : token());
      } catch (e) { /* ours */ }
    });
    var apply = function (t) {
      identified = true;
      identity = t || null;
      var w = whose(token());
      settle(function (x) { return x.w !== w; }); // page views of the person this tab was
      heartbeat(); // the tab's connection moves to that person now; active:false sends a page view
    };

    document.addEventListener("visibilitychange", function () {
      try {
        if (document.visibilityState === "hidden") { hiddenAt = hiddenAt || now(); return schedule(); }
        if (cached) return; // back from the back/forward cache: pageshow sends the page view
        var away = hiddenAt === null ? 0 : now() - hiddenAt;
        hiddenAt = null;
        if (now() - restored < SECOND) return; // pageshow came first and did it
        if (blind && away >= liveWindow) { pageView(); return schedule(); } // unreadable answers: no active:false to wait for
        heartbeat();
      } catch (e) { /* ours */ }
    });
    window.addEventListener("pagehide", function () {
      try {
        hiddenAt = hiddenAt || now();
        cached = true;
        window.clearTimeout(timer);
        leave(base, connectionId);
        put(session, "vt_left", String(now()));
        if (channel) channel.close(); // an open channel may keep the page out of the back/forward cache
        channel = null;
      } catch (e) { /* ours */ }
    });
    window.addEventListener("pageshow", function (event) {
      try {
        if (!event.persisted) return;
        listen();
        cached = false;
        hiddenAt = null;
        restored = now();
        pageView(); // the one page view of a return from the back/forward cache
        schedule();
      } catch (e) { /* ours */ }
    });

    window.visitorTracker = {
      identify: function (t) {
        try {
          if (t != null && typeof t !== "string") return;
          apply(t);
          tell({ type: "identify", token: t || null });
        } catch (e) { /* ours */ }
      }
    };

    var start = function () {
      var left = parseInt(get(session, "vt_left"), 10);
      put(session, "vt_left", null);
      listen();
      tell({ type: "hello", c: connectionId, p: pageId });
      flush(true);
      pageView();
      // The next page of a visit: an early heartbeat keeps the connection open should the previous
      // page's leave reach the API after this page view.
      schedule(now() - left < 15 * SECOND ? Math.min(every, 5 * SECOND) : every);
    };
    if (document.prerendering) document.addEventListener("prerenderingchange", start, { once: true });
    else start();
  } catch (e) { /* never disturb the host page */ }
})(window, document, navigator);
