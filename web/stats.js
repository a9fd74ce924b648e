/* The live stats page (README, "Stats page"): static, no dependencies, no build step.
   ?community=…&api=…&token=…&ws=… or ?community=…&api=…&share=… configure it. */
(function () {
  "use strict";

  const POLL_MS = 5000;        // the summary while there is no socket (share links, socket down)
  const SLOW_MS = 30000;       // peaks, the chart's past, bots and agents, alerts while the socket is live
  const SOCKET_RETRY_MS = 15000;
  const TOP_NAMES = 5;

  const params = new URLSearchParams(window.location.search);
  const communityId = params.get("community") || "quebec-city";
  const api = (params.get("api") || window.location.origin).replace(/\/+$/, "");
  const share = params.get("share");
  let token = params.get("token");
  const wsUrl = params.get("ws") || defaultSocketUrl(api);

  const $ = (id) => document.getElementById(id);
  const numbers = new Intl.NumberFormat("en-US");
  const fmt = (n) => numbers.format(n);

  const state = {
    zone: "UTC",
    zoneSource: "none",      // "community" (its registration), "buckets" (the peaks' answer) or "none"
    final: false,            // refused, or a community that does not exist: nothing more is asked
    shown: { counts: "", divisions: "" },
    offsetMs: null,          // server clock minus this browser's, from the answers' timestamps
    people: null,
    peakToday: 0,            // a push above it is a new peak: the summary has its time
    named: false,            // the registration was read
    running: false,          // the first summary was read: the socket or polling has started
    minutes: 60,
    seed: [],                // per-minute highs of closed minutes before this page's first sample
    samples: [],             // [{t, v}]: the live counts this page received, in order (a run of one count: its first and last)
    socket: null,
    timers: {},
  };

  function defaultSocketUrl(base) {
    const url = new URL(base);
    const secure = url.protocol === "https:";
    const port = parseInt(url.port || (secure ? "443" : "80"), 10) + 1;
    return (secure ? "wss://" : "ws://") + url.hostname + ":" + port;
  }

  // ---- small DOM helpers (text always through textContent) -------------------------------
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value);
    });
    (children || []).forEach((child) => node.append(child));
    return node;
  }
  const text = (id, value) => { $(id).textContent = value; };

  // ---- time, in the community's zone -----------------------------------------------------
  function validZone(zone) {
    try { new Intl.DateTimeFormat("en-US", { timeZone: zone }); return true; } catch (e) { return false; }
  }
  function useZone(zone, source) {
    if (!zone || !validZone(zone)) return;
    if (source === "buckets" && state.zoneSource === "community") return;
    const changed = zone !== state.zone;
    state.zone = zone;
    state.zoneSource = source;
    if (changed) renderChart(); // its time axis is labelled in the zone: never left in the old one
  }
  function parts(ms, options) {
    const out = {};
    new Intl.DateTimeFormat("en-US", Object.assign({ timeZone: state.zone, hourCycle: "h23" }, options))
      .formatToParts(new Date(ms)).forEach((p) => { out[p.type] = p.value; });
    return out;
  }
  function clock(ms, seconds) {
    const p = parts(ms, seconds ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
    return p.hour + ":" + p.minute + (seconds ? ":" + p.second : "");
  }
  function localDay(ms) {
    const p = parts(ms, { year: "numeric", month: "2-digit", day: "2-digit" });
    return Date.UTC(+p.year, +p.month - 1, +p.day);
  }
  // A short local time: "14:05" today, "Tue 14:05" within the week, "3 Mar 14:05" before.
  function shortTime(ms) {
    const days = Math.round((localDay(serverNow()) - localDay(ms)) / 86400000);
    if (days === 0) return clock(ms);
    if (days > 0 && days < 7) return parts(ms, { weekday: "short" }).weekday + " " + clock(ms);
    const p = parts(ms, { day: "numeric", month: "short" });
    return p.day + " " + p.month + " " + clock(ms);
  }
  function timeEl(iso) {
    return el("time", { datetime: iso, text: shortTime(Date.parse(iso)) });
  }
  function noteServerTime(iso) {
    // A server timestamp is taken before its answer arrives: the largest difference is the closest.
    const offset = Date.parse(iso) - Date.now();
    if (!Number.isNaN(offset) && (state.offsetMs === null || offset > state.offsetMs)) state.offsetMs = offset;
  }
  const serverNow = () => Date.now() + (state.offsetMs || 0);
  function showZone() {
    text("zone-note", state.zoneSource === "none"
      ? "Times in UTC: the community has no time zone registered."
      : "Times in " + state.zone + ".");
  }

  // ---- status and notices ----------------------------------------------------------------
  function setStatus(mode, label) {
    $("status").className = "status " + mode;
    text("status-text", label);
  }
  function stamp(iso) { text("updated", "updated " + clock(Date.parse(iso), true)); }
  function notice(kind, title, message, retry) {
    const box = $("notice");
    box.className = "notice " + kind;
    text("notice-title", title);
    text("notice-text", message);
    $("retry").hidden = !retry;
    box.hidden = false;
  }
  function clearTransientNotice() {
    if (!state.final && $("notice").classList.contains("transient")) $("notice").hidden = true;
  }

  const REFUSALS = {
    token_required: "The API needs a token or a share link to show these numbers.",
    invalid_token: "The API refused this page's token",
    forbidden: "This token may not read this community's numbers",
    invalid_share_link: "This share link is not valid: check that the whole link was copied.",
    share_link_expired: "This share link has expired: ask whoever shared it for a new one.",
    share_link_revoked: "This share link has been revoked: ask whoever shared it for a new one.",
    share_link_other_community: "This share link is for another community.",
  };

  class ApiError extends Error {
    constructor(status, error) {
      super((error && error.message) || "no answer");
      this.status = status;
      this.code = (error && error.code) || "";
    }
  }

  function stopEverything() {
    Object.values(state.timers).forEach((id) => window.clearInterval(id));
    state.timers = {};
    if (state.socket) { state.socket.onclose = null; state.socket.close(); state.socket = null; }
  }
  // Refused (401, 403) or gone (404): final; every timer and the socket stop, and the page says so.
  function fail(error) {
    if (!(error instanceof ApiError)) throw error; // a bug of this page: left for the console to show
    if (state.final) return;
    if (error.status === 401 || error.status === 403) {
      state.final = true;
      stopEverything();
      const reason = REFUSALS[error.code] || "The API refused this page's access";
      const detail = error.code === "invalid_token" || error.code === "forbidden" || !REFUSALS[error.code]
        ? reason + " (" + error.status + (error.code ? " " + error.code : "") + ": " + error.message + ")." : reason;
      setStatus("refused", "access refused");
      notice("refused", "Access refused", detail + " The page has stopped asking for numbers.", true);
      $("dashboard").hidden = true;
    } else if (error.status === 404 && error.code === "unknown_community") {
      state.final = true;
      stopEverything();
      setStatus("failed", "no such community");
      notice("refused", "No such community", "No community “" + communityId + "” is registered with this API.", false);
      $("dashboard").hidden = true;
    } else if (error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429) {
      state.final = true;
      stopEverything();
      setStatus("failed", "request refused");
      notice("refused", "Request refused", "The API answered " + error.status + " " + error.code + ": " + error.message + ".", true);
    } else {
      // An outage (no answer, 5xx, 429): keep the last numbers, say so, and keep asking.
      notice("transient", "The numbers may be out of date",
        "The API did not answer (" + (error.status || "no connection") + "); trying again every " + POLL_MS / 1000 + " s.", false);
      if (!state.socket || state.socket.readyState !== WebSocket.OPEN) poll();
    }
  }

  // ---- the API ----------------------------------------------------------------------------
  function getJson(path, query) {
    const q = new URLSearchParams(query || {});
    if (share) q.set("share", share);
    const url = api + "/v1/communities/" + encodeURIComponent(communityId) + path + (q.toString() ? "?" + q : "");
    const headers = token && !share ? { Authorization: "Bearer " + token } : {};
    // no-cache: revalidated (ETag) at every poll instead of served from the 5 s private cache
    return fetch(url, { headers: headers, cache: "no-cache", credentials: "omit" }).then(
      (r) => r.ok ? r.json() : r.json().catch(() => ({})).then((body) => { throw new ApiError(r.status, body.error); }),
      (e) => { throw new ApiError(0, { code: "unreachable", message: String(e && e.message) }); });
  }
  const guarded = (promise) => promise.then(clearTransientNotice, fail);

  // ---- what the page shows ----------------------------------------------------------------
  function fresh(kind, timestamp) {
    // WebSocket messages and summary answers can arrive out of order: never show older numbers.
    if (timestamp < state.shown[kind]) return false;
    state.shown[kind] = timestamp;
    noteServerTime(timestamp);
    return true;
  }
  const percent = (part, whole) => (whole ? Math.round(part * 100 / whole) : 0);

  function showName(registration) {
    const name = registration.name || communityId;
    text("community-name", name);
    document.title = name + " · live visitors";
    const meta = ["Live visitors"];
    if (registration.division_id) meta.push("division " + registration.division_id);
    text("community-meta", meta.join(" · "));
    useZone(registration.time_zone, "community");
    showZone();
  }

  function showCounts(counts, timestamp) {
    state.people = counts.total;
    text("people", fmt(counts.total));
    text("humans", fmt(counts.total));
    if (counts.present_now !== undefined) text("present", fmt(counts.present_now));
    if (counts.connections !== undefined) text("connections", fmt(counts.connections));
    text("auth", "authenticated " + fmt(counts.authenticated) + " (" + percent(counts.authenticated, counts.total) + "%)");
    text("anon", "anonymous " + fmt(counts.anonymous) + " (" + percent(counts.anonymous, counts.total) + "%)");
    $("auth-bar").style.width = (counts.total ? counts.authenticated * 100 / counts.total : 0) + "%";
    $("anon-bar").style.width = (counts.total ? counts.anonymous * 100 / counts.total : 0) + "%";
    sample(Date.parse(timestamp), counts.total);
    stamp(timestamp);
  }

  // One row of a breakdown: its bar is `count` out of everyone live now, the one scale of the page.
  function barRow(label, count, total, extraClass) {
    const width = total ? count * 100 / total : 0;
    return el("li", { className: extraClass || "", "data-count": String(count) }, [
      el("div", { className: "bar-label" }, [
        el("span", { className: "name", text: label }),
        el("span", { className: "value" }, [
          el("b", { className: "count", text: fmt(count) }), " ",
          el("span", { className: "muted share", text: "(" + percent(count, total) + "%)" }),
        ]),
      ]),
      el("div", { className: "track", "aria-hidden": "true" }, [
        el("div", { className: "fill", style: "width: " + width.toFixed(3) + "%" }),
      ]),
    ]);
  }
  function fillBars(list, rows, emptyText) {
    list.replaceChildren(...(rows.length ? rows : [el("li", { className: "empty", text: emptyText })]));
  }

  function showDivisions(divisions, cross) {
    const total = cross.total_visitors;
    fillBars($("divisions"), divisions.map((d) => barRow(d.division_id || "unknown", d.count, total)), "Nobody here yet.");
    text("cross", fmt(cross.cross_division_visits));
    text("cross-pct", percent(cross.cross_division_visits, total) + "% of people come from another division");
    fillBars($("pairs"), cross.breakdown.slice(0, TOP_NAMES).map((p) =>
      barRow(p.from_division + " → " + p.to_division, p.count, total)), "No one from another division.");
  }

  const PERIODS = { day: "Today", week: "This week", month: "This month" };
  function showPeaks(details, unique) {
    const zoned = details.find((p) => p.time_zone);
    if (zoned) useZone(zoned.time_zone, "buckets");
    showZone();
    const uniques = { day: unique.daily, week: unique.weekly, month: unique.monthly };
    const today = details.find((p) => p.period === "day");
    state.peakToday = today ? today.count : 0;
    $("peaks").replaceChildren(...details.map((p) => el("tr", { "data-period": p.period }, [
      el("th", { scope: "row", text: PERIODS[p.period] || p.period }),
      el("td", { className: "num count", text: fmt(p.count) }),
      el("td", { className: "at" }, [p.reached_at ? timeEl(p.reached_at) : el("span", { className: "muted", text: "nobody yet" })]),
      el("td", { className: "num unique", text: uniques[p.period] === undefined ? "" : "≈ " + fmt(uniques[p.period]) }),
    ])));
  }

  function showAutomation(answer) {
    text("bots", fmt(answer.bots.clients));
    text("agents", fmt(answer.ai_agents.clients));
    const named = answer.ai_agents.names.map((n) => ["AI agent", n]).concat(answer.bots.names.map((n) => ["bot", n]));
    $("automation-names").replaceChildren(...named.slice(0, TOP_NAMES * 2).map(([kind, n]) =>
      el("li", {}, [el("span", {}, [n.name + " ", el("span", { className: "kind", text: kind })]), el("b", { text: fmt(n.clients) })])));
  }

  const CONTEXT = { pages: "page", referrers: "referrer", devices: "device", countries: "country" };
  let regionNames = null;
  function contextLabel(dimension, value) {
    if (value === null || value === undefined || value === "") return dimension === "referrers" ? "direct" : "unknown";
    if (dimension === "countries" && /^[A-Z]{2}$/.test(value)) {
      try { regionNames = regionNames || new Intl.DisplayNames(["en"], { type: "region" }); return regionNames.of(value) + " (" + value + ")"; } catch (e) { return value; }
    }
    return value;
  }
  function showContext(context, total) {
    const any = context && Object.keys(CONTEXT).some((d) => context[d]);
    $("context").hidden = !any;
    if (!any) return;
    Object.keys(CONTEXT).forEach((dimension) => {
      const panel = $("context-" + dimension);
      const data = context[dimension];
      panel.hidden = !data;
      if (!data) return;
      const rows = data.top.map((item) => barRow(contextLabel(dimension, item.value), item.people, total));
      if (data.other) rows.push(barRow("other", data.other, total, "other"));
      fillBars(panel.querySelector(".bars"), rows, "Nobody here yet.");
    });
  }

  const KINDS = { spike: "Spike", drop: "Drop" };
  function showAlerts(page) {
    const rows = page.alerts.slice(0, TOP_NAMES).map((a) => el("li", { className: a.kind, "data-alert": a.alert_id }, [
      el("span", { className: "kind", text: KINDS[a.kind] || a.kind }),
      timeEl(a.started_at),
      el("span", { className: "people", text: fmt(a.live_visitors) + " people (threshold " + fmt(a.threshold) + ", baseline " + fmt(a.baseline) + ")" }),
      a.ended_at ? el("span", { className: "muted" }, ["ended ", timeEl(a.ended_at)]) : el("b", { text: "going on" }),
    ]));
    fillBars($("alerts"), rows, "No spikes or drops recorded.");
  }

  // ---- the chart: the live count this page received, over a time axis ---------------------
  function sample(t, v) {
    const last = state.samples[state.samples.length - 1];
    if (last && t < last.t) return;
    if (last && last.v === v && state.samples.length > 1 && state.samples[state.samples.length - 2].v === v) last.t = t;
    else state.samples.push({ t: t, v: v });
    const keep = t - 180 * 60000;
    while (state.samples.length > 2 && state.samples[1].t < keep) state.samples.shift();
    renderChart();
  }
  function seed(timeline, nowIso) {
    // Closed minutes only: the minute going on has the highest count of its seconds so far, which
    // can be above the live count now. Minutes this page sampled itself are not replaced.
    const until = Math.min(Date.parse(nowIso) - Date.parse(nowIso) % 60000, state.samples.length ? state.samples[0].t : Infinity);
    state.seed = timeline.map((p) => ({ t: Date.parse(p.minute), v: p.visitors })).filter((p) => p.t + 60000 <= until);
  }
  function niceStep(max) {
    const raw = Math.max(1, max) / 4;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw && Number.isInteger(s)) || Math.ceil(raw);
  }
  function svg(tag, attrs, content) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    if (content !== undefined) node.textContent = content;
    return node;
  }
  function renderChart() {
    const chart = $("chart");
    const width = Math.round($("chart-box").clientWidth);
    const height = Math.round(chart.getBoundingClientRect().height) || 200;
    if (!width || !state.samples.length) return;
    chart.setAttribute("viewBox", "0 0 " + width + " " + height); // one unit a pixel: text is never stretched
    const now = serverNow();
    const from = now - state.minutes * 60000;
    const points = state.seed.concat(state.samples).filter((p, i, all) => p.t >= from || (all[i + 1] && all[i + 1].t > from));
    const values = points.map((p) => p.v);
    const step = niceStep(Math.max(1, ...values));
    const top = Math.max(step, Math.ceil(Math.max(1, ...values) / step) * step);
    const m = { left: 40, right: 14, top: 12, bottom: 36 };
    const x = (t) => m.left + (Math.max(t, from) - from) * (width - m.left - m.right) / (now - from);
    const y = (v) => m.top + (1 - v / top) * (height - m.top - m.bottom);
    const nodes = [];
    const grid = svg("g", { class: "grid" });
    const yAxis = svg("g", { class: "axis y-axis" });
    for (let v = 0; v <= top; v += step) {
      grid.append(svg("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }));
      yAxis.append(svg("text", { class: "y-tick", "data-value": v, x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
    }
    nodes.push(grid, yAxis);
    const xAxis = svg("g", { class: "axis x-axis" });
    xAxis.append(svg("line", { x1: m.left, x2: width - m.right, y1: y(0), y2: y(0) }));
    const tickMinutes = state.minutes <= 60 ? 10 : 30;
    const labelEvery = width < 420 ? 2 : 1;
    let index = 0;
    for (let t = Math.ceil(from / (tickMinutes * 60000)) * tickMinutes * 60000; t <= now; t += tickMinutes * 60000, index++) {
      xAxis.append(svg("line", { x1: x(t), x2: x(t), y1: y(0), y2: y(0) + 4 }));
      if (index % labelEvery === 0) xAxis.append(svg("text", { class: "x-tick", "data-time": new Date(t).toISOString(), x: x(t), y: y(0) + 17, "text-anchor": "middle" }, clock(t)));
    }
    xAxis.append(svg("text", { class: "axis-title", x: width - m.right, y: height - 2, "text-anchor": "end" }, "time (" + state.zone + ")"));
    nodes.push(xAxis);
    // A step line: a count holds until the next one; the last holds until now.
    let d = "";
    points.forEach((p, i) => {
      d += (i ? " H" + x(p.t).toFixed(1) + " V" : "M" + x(p.t).toFixed(1) + " ") + y(p.v).toFixed(1);
    });
    const last = points[points.length - 1];
    d += " H" + x(now).toFixed(1);
    const area = d + " V" + y(0).toFixed(1) + " H" + x(points[0].t).toFixed(1) + " Z";
    nodes.push(svg("path", { class: "area", d: area }));
    nodes.push(svg("path", { class: "line", d: d, "data-last-value": last.v }));
    nodes.push(svg("circle", { class: "now-dot", cx: x(now), cy: y(last.v), r: 3.5 }));
    chart.replaceChildren(...nodes);
    chart.dataset.lastValue = last.v;
    const highest = points.reduce((best, p) => (p.v > best.v ? p : best), points[0]);
    text("chart-title", "Live count, last " + (state.minutes === 60 ? "hour" : state.minutes / 60 + " hours"));
    text("chart-desc", "Now " + fmt(last.v) + (last.v === 1 ? " person" : " people") + "; highest in this range " +
      fmt(highest.v) + " at " + clock(Math.max(highest.t, from)) + " (" + state.zone + ").");
  }

  // ---- loading, polling, the socket ---------------------------------------------------------
  function every(name, ms, fn) {
    if (state.final) return;
    if (state.timers[name]) window.clearInterval(state.timers[name]);
    state.timers[name] = window.setInterval(fn, ms);
  }
  function stop(name) {
    if (state.timers[name]) window.clearInterval(state.timers[name]);
    delete state.timers[name];
  }

  function loadRegistration() {
    return getJson("").then((registration) => { state.named = true; showName(registration); }, (error) => {
      // An API without the registration route (404 not_found) still has the numbers: title with the id.
      if (error.status === 404 && error.code !== "unknown_community") { state.named = true; showName({}); return; }
      throw error;
    });
  }
  function loadSummary() {
    return getJson("/summary", { minutes: String(state.minutes) }).then((s) => {
      if (state.final) return;
      const st = s.stats;
      noteServerTime(s.timestamp);
      seed(s.timeline, s.timestamp);
      if (fresh("counts", s.timestamp)) {
        showCounts({ total: st.total_visitors, authenticated: st.authenticated_visitors, anonymous: st.anonymous_visitors,
          present_now: st.present_now, connections: st.connections }, s.timestamp);
      } else renderChart();
      if (fresh("divisions", s.timestamp)) showDivisions(s.divisions, s.cross_division);
      showPeaks(s.peak_details, s.unique_visitors);
      showContext(s.context, st.total_visitors);
    });
  }
  const loadAutomation = () => getJson("/automation", { limit: String(TOP_NAMES) }).then((a) => { if (!state.final) showAutomation(a); });
  const loadAlerts = () => getJson("/alerts", { limit: String(TOP_NAMES) }).then((a) => { if (!state.final) showAlerts(a); });
  const refresh = () => guarded(Promise.all([state.named || loadRegistration(), loadSummary().then(run), loadAutomation()]));

  function poll() {
    if (state.final || state.timers.poll) return;
    setStatus("polling", "updating every " + POLL_MS / 1000 + " s");
    every("poll", POLL_MS, refresh);
  }

  function connect() {
    if (state.final) return;
    let socket;
    try {
      socket = new WebSocket(wsUrl + "/?community_id=" + encodeURIComponent(communityId) + (token ? "&token=" + encodeURIComponent(token) : ""));
    } catch (e) { poll(); return; }
    state.socket = socket;
    let expired = false;
    socket.onopen = () => {
      stop("poll");
      setStatus("live", "live");
      every("ping", 5 * 60000, () => socket.send(JSON.stringify({ action: "ping" })));
    };
    socket.onmessage = (event) => {
      const m = JSON.parse(event.data);
      if (m.type === "subscription_expired") { expired = true; socket.close(); return; } // subscribe again
      if (m.type === "visitor_count_changed" && fresh("counts", m.timestamp)) {
        showCounts(m, m.timestamp);
        if (m.total > state.peakToday) guarded(loadSummary()); // a new peak: its time comes with the summary
      }
      if (m.type === "visitor_divisions_updated" && fresh("divisions", m.timestamp)) showDivisions(m.divisions, m.cross_division);
      if (m.context && state.people !== null) showContext(m.context, state.people);
    };
    socket.onclose = () => {
      stop("ping");
      state.socket = null;
      if (state.final) return;
      if (expired) { guarded(loadSummary()); connect(); return; } // what it missed, then a new subscription
      poll();
      window.setTimeout(connect, SOCKET_RETRY_MS); // the live channel again; polling meanwhile
    };
  }

  function setRange(minutes) {
    state.minutes = minutes;
    document.querySelectorAll(".range button").forEach((b) => b.setAttribute("aria-pressed", String(+b.dataset.minutes === minutes)));
    renderChart();
    guarded(loadSummary());
  }

  // Once the first summary is in (at once, or after an outage): the rest, then the socket or polling.
  function run() {
    if (state.running || state.final) return;
    state.running = true;
    guarded(Promise.all([loadAutomation(), loadAlerts()]));
    every("slow", SLOW_MS, () => { refresh(); guarded(loadAlerts()); });
    every("clock", POLL_MS, renderChart);
    if (window.WebSocket && !share) connect(); else poll();
  }

  function start() {
    text("community-name", communityId);
    showZone();
    guarded(loadRegistration());
    guarded(loadSummary().then(run));
  }

  document.querySelectorAll(".range button").forEach((b) => b.addEventListener("click", () => setRange(+b.dataset.minutes)));
  $("retry").addEventListener("click", () => window.location.reload());
  window.addEventListener("resize", renderChart);

  // The local run hands out a development token on its own origin; a deployed page gets ?token= or ?share=.
  if (token || share || new URL(api).origin !== window.location.origin) { start(); return; }
  fetch("/_local/token").then((r) => (r.ok ? r.json() : {})).then((t) => { token = t.token || null; start(); }, start);
})();
