/*! Community visitor tracker beacon: no dependencies, never throws into the host page.
 * <script src="https://tracker.example/beacon.js" data-endpoint="https://api.example" data-community="quebec-city" async></script>
 * Optional: window.visitorTrackerToken = "<JWT>" (or a function returning one) for logged-in users. */
(function (window, document) {
  "use strict";
  try {
    var script = document.currentScript || document.querySelector("script[data-community]");
    if (!script || !window.JSON) return;
    var endpoint = (script.getAttribute("data-endpoint") || "").replace(/\/+$/, "");
    var community = script.getAttribute("data-community");
    var every = 1000 * (parseInt(script.getAttribute("data-heartbeat-seconds"), 10) || 30);
    if (!community) return;
    var base = endpoint + "/v1/communities/" + encodeURIComponent(community) + "/";

    var random = function () {
      var bytes = new Uint8Array(12), out = "";
      (window.crypto || window.msCrypto).getRandomValues(bytes);
      for (var i = 0; i < bytes.length; i++) out += ("0" + bytes[i].toString(16)).slice(-2);
      return out;
    };
    var visitorId = function () {
      try {
        var id = window.sessionStorage.getItem("vt_visitor_id");
        if (!id) window.sessionStorage.setItem("vt_visitor_id", (id = "tab-" + random()));
        return id;
      } catch (e) {
        return undefined; // storage blocked: the server derives a daily cookieless id
      }
    };
    var token = function () {
      try {
        var t = window.visitorTrackerToken;
        return typeof t === "function" ? t() : t || undefined;
      } catch (e) {
        return undefined;
      }
    };

    // sendBeacon cannot set headers, so the token travels in the (text/plain JSON) body.
    var send = function (kind, extra, onAnswer) {
      try {
        var body = { event_id: "evt-" + random(), visitor_id: visitorId(), token: token() };
        for (var key in extra) body[key] = extra[key];
        var data = JSON.stringify(body);
        if (!onAnswer && navigator.sendBeacon && navigator.sendBeacon(base + kind, data)) return;
        if (window.fetch) {
          window.fetch(base + kind, {
            method: "POST", body: data, keepalive: true, credentials: "omit",
            headers: { "Content-Type": "text/plain;charset=UTF-8" }
          }).then(function (r) { return r.ok && onAnswer ? r.json().then(onAnswer) : null; })["catch"](function () {});
        }
      } catch (e) { /* never disturb the host page */ }
    };

    var pageView = function () {
      send("visits", { url: window.location.href, referrer: document.referrer || undefined });
    };
    var timer = null;
    var heartbeat = function () {
      // A visitor gone stale (hidden for more than the window) comes back as a new page view.
      send("heartbeat", {}, function (answer) { if (answer && answer.active === false) pageView(); });
    };
    var schedule = function () {
      if (timer) window.clearInterval(timer);
      timer = document.visibilityState === "hidden" ? null : window.setInterval(heartbeat, every);
    };

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") heartbeat();
      schedule();
    });
    window.addEventListener("pagehide", function () { send("leave", {}); });
    window.addEventListener("pageshow", function (event) { if (event.persisted) pageView(); }); // back from bfcache
    pageView();
    schedule();
  } catch (e) { /* never disturb the host page */ }
})(window, document);
