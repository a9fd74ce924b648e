"""In a real headless Chromium (Debian's, driven by Playwright with `executable_path`): the beacon
script on a page counts one visitor, closing the page sends `leave`, and the stats page shows the
numbers and follows them live over the WebSocket."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocketRoute, sync_playwright

from tests.e2e.conftest import BROWSER_UA, LocalSystem
from tests.e2e.test_local_run import bearer, register

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the probe of this machine runs it: no sandbox as root, no background calls to the internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make test` installs it (Debian package chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # A headless browser says "HeadlessChrome" and would be counted as a bot: look like a person.
    opened = browser.new_context(user_agent=BROWSER_UA, viewport={"width": 1280, "height": 860})
    yield opened
    opened.close()


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def live_total(system: LocalSystem, community_id: str) -> int:
    stats = system.request("GET", f"/v1/communities/{community_id}/stats", headers=bearer("reader")).json()
    return int(stats["total_visitors"])


def open_community_page(context: BrowserContext, system: LocalSystem, community_id: str) -> Page:
    page = context.new_page()
    page.goto(f"{system.base}/?c={community_id}")
    return page


def test_beacon_counts_a_visitor_and_leave_uncounts_it(local_system: LocalSystem, context: BrowserContext) -> None:
    community_id = register(local_system)

    page = open_community_page(context, local_system, community_id)

    assert eventually(lambda: live_total(local_system, community_id) == 1)
    page.close(run_before_unload=True)
    assert eventually(lambda: live_total(local_system, community_id) == 0)


def test_beacon_script_never_throws_into_the_host_page(local_system: LocalSystem, context: BrowserContext) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{local_system.base}/?c=not-a-registered-community")
    page.evaluate("window.dispatchEvent(new Event('pagehide'))")
    page.wait_for_timeout(500)

    assert errors == []
    page.close()


def test_stats_page_shows_the_numbers_and_updates_live(
    local_system: LocalSystem, context: BrowserContext, artifacts_dir: Path
) -> None:
    community_id = register(local_system, division="quebec")
    first = open_community_page(context, local_system, community_id)
    assert eventually(lambda: live_total(local_system, community_id) == 1)

    stats = context.new_page()
    stats.goto(f"{local_system.base}/stats.html?community={community_id}&ws=ws://localhost:{local_system.ws_port}")
    stats.wait_for_function("document.getElementById('total').textContent === '1'")
    stats.wait_for_function("document.getElementById('status').className === 'live'")

    # A visitor from Montreal arrives (a signed-in browser): the page follows without reloading
    second = context.new_page()
    second.goto(f"{local_system.base}/?c={community_id}")
    second.evaluate(
        "token => { sessionStorage.setItem('demo_token', token); }",
        bearer("montrealer", division_id="montreal")["Authorization"].removeprefix("Bearer "),
    )
    second.reload()
    stats.wait_for_function(
        "document.getElementById('total').textContent === '2'"
        " && document.getElementById('auth').textContent.startsWith('authenticated 1')"
        " && document.getElementById('pairs').textContent.includes('montreal → quebec')",
        timeout=15_000,
    )

    assert "montreal" in (stats.text_content("#divisions") or "")
    assert stats.text_content("#cross") == "1"
    stats.wait_for_timeout(300)
    stats.screenshot(path=str(artifacts_dir / "stats-page.png"), full_page=True)
    for page in (first, second, stats):
        page.close()


def test_stats_page_subscribes_again_when_told_its_subscription_expired(
    local_system: LocalSystem, context: BrowserContext
) -> None:
    community_id = register(local_system, division="quebec")
    sockets: list[WebSocketRoute] = []

    def through(socket: WebSocketRoute) -> None:  # the page's sockets, passed through to the local run
        socket.connect_to_server()
        sockets.append(socket)

    stats = context.new_page()
    stats.route_web_socket(re.compile(r"^ws://"), through)
    stats.goto(f"{local_system.base}/stats.html?community={community_id}&ws=ws://localhost:{local_system.ws_port}")
    stats.wait_for_function("document.getElementById('status').className === 'live'")

    # What the pusher posts to a socket whose subscription is gone (a ping nobody knew)
    sockets[0].send('{"type": "subscription_expired", "timestamp": "2031-03-05T12:00:00.000Z"}')

    for _ in range(50):  # Playwright runs the route handler while the page is waited on, not in time.sleep
        if len(sockets) == 2:
            break
        stats.wait_for_timeout(100)
    assert len(sockets) == 2  # a new connection within 5 s, not the 15 s retry after a drop
    stats.wait_for_function("document.getElementById('status').className === 'live'")
    visitor = open_community_page(context, local_system, community_id)
    stats.wait_for_function("document.getElementById('total').textContent === '1'", timeout=15_000)
    for page in (visitor, stats):
        page.close()
