"""In a real headless Chromium (Debian's, driven by Playwright with `executable_path`), on a host
page served from another origin than the API (as a platform embeds the beacon): tabs are
connections of one person, the pages of a visit are one visit, the back/forward cache is one page
view, logins and logouts move the tab, a tab hidden past the window is counted again, an origin the
API does not grant gets one warning, an endpoint that is down is tried less and less often, and a
page view answered 503 (or not at all) is sent again with its event id and stored once. The stats
page has a module of its own (`test_stats_page.py`).

Counts are read from the stats API with a reader or an admin token. The server's clock moves
with `POST /_local/clock` (the window, the grace); the browser's with Playwright's clock (the
backoff); the leave grace is the real one, 15 s."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
)

from community_tracker.settings import Settings
from infra.redis_servers import free_port
from tests.e2e.conftest import BROWSER_UA, HostPages, LocalSystem
from tests.e2e.test_local_run import bearer, register

GRACE_SECONDS = Settings().leave_grace_seconds  # the real one: the tracker below keeps the default
WINDOW_SECONDS = Settings().active_window_seconds
# Lets a test hide and show a page: headless Chromium keeps every page visible.
VISIBILITY_CONTROL = """(() => {
  const real = Object.getOwnPropertyDescriptor(Document.prototype, "visibilityState").get;
  let forced = null;
  const define = (name, get) => Object.defineProperty(Document.prototype, name, { configurable: true, get });
  define("visibilityState", function () { return forced || real.call(this); });
  define("hidden", function () { return this.visibilityState === "hidden"; });
  window.__setVisibility = (state) => { forced = state; document.dispatchEvent(new Event("visibilitychange")); };
})();"""


def eventually(check: Callable[[], bool], timeout: float = 15.0, on: Page | None = None) -> bool:
    """Polls `check`; waiting `on` a page hands over that page's events and runs its route
    handlers meanwhile (Playwright does neither during time.sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if on is not None:
            on.wait_for_timeout(200)
        else:
            time.sleep(0.2)
    return check()


def stats(system: LocalSystem, community_id: str) -> dict[str, Any]:
    answer = system.request("GET", f"/v1/communities/{community_id}/stats", headers=bearer("reader"))
    assert answer.status == 200, answer.body
    result: dict[str, Any] = answer.json()
    return result


def live_total(system: LocalSystem, community_id: str) -> int:
    return int(stats(system, community_id)["total_visitors"])


def visitors(system: LocalSystem, community_id: str) -> list[dict[str, Any]]:
    answer = system.request("GET", f"/v1/communities/{community_id}/visitors", headers=bearer("ops", roles=["admin"]))
    result: list[dict[str, Any]] = answer.json()["visitors"]
    return result


def history(system: LocalSystem, community_id: str) -> list[dict[str, Any]]:
    """The community's stored page views of signed-in people (DynamoDB)."""
    answer = system.request(
        "GET", f"/v1/communities/{community_id}/visits?limit=100", headers=bearer("ops", roles=["admin"])
    )
    result: list[dict[str, Any]] = answer.json()["visits"]
    return result


def move_clock(system: LocalSystem, seconds: float) -> None:
    assert system.request("POST", "/_local/clock", {"advance_seconds": seconds}).status == 200


def token_of(user_id: str, division: str = "montreal") -> str:
    return bearer(user_id, division_id=division)["Authorization"].removeprefix("Bearer ")


def page_url(origin: str, system: LocalSystem | str, community_id: str, **params: str) -> str:
    api = system if isinstance(system, str) else system.base
    return f"{origin}/?{urlencode({'c': community_id, 'api': api, **params})}"


def open_page(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.goto(url)
    return page


def signed_in(page: Page, token: str) -> None:
    """The demo page's session (a token in localStorage) is there before any script of the page."""
    page.add_init_script(f"localStorage.setItem('demo_token', {json.dumps(token)})")


@dataclass
class Sent:
    kind: str  # visits, heartbeat, leave
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


def beacons_of(target: Page | BrowserContext) -> list[Sent]:
    """Every beacon the page (or the context) sends, as the browser sends it."""
    sent: list[Sent] = []

    def seen(request: Request) -> None:
        match = re.search(r"/v1/communities/[^/]+/(visits|heartbeat|leave)$", request.url)
        if match and request.method == "POST":
            sent.append(Sent(match.group(1), json.loads(request.post_data or "{}")))

    target.on("request", seen)
    return sent


class Poller:
    """Reads the live total every 100 ms in the background (while the browser navigates)."""

    def __init__(self, system: LocalSystem, community_id: str) -> None:
        self.totals: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(system, community_id), daemon=True)

    def _run(self, system: LocalSystem, community_id: str) -> None:
        while True:
            self.totals.append(live_total(system, community_id))
            if self._stop.wait(0.1):
                self.totals.append(live_total(system, community_id))
                return

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_tabs_are_connections_of_one_person_who_leaves_after_the_grace(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    community_id = register(tracker)
    url = page_url(host_pages.origin, tracker, community_id)

    first = open_page(context, url)
    assert eventually(lambda: live_total(tracker, community_id) == 1)
    others = [open_page(context, url) for _ in range(2)]
    assert eventually(lambda: stats(tracker, community_id)["connections"] == 3)
    assert stats(tracker, community_id)["total_visitors"] == 1
    assert stats(tracker, community_id)["present_now"] == 1

    with Poller(tracker, community_id) as during_grace:
        first.close(run_before_unload=True)
        others[0].close(run_before_unload=True)
        # Their connections stay for the grace, then go; the person stays with the third tab.
        assert eventually(lambda: stats(tracker, community_id)["connections"] == 1, timeout=GRACE_SECONDS + 3)
    assert set(during_grace.totals) == {1}

    closed_at = time.monotonic()
    others[1].close(run_before_unload=True)
    counts: list[tuple[float, int]] = []
    while time.monotonic() - closed_at < GRACE_SECONDS + 1.5:
        counts.append((time.monotonic() - closed_at, live_total(tracker, community_id)))
        if counts[-1][1] == 0:
            break
        time.sleep(0.25)
    gone_after = next(after for after, total in counts if total == 0)
    # Present during the grace (the next page of a visit would have cancelled the leave), gone right after.
    assert GRACE_SECONDS - 1 <= gone_after <= GRACE_SECONDS + 1, counts
    assert all(total == 1 for _, total in counts[:-1])


def test_the_pages_of_one_visit_are_one_person_and_count_up(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    community_id = register(tracker)
    sent = beacons_of(context)
    page = open_page(context, page_url(host_pages.origin, tracker, community_id))
    assert eventually(lambda: [v["pages_viewed"] for v in visitors(tracker, community_id)] == [1])
    joined_at = visitors(tracker, community_id)[0]["joined_at"]

    with Poller(tracker, community_id) as poll:
        for number, name in enumerate(["Events", "Members", "About", "Home"], start=2):
            page.click(f"nav a:text('{name}')")  # pagehide → leave, then this page's page view
            page.wait_for_load_state()
            assert eventually(lambda n=number: [v["pages_viewed"] for v in visitors(tracker, community_id)] == [n])  # type: ignore[misc]
        # A leave that reached the API after the next page view would end the visit after the grace.
        time.sleep(GRACE_SECONDS + 1)

    assert set(poll.totals) == {1}, poll.totals  # never below 1 (nor above) while navigating
    (visitor,) = visitors(tracker, community_id)
    assert visitor["pages_viewed"] == 5
    assert visitor["joined_at"] == joined_at
    assert stats(tracker, community_id)["connections"] == 1
    # Only the tab's first page view says it is a new tab (README, "One community in N parts")
    assert [s.body.get("new_tab") for s in sent if s.kind == "visits"] == [True, None, None, None, None]
    page.close()


def test_back_forward_cache_is_one_page_view_and_one_history_item(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    community_id = register(tracker)
    page = context.new_page()
    signed_in(page, token_of(f"bf-{community_id}"))
    page.add_init_script("addEventListener('pageshow', e => { window.__restored = e.persisted; })")
    sent = beacons_of(page)
    page.goto(page_url(host_pages.origin, tracker, community_id))
    assert eventually(lambda: len(history(tracker, community_id)) == 1)

    # Away and back within the grace: the visit goes on.
    page.goto(f"{tracker.base}/v1/openapi.json")  # a page without the beacon
    before = len(sent)
    page.go_back(wait_until="commit")
    assert eventually(lambda: len(history(tracker, community_id)) == 2)
    assert page.evaluate("window.__restored") is True  # from the back/forward cache, not loaded again
    page.wait_for_timeout(1500)
    assert [s.kind for s in sent[before:]].count("visits") == 1
    (visitor,) = visitors(tracker, community_id)
    assert visitor["pages_viewed"] == 2

    # Away for longer than the grace: gone; back, one page view again (the heartbeat that
    # visibilitychange used to send answered active:false, and made it two).
    page.goto(f"{tracker.base}/v1/openapi.json")
    move_clock(tracker, GRACE_SECONDS + 5)
    assert eventually(lambda: live_total(tracker, community_id) == 0)
    before = len(sent)
    page.go_back(wait_until="commit")
    assert eventually(lambda: live_total(tracker, community_id) == 1)
    page.wait_for_timeout(1500)
    assert page.evaluate("window.__restored") is True
    assert [s.kind for s in sent[before:]].count("visits") == 1
    stored = history(tracker, community_id)
    assert len(stored) == 3
    assert len({item["event_id"] for item in stored}) == 3
    assert [v["pages_viewed"] for v in visitors(tracker, community_id)] == [1]
    page.close()


def test_login_and_logout_without_reload_move_the_tab_and_stay_one_person(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    community_id = register(tracker)
    url = page_url(host_pages.origin, tracker, community_id)
    user = f"who-{community_id}"
    token = token_of(user)
    first = open_page(context, url)
    assert eventually(lambda: live_total(tracker, community_id) == 1)

    def person() -> list[tuple[str | None, bool]]:
        return [(v["user_id"], v["is_authenticated"]) for v in visitors(tracker, community_id)]

    # One tab: the connection moves at once, folding the person it leaves.
    with Poller(tracker, community_id) as one_tab:
        first.evaluate("t => visitorTracker.identify(t)", token)
        assert eventually(lambda: person() == [(user, True)])
        first.evaluate("visitorTracker.identify(null)")
        assert eventually(lambda: person() == [(None, False)])
    assert set(one_tab.totals) == {1}, one_tab.totals

    # Two tabs: a login in one reaches the other (BroadcastChannel); no one is left behind.
    second = open_page(context, url)
    assert eventually(lambda: stats(tracker, community_id)["connections"] == 2)
    with Poller(tracker, community_id) as two_tabs:
        first.evaluate("t => visitorTracker.identify(t)", token)
        assert eventually(lambda: person() == [(user, True)])
        time.sleep(1)
        second.evaluate("visitorTracker.identify(null)")
        assert eventually(lambda: person() == [(None, False)])
        time.sleep(1)
    assert stats(tracker, community_id)["connections"] == 2
    assert min(two_tabs.totals) == 1
    assert two_tabs.totals[-5:] == [1] * 5
    for page in (first, second):
        page.close()


def test_a_tab_hidden_past_the_window_is_counted_again(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    community_id = register(tracker)
    page = context.new_page()
    page.add_init_script(VISIBILITY_CONTROL)
    sent = beacons_of(page)
    page.goto(page_url(host_pages.origin, tracker, community_id))
    assert eventually(lambda: live_total(tracker, community_id) == 1)

    page.evaluate("__setVisibility('hidden')")
    move_clock(tracker, WINDOW_SECONDS + 1)
    assert live_total(tracker, community_id) == 0
    before = len(sent)
    page.evaluate("__setVisibility('visible')")

    assert eventually(lambda: live_total(tracker, community_id) == 1, timeout=30, on=page)
    page.wait_for_timeout(500)  # Playwright hands over the page's events while it is waited on
    assert [s.kind for s in sent[before:]] == ["heartbeat", "visits"]  # active:false, then a page view
    page.close()


def test_an_origin_the_api_does_not_grant_gets_one_warning_and_is_still_counted(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    community_id = register(tracker)
    page = context.new_page()
    page.add_init_script(VISIBILITY_CONTROL)
    page.clock.install()
    messages: list[ConsoleMessage] = []
    page.on("console", lambda message: messages.append(message))
    sent = beacons_of(page)
    page.goto(page_url(host_pages.other_origin, tracker, community_id))  # not in VT_CORS_ORIGINS

    assert eventually(lambda: live_total(tracker, community_id) == 1)  # sent all the same
    for _ in range(60):  # five minutes of heartbeats
        page.clock.run_for(5_000)
        page.wait_for_timeout(20)
    assert live_total(tracker, community_id) == 1
    # Hidden longer than the window: no active:false can be read, so a page view on coming back.
    page.evaluate("__setVisibility('hidden')")
    page.clock.run_for((WINDOW_SECONDS + 10) * 1000)
    before = len(sent)
    page.evaluate("__setVisibility('visible')")
    page.wait_for_timeout(500)

    warnings = [m.text for m in messages if m.type == "warning"]
    assert len(warnings) == 1, warnings
    assert host_pages.other_origin in warnings[0]
    assert "VT_CORS_ORIGINS" in warnings[0]
    # The browser's own report of the refusal: for the first beacon, not for every heartbeat.
    cors_errors = [m.text for m in messages if m.type == "error" and "CORS" in m.text]
    assert len(cors_errors) == 1, cors_errors
    assert [s.kind for s in sent].count("heartbeat") >= 9
    assert [s.kind for s in sent[before:]][:1] == ["visits"]
    page.close()


def test_an_endpoint_that_is_down_is_tried_less_and_less_often(host_pages: HostPages, context: BrowserContext) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    page = context.new_page()
    page.clock.install()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    messages: list[ConsoleMessage] = []
    page.on("console", lambda message: messages.append(message))
    sent = beacons_of(page)
    page.goto(page_url(host_pages.origin, dead, "quebec-city"))

    seconds = 0
    tried_at: dict[str, list[int]] = {"visits": [], "heartbeat": []}
    counted = 0
    while seconds < 600:  # ten minutes, every 30 s that would be 20 heartbeats
        page.clock.run_for(5_000)
        seconds += 5
        page.wait_for_timeout(25)
        for beacon in sent[counted:]:
            tried_at[beacon.kind].append(seconds)
        counted = len(sent)

    def attempts(kind: str) -> list[int]:  # each attempt is the beacon and its no-cors probe
        return sorted(set(tried_at[kind]))

    heartbeats = attempts("heartbeat")
    assert 3 <= len(heartbeats) <= 6, heartbeats
    gaps = [later - earlier for earlier, later in itertools.pairwise(heartbeats)]
    assert gaps == sorted(gaps), heartbeats  # backing off
    assert gaps[-1] >= 4 * gaps[0], heartbeats
    assert len(attempts("visits")) <= 7, attempts("visits")  # the page view's retries back off too
    assert errors == []
    warnings = [m.text for m in messages if m.type == "warning"]
    assert len(warnings) == 1, warnings
    assert dead in warnings[0]
    page.close()


def test_a_page_view_answered_503_or_not_at_all_is_sent_again_and_stored_once(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    community_id = register(tracker)
    page = context.new_page()
    signed_in(page, token_of(f"retry-{community_id}"))
    sent = beacons_of(page)
    plan = {"answer_503": 1, "offline": False}

    def visits(route: Route) -> None:
        if plan["offline"]:
            route.abort("connectionrefused")
            return
        if plan["answer_503"]:
            # The API stored it, but its answer was a 503 (as when the history refused it after the live state took it).
            plan["answer_503"] -= 1
            route.fetch(headers={**route.request.headers, "user-agent": BROWSER_UA})
            route.fulfill(
                status=503,
                headers={
                    "Content-Type": "application/json",
                    "Retry-After": "1",
                    "Access-Control-Allow-Origin": host_pages.origin,
                    "Access-Control-Expose-Headers": "Retry-After",
                },
                body='{"error": {"code": "history_unavailable", "message": "try again"}}',
            )
            return
        route.fallback()

    page.route(re.compile(r"/v1/communities/[^/]+/visits$"), visits)
    page.goto(page_url(host_pages.origin, tracker, community_id))
    assert eventually(lambda: [s.kind for s in sent].count("visits") == 2, timeout=10, on=page)
    first, retry = (s.body for s in sent if s.kind == "visits")
    assert retry["event_id"] == first["event_id"]
    assert eventually(lambda: len(history(tracker, community_id)) == 1, on=page)
    page.wait_for_timeout(1000)
    assert [item["event_id"] for item in history(tracker, community_id)] == [first["event_id"]]
    assert [v["pages_viewed"] for v in visitors(tracker, community_id)] == [1]
    assert page.evaluate("localStorage.getItem('vt_outbox')") is None

    # No answer at all (the network is down), then the next page of the visit: it sends both.
    plan["offline"] = True
    before = len(sent)
    page.click("nav a:text('Events')")
    page.wait_for_load_state()
    assert eventually(lambda: page.evaluate("localStorage.getItem('vt_outbox')") is not None, timeout=5)
    lost = next(s.body["event_id"] for s in sent[before:] if s.kind == "visits")
    plan["offline"] = False
    page.click("nav a:text('Members')")
    page.wait_for_load_state()
    assert eventually(lambda: len(history(tracker, community_id)) == 3, on=page)
    page.wait_for_timeout(1000)
    stored = [item["event_id"] for item in history(tracker, community_id)]
    assert sorted(stored) == sorted(set(stored))  # each once
    assert lost in stored
    assert [v["pages_viewed"] for v in visitors(tracker, community_id)] == [3]
    assert page.evaluate("localStorage.getItem('vt_outbox')") is None
    page.close()


def test_privacy_signals_keep_nothing_beyond_the_tab(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    community_id = register(tracker)
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true })")
    url = page_url(host_pages.origin, tracker, community_id)
    sent = beacons_of(context)
    tabs = [open_page(context, url) for _ in range(2)]

    # Counted all the same, by the server's cookieless daily hash: one person, two connections.
    assert eventually(lambda: stats(tracker, community_id)["connections"] == 2)
    assert live_total(tracker, community_id) == 1
    assert tabs[0].evaluate("Object.keys(localStorage).filter(k => k.startsWith('vt_'))") == []
    assert tabs[0].evaluate("sessionStorage.getItem('vt_connection_id')")
    assert sent
    assert all("visitor_id" not in s.body for s in sent)

    ignoring = open_page(context, page_url(host_pages.origin, tracker, community_id, privacy="ignore"))
    assert ignoring.evaluate("localStorage.getItem('vt_visitor_id')")
    for page in [*tabs, ignoring]:
        page.close()


def test_beacon_script_never_throws_into_the_host_page(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_url(host_pages.origin, tracker, "not-a-registered-community"))
    page.evaluate("window.dispatchEvent(new Event('pagehide'))")
    page.evaluate("visitorTracker.identify(42); visitorTracker.identify('not.a.token')")
    page.wait_for_timeout(500)

    assert errors == []
    page.close()


def test_a_tab_that_copied_another_s_session_storage_is_a_connection_of_its_own(
    tracker: LocalSystem, host_pages: HostPages, context: BrowserContext
) -> None:
    community_id = register(tracker)
    first = open_page(context, page_url(host_pages.origin, tracker, community_id))
    assert eventually(lambda: stats(tracker, community_id)["connections"] == 1)
    with context.expect_page() as opened:
        first.evaluate("window.open(location.href)")  # an opener's sessionStorage is copied, as on "Duplicate tab"
    second = opened.value
    second.wait_for_load_state()
    copied = "sessionStorage.getItem('vt_connection_id')"

    assert eventually(lambda: first.evaluate(copied) != second.evaluate(copied), timeout=5)
    assert eventually(lambda: stats(tracker, community_id)["connections"] == 2, timeout=10)  # its heartbeat opens it
    assert live_total(tracker, community_id) == 1
    for page in (first, second):
        page.close()
