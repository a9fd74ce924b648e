"""How the local gateway invokes functions: unhandled errors are logged with their traceback (never
the client's address), and invocations run side by side in execution environments of their own,
so one hung invocation stalls nothing else."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.execution_environments import ExecutionEnvironments
from infra.gateway import Invoker, LocalGateway, Route, _compile

FAKE = "tests.component.infra.fake_functions"
CLIENT = "192.0.2.44"  # a documentation address: it must reach no log line


def route(path: str, handler: str, *, timeout_ms: int = 10_000) -> Route:
    pattern, literals = _compile(path)
    return Route("GET", path, "FakeFunction", f"{FAKE}.{handler}", pattern, literals, timeout_ms=timeout_ms)


ROUTES = [
    route("/fail", "fail"),
    route("/fail-naming-the-client", "fail_naming_the_client"),
    route("/hang", "hang"),
    route("/answer", "answer"),
    route("/slow", "hang", timeout_ms=500),
]


@pytest.fixture
def environments() -> Iterator[ExecutionEnvironments]:
    pool = ExecutionEnvironments(limit=3, warm=2, preload=[f"{FAKE}.answer", f"{FAKE}.hang"])
    pool.start()
    yield pool
    pool.stop()


@pytest.fixture(params=["in-process", "execution-environments"])
def invoker(request: pytest.FixtureRequest) -> Invoker:
    if request.param == "in-process":
        return Invoker()
    pool: ExecutionEnvironments = request.getfixturevalue("environments")
    return pool


def test_an_unhandled_error_is_a_500_logged_with_its_traceback(
    invoker: Invoker, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = LocalGateway(invoker, routes=ROUTES)

    answers = [gateway.handle("GET", path, {}, b"", CLIENT) for path in ("/fail", "/fail-naming-the-client")]

    assert [answer.status for answer in answers] == [500, 500]
    assert all(answer.body == b'{"message":"Internal Server Error"}' for answer in answers)
    logged = "\n".join(caplog.text.splitlines())
    assert "Traceback (most recent call last)" in logged
    assert "HandlerFailure: the dependency said no" in logged
    assert "GET /fail" in logged  # which route failed
    assert CLIENT not in logged
    assert "HandlerFailure: could not serve <client address>" in logged


def test_a_hung_invocation_does_not_stall_other_routes(environments: ExecutionEnvironments, tmp_path: Path) -> None:
    gateway = LocalGateway(environments, routes=ROUTES)
    release = tmp_path / "release"
    hung: list[int] = []
    hanging = threading.Thread(
        target=lambda: hung.append(gateway.handle("GET", f"/hang?release={release}", {}, b"", CLIENT).status)
    )
    hanging.start()
    time.sleep(0.3)
    others: list[int] = []
    other = threading.Thread(
        target=lambda: others.extend(gateway.handle("GET", "/answer", {}, b"", CLIENT).status for _ in range(3))
    )
    try:
        started = time.monotonic()
        other.start()
        other.join(timeout=5)
        elapsed = time.monotonic() - started

        assert others == [200, 200, 200], f"other routes waited for the hung one ({elapsed:.1f} s)"
        assert hanging.is_alive()
    finally:
        release.touch()
        hanging.join(timeout=30)
        other.join(timeout=30)
    assert hung == [200]


def test_an_invocation_past_its_timeout_is_stopped_and_the_next_one_works(
    environments: ExecutionEnvironments, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    gateway = LocalGateway(environments, routes=ROUTES)
    before = set(environments.pids)
    started = time.monotonic()

    timed_out = gateway.handle("GET", f"/slow?release={tmp_path / 'never'}", {}, b"", CLIENT)

    assert time.monotonic() - started < 5
    assert timed_out.status == 500
    assert "timed out after 0.50 seconds" in caplog.text
    # The environment it hung in was stopped by its pid, like Lambda drops a timed-out sandbox.
    gone = before - set(environments.pids)
    assert len(gone) == 1
    for pid in gone:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert gateway.handle("GET", "/answer", {}, b"", CLIENT).status == 200


def test_every_environment_is_stopped_by_its_pid() -> None:
    pool = ExecutionEnvironments(limit=2, warm=2, preload=[f"{FAKE}.answer"])
    pool.start()
    pids = pool.pids
    assert len(pids) == 2

    pool.stop()

    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_invoker_keeps_one_invocation_per_environment(environments: ExecutionEnvironments) -> None:
    # Powertools keeps the current event in module state: an environment runs one at a time, so
    # ten concurrent invocations over three environments never see each other's events.
    gateway = LocalGateway(environments, routes=ROUTES)
    paths = [f"/answer?n={n}" for n in range(10)]
    seen: dict[str, str] = {}

    def call(path: str) -> None:
        event = json.loads(gateway.handle("GET", path, {}, b"", CLIENT).body)["event"]
        seen[path] = f"/answer?{event['rawQueryString']}"

    threads = [threading.Thread(target=call, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert seen == {path: path for path in paths}
    assert len(environments.pids) <= 3
