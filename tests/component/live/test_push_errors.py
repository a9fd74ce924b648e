"""Live push, issue #19: a failing post or a Redis error is one connection's or one community's
problem, never the whole minute's (real Redis; failures injected where the driver would raise)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from community_tracker.factories import reset_factories
from community_tracker.live import LivePusher, run_pusher
from community_tracker.redis.live_state import get_tracker
from community_tracker.redis.subscriptions import ConnectionRegistry, get_subscriptions
from infra.redis_servers import RedisProcess, start_redis
from tests.builders import SECOND, T0, anonymous, visit
from tests.component.live.doubles import FailingReader, RecordingPoster

BOTH = ["visitor_count_changed", "visitor_divisions_updated"]


def test_a_failing_post_spares_the_others_and_is_retried_next_tick(
    community_id: str, registry: ConnectionRegistry
) -> None:
    tracker = get_tracker()
    a, b, c = (f"{community_id}-{name}" for name in "abc")
    for connection_id in (a, b, c):
        registry.subscribe(connection_id, community_id, T0)
    tracker.add_visitor(visit(community_id, anonymous("s")), T0)
    poster = RecordingPoster(failing={b: "429 LimitExceededException"}, failures=1)
    pusher = LivePusher(tracker, registry, poster)

    first = pusher.tick(T0 + SECOND)
    after_first = [poster.types(x) for x in (a, b, c)]
    second = pusher.tick(T0 + 2 * SECOND)  # nothing changed: only the one that missed it gets it

    assert after_first == [BOTH, [], BOTH]
    assert (first.failed, first.messages) == (1, 4)
    assert [poster.types(x) for x in (a, b, c)] == [BOTH, BOTH, BOTH]
    assert (second.failed, second.messages) == (0, 2)
    assert poster.sent[b][0]["total"] == 1


def test_a_failed_post_is_logged_lean_and_counted(
    community_id: str, registry: ConnectionRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    connection_id = f"{community_id}-AbCdEf123="
    registry.subscribe(connection_id, community_id, T0)
    get_tracker().add_visitor(visit(community_id, anonymous("s")), T0)
    poster = RecordingPoster(failing={connection_id: "403 ForbiddenException"})

    report = LivePusher(get_tracker(), registry, poster).tick(T0 + SECOND)

    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert report.failed == 1
    assert len(warnings) == 1  # one line per tick, however many posts failed
    assert warnings[0].__dict__["failed"] == 1
    assert warnings[0].__dict__["reasons"] == {"403 ForbiddenException": 1}
    assert connection_id not in json.dumps([r.__dict__ for r in caplog.records], default=str)


def test_a_redis_error_in_one_community_spares_the_others(community_id: str, registry: ConnectionRegistry) -> None:
    tracker = get_tracker()
    other = f"{community_id}-b"
    on_a, on_b = f"{community_id}-on-a", f"{other}-on-b"
    registry.subscribe(on_a, community_id, T0)
    registry.subscribe(on_b, other, T0)
    tracker.add_visitor(visit(community_id, anonymous("s1")), T0)
    tracker.add_visitor(visit(other, anonymous("s2")), T0)
    reader = FailingReader(tracker, down={community_id})
    poster = RecordingPoster()
    pusher = LivePusher(reader, registry, poster)

    report = pusher.tick(T0 + SECOND)
    after_outage = (poster.types(on_a), poster.types(on_b))
    reader.down.clear()
    pusher.tick(T0 + 2 * SECOND)

    assert after_outage == ([], BOTH)
    assert report.unavailable == 1
    assert poster.types(on_a) == BOTH  # read again at the next tick: nothing was lost


def test_a_redis_outage_mid_run_skips_ticks_and_the_run_goes_on(
    function_env: None, own_redis: RedisProcess, community_id: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VT_REDIS_URL", own_redis.url)
    reset_factories()
    tracker, registry = get_tracker(), get_subscriptions()
    registry.subscribe("a", community_id, T0)
    tracker.add_visitor(visit(community_id, anonymous("s1")), T0)
    poster = RecordingPoster()
    clock = {"ms": T0 + SECOND, "sleeps": 0}
    servers = {"now": own_redis}

    def sleep(seconds: float) -> None:
        clock["sleeps"] += 1
        clock["ms"] += SECOND
        if clock["sleeps"] == 1:  # after the first tick the node fails over (its data kept)
            servers["now"].client().save()
            servers["now"].process.kill()
            servers["now"].process.wait()
        if clock["sleeps"] == 3:  # and is back two ticks later
            servers["now"] = start_redis(own_redis.directory, port=own_redis.port)
            tracker.add_visitor(visit(community_id, anonymous("s2")), clock["ms"] - 500)

    deadline = T0 + 7 * SECOND
    try:
        report = run_pusher(
            LivePusher(tracker, registry, poster),
            clock=lambda: clock["ms"],
            time_left_ms=lambda: deadline - clock["ms"],
            sleep=sleep,
        )
    finally:
        servers["now"].stop()

    assert clock["sleeps"] >= 4  # the run went on through the outage
    assert [m["total"] for m in poster.sent["a"] if m["type"] == "visitor_count_changed"] == [1, 2]
    assert report.unavailable >= 1
