"""The live stats page (`web/stats.html`) in Chromium, served from the host pages' origin (not the
API's, as a deployed page is): what it shows equals the API's answers for the same community (the
name, people / present now / connections, divisions and pairs on one scale, peaks in short local
times, bots and AI agents, alerts, the live context when the API has it), its chart's line is the
live count over a labelled time axis, it follows the socket, a refused token or share link is said
and stops every request, and it reads on a phone and with a keyboard, in AA contrast.

The community is played through the local run first (`played`): twenty minutes of visitors, the
server's clock moved minute by minute with the minute's cleanup, then the people of the tests, one
heard more than a minute ago, one in two tabs, a bot, two AI agents and a spike alert. Each check
was seen failing against the page this one replaced."""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response, WebSocketRoute
from playwright.sync_api import Error as PlaywrightError

from community_tracker.settings import Settings
from tests.e2e.conftest import BROWSER_UA, HostPages, LocalSystem
from tests.e2e.test_browser import move_clock, token_of
from tests.e2e.test_local_run import bearer

ADMIN = bearer("ops", roles=["admin"])
READER = bearer("reader")
NAME = "Trois-Rivières Makers"
DIVISION = "mauricie"
LONG_DIVISION = "abitibitemiscamingue"  # a long name beside a short one with the same count
STORY = [1, 2, 2, 3, 4, 4, 5, 6, 6, 5, 7, 8, 9, 9, 8, 6, 5, 4, 4, 3]  # people per minute, before the test's own
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GPTBOT = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)"
CLAUDE_USER = (
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Claude-User/1.0; +Claude-User@anthropic.com)"
)
MINUTE_MS = 60_000


@dataclass
class Played:
    community_id: str
    people: int  # live now
    present: int
    connections: int


def api(system: LocalSystem, community_id: str, suffix: str = "", headers: dict[str, str] | None = None) -> Any:
    answer = system.request("GET", f"/v1/communities/{community_id}{suffix}", headers=headers or READER)
    assert answer.status == 200, answer.body
    return answer.json()


def beacon(system: LocalSystem, community_id: str, kind: str, body: dict[str, Any], **headers: str) -> int:
    answer = system.request("POST", f"/v1/communities/{community_id}/{kind}", body, headers)
    assert answer.status in (200, 202), answer.body
    return answer.status


def presence(connection: str, user: str | None, division: str) -> dict[str, Any]:
    """A tab's beacon body: a signed-in user's, or an anonymous browser's of its own."""
    if user is None:
        return {"connection_id": connection, "visitor_id": f"browser-{connection}"}
    return {"connection_id": connection, "token": token_of(user, division)}


def page_view(
    system: LocalSystem, community_id: str, connection: str, user: str | None = None, division: str = ""
) -> None:
    body = {"url": f"https://platform.example/c/{community_id}/", **presence(connection, user, division)}
    beacon(system, community_id, "visits", body)


def leave(system: LocalSystem, community_id: str, connection: str) -> None:
    beacon(system, community_id, "leave", presence(connection, None, ""))


def later(system: LocalSystem, seconds: float) -> None:
    """The server's clock moves on, and the minute's cleanup runs (it samples the per-minute series)."""
    move_clock(system, seconds)
    assert system.request("POST", "/_local/cleanup").status == 200


def server_now_ms(system: LocalSystem, community_id: str) -> int:
    return parse_ms(api(system, community_id, "/summary?minutes=1")["timestamp"])


def parse_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def a_visit_ends_within_this_minute(system: LocalSystem, community_id: str) -> None:
    """Someone comes and goes early in a minute: its highest count is above the live one until it ends."""
    second = server_now_ms(system, community_id) % MINUTE_MS / 1000
    if second > 30:
        later(system, 61 - second)
    connection = f"conn-brief-{uuid.uuid4().hex[:8]}"
    page_view(system, community_id, connection)
    leave(system, community_id, connection)
    move_clock(system, Settings().leave_grace_seconds + 1)


@pytest.fixture(scope="module")
def played(tracker: LocalSystem) -> Played:
    community_id = f"e2e-page-{uuid.uuid4().hex[:8]}"
    registered = tracker.request(
        "PUT",
        f"/v1/communities/{community_id}",
        # time_zone: taken by the API once registrations carry a zone, ignored before (the page says UTC)
        {"slug": community_id, "name": NAME, "division_id": DIVISION, "time_zone": "America/Toronto"},
        ADMIN,
    )
    assert registered.status == 200, registered.body
    rule = tracker.request(
        "PUT", f"/v1/communities/{community_id}/alert-rule", {"min_visitors": 5, "spike_factor": 2.0}, ADMIN
    )
    assert rule.status == 200, rule.body

    # Twenty minutes of anonymous visitors, one minute at a time
    here: set[str] = set()
    for count in STORY:
        wanted = {f"story-conn-{i}" for i in range(count)}
        for connection in sorted(here - wanted):
            leave(tracker, community_id, connection)
        for connection in sorted(wanted):
            page_view(tracker, community_id, connection)
        here = wanted
        later(tracker, 60)
    stays = "story-conn-0"  # the first visitor of the story stays on, anonymous
    for connection in sorted(here - {stays}):
        leave(tracker, community_id, connection)

    # Bob comes and is not heard again: live, no longer present
    page_view(tracker, community_id, "conn-bob-1", user="bob", division="laval")
    for _ in range(2):
        later(tracker, 35)
        beacon(tracker, community_id, "heartbeat", presence(stays, None, ""))
    page_view(tracker, community_id, "conn-alice-1", user="alice", division="montreal")
    page_view(tracker, community_id, "conn-alice-2", user="alice", division="montreal")  # a second tab
    page_view(tracker, community_id, "conn-carol-1", user="carol", division=LONG_DIVISION)
    page_view(tracker, community_id, "conn-erin-1", user="erin", division=LONG_DIVISION)
    page_view(tracker, community_id, "conn-dave-1", user="dave", division="laval")
    page_view(tracker, community_id, "conn-anon-1")
    for user_agent in (GOOGLEBOT, GPTBOT, CLAUDE_USER):
        headers = {"User-Agent": user_agent}
        answer = tracker.request(
            "POST", f"/v1/communities/{community_id}/visits", {"url": "https://platform.example/"}, headers
        )
        assert answer.status == 202, answer.body
    assert tracker.request("POST", "/_local/alerts").status == 200

    stats = api(tracker, community_id, "/stats")
    assert (stats["total_visitors"], stats["present_now"], stats["connections"]) == (7, 6, 8), stats
    return Played(community_id, stats["total_visitors"], stats["present_now"], stats["connections"])


def stats_url(host_pages: HostPages, tracker: LocalSystem, community_id: str, **params: str) -> str:
    query = {"community": community_id, "api": tracker.base, "ws": f"ws://localhost:{tracker.ws_port}", **params}
    return f"{host_pages.origin}/stats.html?{urlencode(query)}"


@dataclass
class Watched:
    page: Page
    errors: list[str]  # console errors and uncaught exceptions
    requests: list[str]  # the API requests the page made (URLs)
    summaries: list[dict[str, Any]]  # the summary answers it read


def watch(page: Page) -> Watched:
    watched = Watched(page, [], [], [])

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    def requested(request: Request) -> None:
        if "/v1/communities/" in request.url or request.url.startswith("ws"):
            watched.requests.append(request.url)

    def answered(response: Response) -> None:
        if re.search(r"/summary\?", response.url) and response.ok:
            with contextlib.suppress(PlaywrightError):  # the page closed meanwhile
                watched.summaries.append(response.json())

    page.on("console", console)
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    page.on("request", requested)
    page.on("response", answered)
    return watched


def open_stats(context: BrowserContext, url: str, *, live: bool = True) -> Watched:
    page = context.new_page()
    watched = watch(page)
    page.goto(url)
    wanted = "live" if live else "polling"
    page.wait_for_function(f"document.getElementById('status').classList.contains('{wanted}')", timeout=15_000)
    page.wait_for_function(
        "document.querySelectorAll('#alerts li').length > 0"
        " && /^[0-9]/.test(document.getElementById('bots').textContent)"
    )
    return watched


def text(page: Page, selector: str) -> str:
    return (page.text_content(selector) or "").strip()


def bar_rows(page: Page, list_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.eval_on_selector_all(
        f"#{list_id} li[data-count]",
        """rows => rows.map(row => ({
            name: row.querySelector('.name').textContent,
            count: row.querySelector('.count').textContent,
            share: row.querySelector('.share').textContent,
            fill: row.querySelector('.fill').getBoundingClientRect().width,
            track: row.querySelector('.track').getBoundingClientRect().width,
        }))""",
    )
    return result


def rounded_percent(part: int, whole: int) -> int:
    return math.floor(part * 100 / whole + 0.5) if whole else 0


def short_time(iso: str, now_iso: str, zone: str) -> str:
    """What the page writes for a time: "14:05" today, "Tue 14:05" within the week, "3 Mar 14:05"."""
    at = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    now = datetime.fromisoformat(now_iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    days = (now.date() - at.date()).days
    if days == 0:
        return f"{at:%H:%M}"
    if 0 < days < 7:
        return f"{at:%a %H:%M}"
    return f"{at.day} {at:%b %H:%M}"


def zone_of(registration: dict[str, Any], summary: dict[str, Any]) -> str:
    zoned = [p["time_zone"] for p in summary["peak_details"] if p.get("time_zone")]
    return str(registration.get("time_zone") or (zoned[0] if zoned else "UTC"))


@dataclass
class Line:
    """The chart's line as the page draws it, read back through its labelled axes."""

    steps: list[tuple[float, float]]  # (time ms, value): each value holds until the next step's time
    end_ms: float
    tick_labels: list[tuple[str, str]]  # (ISO time of the tick, its label)

    def value_at(self, t_ms: float) -> float:
        current = math.nan
        for at, value in self.steps:
            if at <= t_ms:
                current = value
        return current


def chart_line(page: Page) -> Line:
    drawn: dict[str, Any] = page.evaluate(
        """() => {
            const chart = document.getElementById('chart');
            const num = (node, name) => parseFloat(node.getAttribute(name));
            return {
                d: chart.querySelector('.line').getAttribute('d'),
                y: [...chart.querySelectorAll('.y-tick')].map(t => [num(t, 'data-value'), num(t, 'y') - 4]),
                x: [...chart.querySelectorAll('.x-tick')].map(t => [t.dataset.time, num(t, 'x'), t.textContent]),
            };
        }"""
    )
    y_ticks: list[tuple[float, float]] = [(float(v), float(y)) for v, y in drawn["y"]]
    x_ticks: list[tuple[str, float, str]] = [(str(t), float(x), str(label)) for t, x, label in drawn["x"]]
    (v0, y0), (v1, y1) = y_ticks[0], y_ticks[-1]
    (t0, x0, _), (t1, x1, _) = x_ticks[0], x_ticks[-1]
    ms0, ms1 = parse_ms(t0), parse_ms(t1)

    def value(y: float) -> float:
        return v0 + (y - y0) * (v1 - v0) / (y1 - y0)

    def time_at(x: float) -> float:
        return ms0 + (x - x0) * (ms1 - ms0) / (x1 - x0)

    commands = re.findall(r"([MHV])\s*([-\d.]+)(?:\s+([-\d.]+))?", drawn["d"])
    steps: list[tuple[float, float]] = []
    x = y = 0.0
    for command, first, second in commands:
        if command == "M":
            x, y = float(first), float(second)
            steps.append((time_at(x), round(value(y), 3)))
        elif command == "H":
            x = float(first)
        else:
            y = float(first)
            steps.append((time_at(x), round(value(y), 3)))
    return Line(steps, time_at(x), [(t, label) for t, _, label in x_ticks])


CONTRAST = """() => {
  const parse = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c);
    if (!m) return null;
    const v = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
  };
  const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat(1);
  const background = (node) => {
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    return layers.reduceRight((below, layer) => over(layer, below), [255, 255, 255, 1]);
  };
  const luminance = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const seen = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const element = node.parentElement;
    if (!node.textContent.trim() || !element.getClientRects().length) continue;
    const style = getComputedStyle(element);
    if (style.visibility === "hidden" || element.closest("[hidden]")) continue;
    const bg = background(element);
    const fg = over(parse(element instanceof SVGElement ? style.fill : style.color), bg);
    const [light, dark] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    const ratio = (light + 0.05) / (dark + 0.05);
    seen.push({ text: node.textContent.trim().slice(0, 40), ratio: ratio, color: style.color, fill: style.fill });
  }
  return seen;
}"""


def low_contrast(page: Page, texts: int = 30) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = page.evaluate(CONTRAST)
    assert len(seen) >= texts  # the check saw the page's text
    return [item for item in seen if item["ratio"] < 4.5]


# ---------------------------------------------------------------------------------------------


def test_the_page_shows_what_the_api_answers(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext, played: Played, artifacts_dir: Path
) -> None:
    cid = played.community_id
    a_visit_ends_within_this_minute(tracker, cid)
    watched = open_stats(context, stats_url(host_pages, tracker, cid, token=token_of("reader")))
    page = watched.page
    registration = api(tracker, cid)
    summary, seen = api(tracker, cid, "/summary?minutes=60"), watched.summaries[0]
    automation = api(tracker, cid, "/automation")
    alerts = api(tracker, cid, "/alerts")["alerts"]
    stats = summary["stats"]
    assert stats == seen["stats"]  # nothing moved since the page read it
    zone = zone_of(registration, summary)

    # The community's name, not its id
    assert text(page, "#community-name") == registration["name"] == NAME
    assert page.title().startswith(NAME)
    assert DIVISION in text(page, "#community-meta")

    # People, present now, connections, and the split
    assert (text(page, "#people"), text(page, "#present"), text(page, "#connections")) == (
        str(stats["total_visitors"]),
        str(stats["present_now"]),
        str(stats["connections"]),
    )
    auth, anon = stats["authenticated_visitors"], stats["anonymous_visitors"]
    total = stats["total_visitors"]
    assert text(page, "#auth") == f"authenticated {auth} ({rounded_percent(auth, total)}%)"
    assert text(page, "#anon") == f"anonymous {anon} ({rounded_percent(anon, total)}%)"

    # Divisions and pairs: the API's counts, every bar on one scale (the share of everyone live)
    divisions = bar_rows(page, "divisions")
    assert [(d["name"], d["count"]) for d in divisions] == [
        (d["division_id"] or "unknown", str(d["count"])) for d in summary["divisions"]
    ]
    pairs = bar_rows(page, "pairs")
    assert [(p["name"], p["count"]) for p in pairs] == [
        (f"{p['from_division']} → {p['to_division']}", str(p["count"])) for p in summary["cross_division"]["breakdown"]
    ]
    for row in divisions + pairs:
        assert row["fill"] == pytest.approx(row["track"] * int(row["count"]) / total, abs=1.0), row
        assert row["share"] == f"({rounded_percent(int(row['count']), total)}%)"
    by_count = {d["count"]: d["fill"] for d in divisions if d["count"] == "2"}
    assert len([d for d in divisions if d["count"] == "2"]) == 3  # laval, the long name and unknown
    assert max(by_count.values()) - min(d["fill"] for d in divisions if d["count"] == "2") < 0.5
    assert text(page, "#cross") == str(summary["cross_division"]["cross_division_visits"])
    assert text(page, "#cross-pct").startswith(
        f"{rounded_percent(summary['cross_division']['cross_division_visits'], total)}% "
    )

    # Peaks: counts, and when each was reached in short local times of the community's zone
    rows = page.eval_on_selector_all(
        "#peaks tr",
        "rows => rows.map(r => [r.dataset.period, r.querySelector('.count').textContent,"
        " (r.querySelector('time') || {}).dateTime || null, (r.querySelector('time') || {}).textContent || null])",
    )
    assert rows == [
        [
            p["period"],
            str(p["count"]),
            p["reached_at"],
            short_time(p["reached_at"], summary["timestamp"], zone) if p["reached_at"] else None,
        ]
        for p in summary["peak_details"]
    ]
    assert [r[1] for r in rows] == ["9", "9", "9"]
    if zone == "UTC":
        assert text(page, "#zone-note") == "Times in UTC: the community has no time zone registered."
    else:
        assert text(page, "#zone-note") == f"Times in {zone}."

    # Humans, bots and AI agents
    assert text(page, "#humans") == str(total)
    assert text(page, "#bots") == str(automation["bots"]["clients"]) == "1"
    assert text(page, "#agents") == str(automation["ai_agents"]["clients"]) == "2"  # GPTBot and Claude-User
    names = text(page, "#automation-names")
    for entry in automation["bots"]["names"] + automation["ai_agents"]["names"]:
        assert entry["name"] in names
    assert {n["name"] for n in automation["bots"]["names"]} == {"Googlebot"}
    assert {n["name"] for n in automation["ai_agents"]["names"]} == {"GPTBot", "Claude-User"}

    # Recent alerts
    shown = page.eval_on_selector_all(
        "#alerts li[data-alert]",
        "items => items.map(i => [i.dataset.alert, i.querySelector('.kind').textContent,"
        " i.querySelector('time').dateTime, i.querySelector('time').textContent,"
        " i.querySelector('.people').textContent])",
    )
    assert [s[0] for s in shown] == [a["alert_id"] for a in alerts[:5]]
    first = alerts[0]
    assert first["kind"] == "spike"
    assert shown[0][1:4] == ["Spike", first["started_at"], short_time(first["started_at"], summary["timestamp"], zone)]
    assert shown[0][4].startswith(f"{first['live_visitors']} people")

    # The live context: shown as the API answers it, or not at all
    if "context" in summary:
        assert page.is_visible("#context")
    else:
        assert not page.is_visible("#context")

    # The chart: its line ends at the live count shown, never at the minute's high above it
    line = chart_line(page)
    assert seen["timeline"][-1]["visitors"] > total  # this minute's highest is above the live count
    assert line.steps[-1][1] == total
    assert page.get_attribute("#chart", "data-last-value") == str(total)
    # before the page opened, each closed minute's highest, at its time on the labelled axis
    opened_ms = parse_ms(seen["timestamp"])
    closed = [p for p in seen["timeline"] if parse_ms(p["minute"]) + MINUTE_MS <= opened_ms - opened_ms % MINUTE_MS]
    assert len(closed) >= 20
    for point in closed:
        middle = parse_ms(point["minute"]) + MINUTE_MS / 2
        if middle > line.steps[0][0]:
            assert line.value_at(middle) == point["visitors"], point
    assert max(v for _, v in line.steps) == max(STORY)
    assert len(line.tick_labels) >= 5
    for at, label in line.tick_labels:
        assert label == f"{datetime.fromisoformat(at.replace('Z', '+00:00')).astimezone(ZoneInfo(zone)):%H:%M}"
    assert f"time ({zone})" in (page.text_content("#chart") or "")

    assert watched.errors == []
    page.screenshot(path=str(artifacts_dir / "stats-page-desktop.png"), full_page=True)
    page.close()


def test_the_live_context_is_drawn_when_the_summary_has_it(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext, played: Played
) -> None:
    """The context routes are another part of the issue: the page draws their shape when the summary
    carries it (here added to the API's own answer), each dimension a panel on the page's one scale."""
    cid = played.community_id
    people = played.people
    live_context = {
        "pages": {"top": [{"value": "/events", "people": 4}, {"value": "/", "people": 2}], "other": people - 6},
        "referrers": {"top": [{"value": "news.example", "people": 3}, {"value": None, "people": 4}], "other": 0},
        "devices": {"top": [{"value": "mobile", "people": 5}, {"value": "desktop", "people": 2}], "other": 0},
    }

    def with_context(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        body["context"] = live_context
        route.fulfill(response=answer, json=body)

    page = context.new_page()
    watched = watch(page)
    page.route(re.compile(r"/summary\?"), with_context)
    page.goto(stats_url(host_pages, tracker, cid, token=token_of("reader")))
    page.wait_for_selector("#context-pages li[data-count]")

    assert page.is_visible("#context")
    assert not page.is_visible("#context-countries")  # a dimension the API does not have
    for dimension, labels in {
        "pages": [("/events", "4"), ("/", "2"), ("other", "1")],
        "referrers": [("news.example", "3"), ("direct", "4")],
        "devices": [("mobile", "5"), ("desktop", "2")],
    }.items():
        rows = bar_rows(page, f"context-{dimension} .bars")
        assert [(r["name"], r["count"]) for r in rows] == labels
        for row in rows:
            assert row["fill"] == pytest.approx(row["track"] * int(row["count"]) / people, abs=1.0)
    assert watched.errors == []
    page.close()


def test_answers_without_a_zone_are_shown_in_utc_and_say_so(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext, played: Played
) -> None:
    """An API whose registrations and buckets carry no time zone (before #17): UTC, said."""

    def without_zones(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_zones(v) for k, v in value.items() if k != "time_zone"}
        if isinstance(value, list):
            return [without_zones(v) for v in value]
        return value

    def zoneless(route: Any) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, json=without_zones(answer.json()))

    page = context.new_page()
    page.route(re.compile(rf"/v1/communities/{played.community_id}($|/summary\?)"), zoneless)
    page.goto(stats_url(host_pages, tracker, played.community_id, token=token_of("reader")))
    page.wait_for_selector("#peaks time")
    summary = api(tracker, played.community_id, "/summary?minutes=60")

    assert text(page, "#zone-note") == "Times in UTC: the community has no time zone registered."
    today = next(p for p in summary["peak_details"] if p["period"] == "day")
    assert text(page, "#peaks tr[data-period=day] time") == short_time(today["reached_at"], summary["timestamp"], "UTC")
    assert "time (UTC)" in (page.text_content("#chart") or "")
    page.close()


def test_the_page_follows_the_socket(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext, played: Played
) -> None:
    cid = f"e2e-live-{uuid.uuid4().hex[:8]}"
    assert tracker.request("PUT", f"/v1/communities/{cid}", {"slug": cid, "name": "Live one"}, ADMIN).status == 200
    page_view(tracker, cid, "conn-one-1")
    watched = open_stats(context, stats_url(host_pages, tracker, cid, token=token_of("reader")))
    page = watched.page
    assert text(page, "#people") == "1"

    # Someone arrives in two tabs, from Montreal: the push brings all three numbers and the divisions
    page_view(tracker, cid, "conn-two-1", user="montrealer", division="montreal")
    page_view(tracker, cid, "conn-two-2", user="montrealer", division="montreal")
    page.wait_for_function(
        "document.getElementById('people').textContent === '2'"
        " && document.getElementById('connections').textContent === '3'"
        " && document.getElementById('divisions').textContent.includes('montreal')",
        timeout=15_000,
    )
    stats = api(tracker, cid, "/stats")
    assert text(page, "#present") == str(stats["present_now"]) == "2"
    assert text(page, "#auth") == "authenticated 1 (50%)"
    assert chart_line(page).steps[-1][1] == 2
    assert watched.errors == []
    page.close()


def test_a_refused_token_is_said_and_every_request_stops(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext, played: Played
) -> None:
    page = context.new_page()
    page.clock.install()
    watched = watch(page)
    page.goto(stats_url(host_pages, tracker, played.community_id, token="not.a.token"))
    page.wait_for_selector("#notice:not([hidden])", timeout=10_000)
    asked = len(watched.requests)
    page.clock.run_for(120_000)  # two minutes of timers: a polling page would ask 24 times
    page.wait_for_timeout(500)

    assert text(page, "#notice-title") == "Access refused"
    notice = text(page, "#notice-text")
    assert "refused this page's token" in notice
    assert "401 invalid_token" in notice
    assert "stopped asking" in notice
    assert text(page, "#status-text") == "access refused"
    assert "every 5 s" not in (page.text_content("body") or "")
    assert not page.is_visible("#dashboard")  # no dashes left standing
    assert len(watched.requests) == asked, watched.requests[asked:]
    assert not any(url.startswith("ws") for url in watched.requests)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "retry"  # the one control left, reachable
    assert low_contrast(page, texts=4) == []
    page.close()


def test_an_outage_is_said_and_the_page_recovers_by_itself(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext, played: Played
) -> None:
    refused = {"left": 2}

    def summary(route: Any) -> None:
        if refused["left"]:
            refused["left"] -= 1
            route.fulfill(
                status=503,
                headers={"Access-Control-Allow-Origin": host_pages.origin, "Retry-After": "1"},
                json={"error": {"code": "live_state_unavailable", "message": "try again"}},
            )
        else:
            route.fallback()

    page = context.new_page()
    page.route(re.compile(r"/summary\?"), summary)
    page.goto(stats_url(host_pages, tracker, played.community_id, token=token_of("reader")))
    page.wait_for_selector("#notice.transient:not([hidden])", timeout=10_000)
    assert "did not answer (503)" in text(page, "#notice-text")
    assert text(page, "#status-text") == "updating every 5 s"

    # The next poll is answered: the numbers, the socket, and the notice gone
    page.wait_for_function("document.getElementById('status').classList.contains('live')", timeout=20_000)
    assert text(page, "#people") == str(api(tracker, played.community_id, "/stats")["total_visitors"])
    assert not page.is_visible("#notice")
    page.close()


def test_a_page_without_a_token_says_it_needs_one(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext, played: Played
) -> None:
    page = context.new_page()
    page.goto(stats_url(host_pages, tracker, played.community_id))
    page.wait_for_selector("#notice:not([hidden])", timeout=10_000)

    assert "needs a token or a share link" in text(page, "#notice-text")
    page.close()


def test_a_share_link_shows_the_page_until_it_is_revoked(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext, played: Played
) -> None:
    cid = played.community_id
    minted = tracker.request("POST", f"/v1/communities/{cid}/share-links", {"label": "lobby screen"}, ADMIN)
    assert minted.status == 201, minted.body
    link = minted.json()
    url = stats_url(host_pages, tracker, cid, share=link["token"])

    watched = open_stats(context, url, live=False)  # a share link reads the summary; the socket takes tokens
    page = watched.page
    assert text(page, "#community-name") == NAME
    assert text(page, "#people") == str(played.people)
    assert text(page, "#status-text") == "updating every 5 s"
    assert all("share=" in u for u in watched.requests)
    assert all(not u.startswith("ws") for u in watched.requests)

    revoked = tracker.request("DELETE", f"/v1/communities/{cid}/share-links/{link['link']['link_id']}", headers=ADMIN)
    assert revoked.status in (200, 204), revoked.body
    page.wait_for_selector("#notice:not([hidden])", timeout=15_000)
    asked = len(watched.requests)
    page.wait_for_timeout(6_000)  # longer than a poll

    assert "revoked" in text(page, "#notice-text")
    assert len(watched.requests) == asked
    assert not page.is_visible("#dashboard")
    page.close()


def test_on_a_phone_nothing_scrolls_sideways(
    tracker: LocalSystem, host_pages: HostPages, browser: Browser, played: Played, artifacts_dir: Path
) -> None:
    phone = browser.new_context(
        user_agent=BROWSER_UA,
        viewport={"width": 375, "height": 812},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    watched = open_stats(phone, stats_url(host_pages, tracker, played.community_id, token=token_of("reader")))
    page = watched.page

    overflow = page.evaluate(
        """() => ({
            scroll: document.documentElement.scrollWidth,
            width: document.documentElement.clientWidth,
            beyond: [...document.querySelectorAll('body *')]
                .filter(e => e.getClientRects().length
                             && e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
                .map(e => e.id || e.className || e.tagName).slice(0, 10),
        })"""
    )
    assert overflow["width"] == 375
    assert overflow["scroll"] <= overflow["width"], overflow
    assert overflow["beyond"] == [], overflow
    # A figure and its share, a time, stay on one line: "(80 / %)" does not break
    broken = page.evaluate(
        """sel => [...document.querySelectorAll(sel)].map(e => {
            const range = document.createRange();
            range.selectNodeContents(e);
            return [e.textContent, new Set([...range.getClientRects()].map(r => Math.round(r.top))).size];
        }).filter(([, lines]) => lines > 1)""",
        "#auth, #anon, .bars .value, #peaks time, #alerts time",
    )
    assert broken == []
    # The chart is drawn at the phone's width, its labels unstretched (one SVG unit a pixel)
    box = page.eval_on_selector("#chart", "c => [c.viewBox.baseVal.width, c.getBoundingClientRect().width]")
    assert box[0] == pytest.approx(box[1], abs=1)
    assert low_contrast(page) == []
    assert watched.errors == []
    page.screenshot(path=str(artifacts_dir / "stats-page-phone.png"))  # the first screen
    phone.close()


def test_the_chart_label_is_not_stretched_on_a_wide_screen(
    tracker: LocalSystem, host_pages: HostPages, browser: Browser, played: Played
) -> None:
    wide = browser.new_context(user_agent=BROWSER_UA, viewport={"width": 1900, "height": 900})
    page = open_stats(wide, stats_url(host_pages, tracker, played.community_id, token=token_of("reader"))).page
    label = page.eval_on_selector(
        "#chart text.y-tick",
        "t => { const r = t.getBoundingClientRect(); return [r.width, r.height, t.textContent.length]; }",
    )
    chart = page.eval_on_selector("#chart", "c => [c.viewBox.baseVal.width, c.getBoundingClientRect().width]")

    assert chart[0] == pytest.approx(chart[1], abs=1)
    assert label[0] < 12 * label[2]  # a 12 px label: no wider than its letters
    wide.close()


def test_contrast_is_aa_and_the_keyboard_reaches_every_control(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext, played: Played
) -> None:
    watched = open_stats(context, stats_url(host_pages, tracker, played.community_id, token=token_of("reader")))
    page = watched.page
    assert low_contrast(page) == []

    controls = page.eval_on_selector_all(
        "button, a[href], input, select, textarea, [tabindex]",
        "all => all.filter(e => e.getClientRects().length).map(e => e.textContent.trim())",
    )
    assert controls == ["1 hour", "3 hours"]
    assert page.eval_on_selector_all("[tabindex]", "all => all.filter(e => e.tabIndex > 0).length") == 0
    reached = []
    for _ in range(len(controls)):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate(
                """() => { const a = document.activeElement, s = getComputedStyle(a);
                           return [a.textContent.trim(), s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
            )
        )
    assert [r[0] for r in reached] == controls  # in reading order
    for _, style, width in reached:
        assert style != "none"  # the focus is visible
        assert width >= 2

    page.keyboard.press("Enter")  # on "3 hours"
    page.wait_for_function("document.getElementById('chart-title').textContent === 'Live count, last 3 hours'")
    assert page.get_attribute("button[data-minutes='180']", "aria-pressed") == "true"
    assert any("minutes=180" in url for url in watched.requests)
    line = chart_line(page)
    assert line.end_ms - line.steps[0][0] <= 3 * 60 * MINUTE_MS + MINUTE_MS
    assert low_contrast(page) == []  # the pressed button too
    assert watched.errors == []
    page.close()


def test_the_page_subscribes_again_when_told_its_subscription_expired(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    cid = f"e2e-expiry-{uuid.uuid4().hex[:8]}"
    assert tracker.request("PUT", f"/v1/communities/{cid}", {"slug": cid, "name": "Expiring"}, ADMIN).status == 200
    sockets: list[WebSocketRoute] = []

    def through(socket: WebSocketRoute) -> None:  # the page's sockets, passed through to the local run
        socket.connect_to_server()
        sockets.append(socket)

    page = context.new_page()
    page.route_web_socket(re.compile(r"^ws://"), through)
    page.goto(stats_url(host_pages, tracker, cid, token=token_of("reader")))
    page.wait_for_function("document.getElementById('status').classList.contains('live')")

    # What the pusher posts to a socket whose subscription is gone (a ping nobody knew)
    sockets[0].send('{"type": "subscription_expired", "timestamp": "2031-03-05T12:00:00.000Z"}')

    for _ in range(50):  # Playwright runs the route handler while the page is waited on, not in time.sleep
        if len(sockets) == 2:
            break
        page.wait_for_timeout(100)
    assert len(sockets) == 2  # a new connection within 5 s, not the 15 s retry after a drop
    page.wait_for_function("document.getElementById('status').classList.contains('live')")
    page_view(tracker, cid, "conn-after-1")
    page.wait_for_function("document.getElementById('people').textContent === '1'", timeout=15_000)
    page.close()
