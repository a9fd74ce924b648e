"""The local run (`python -m infra.local_run`, what `make run` starts) in a subprocess, driven over
HTTP as a frontend would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from infra.redis_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
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
# A headless browser says "HeadlessChrome" and is counted as a bot. The context's User-Agent does
# not reach the beacons a page sends while it is being navigated away from (they leave from the
# browser process), so the browser itself says it is a person's.
PERSON_ARGS = [*CHROMIUM_ARGS, f"--user-agent={BROWSER_UA}"]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LocalSystem:
    base: str
    port: int
    ws_port: int
    process: subprocess.Popen[str]
    output: list[str]

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> Answer:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        all_headers = {"User-Agent": BROWSER_UA, **(headers or {})}
        if isinstance(body, dict):
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(f"{self.base}{path}", data=data, headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def start_local_system(port: int, emulator_port: int, extra_env: dict[str, str] | None = None) -> LocalSystem:
    ws_port = free_port()
    env = {
        **os.environ,
        "VT_PORT": str(port),
        "VT_WS_PORT": str(ws_port),
        "LOCALSTACK_HOST": f"127.0.0.1:{emulator_port}",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local_run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        output.append(line)
        if line.startswith("READY "):
            system = LocalSystem(base=line.split()[1], port=port, ws_port=ws_port, process=process, output=output)
            _drain(process, output)
            return system
    process.kill()
    raise RuntimeError("the local run did not start:\n" + "".join(output))


def _drain(process: subprocess.Popen[str], output: list[str]) -> None:
    """Keeps reading the child's output so it never blocks on a full pipe."""

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)

    threading.Thread(target=read, daemon=True).start()


def stop_local_system(system: LocalSystem) -> int:
    system.process.send_signal(signal.SIGINT)
    try:
        return system.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        system.process.kill()
        raise


@pytest.fixture(scope="session")
def local_system() -> Iterator[LocalSystem]:
    system = start_local_system(free_port(), free_port())
    yield system
    stop_local_system(system)


@dataclass
class HostPages:
    """The demo pages (`web/`) served on an origin of their own, as a platform's community pages
    embed the beacon: `origin` is 127.0.0.1, `other_origin` (the same server as localhost) is
    another origin, for an API that does not grant it."""

    port: int
    server: ThreadingHTTPServer

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_origin(self) -> str:
        return f"http://localhost:{self.port}"


class _WebFiles(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(ROOT / "web"), **kwargs)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache")  # revalidated, yet kept by the back/forward cache
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def start_host_pages() -> HostPages:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _WebFiles)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="host-pages", daemon=True).start()
    return HostPages(port=server.server_address[1], server=server)


def stop_host_pages(pages: HostPages) -> None:
    pages.server.shutdown()
    pages.server.server_close()


# ---- the browser modules' own system: host pages on an origin of their own, a local run granting
# it, Debian's chromium (each module starts its own)


@pytest.fixture(scope="module")
def host_pages() -> Iterator[HostPages]:
    pages = start_host_pages()
    yield pages
    stop_host_pages(pages)


@pytest.fixture(scope="module")
def tracker(host_pages: HostPages) -> Iterator[LocalSystem]:
    """The local run, granting CORS to the host pages' origin only (not to their other origin)."""
    system = start_local_system(free_port(), free_port(), extra_env={"VT_CORS_ORIGINS": host_pages.origin})
    yield system
    stop_local_system(system)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: `make test` installs it (Debian package chromium)")
    with sync_playwright() as playwright:
        # Playwright turns the back/forward cache off; a person's browser has it.
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=PERSON_ARGS,
            ignore_default_args=["--disable-back-forward-cache"],
        )
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(user_agent=BROWSER_UA, viewport={"width": 1280, "height": 860})
    yield opened
    opened.close()
