"""Live push, issue #19: a tick's posts run concurrently, at most `concurrency` at a time; each
connection still gets its messages in order (real Redis; posters that count what is in flight)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence

from community_tracker.live import Delivery, LivePusher, Outcome, Result
from community_tracker.redis.live_state import get_tracker
from community_tracker.redis.subscriptions import ConnectionRegistry
from tests.builders import SECOND, T0, anonymous, visit

BOTH = ["visitor_count_changed", "visitor_divisions_updated"]


class SlowPoster:
    """A one-at-a-time poster that takes 20 ms per post and counts how many are in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.sent: dict[str, list[str]] = {}

    def post(self, connection_id: str, data: bytes) -> bool:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(0.02)
        with self.lock:
            self.in_flight -= 1
            self.sent.setdefault(connection_id, []).append(json.loads(data)["type"])
        return True


class BatchRecorder:
    """A poster that takes a whole tick at once (as the management API adapter does)."""

    def __init__(self) -> None:
        self.batches: list[list[Delivery]] = []

    def post_all(self, deliveries: Sequence[Delivery]) -> list[Result]:
        self.batches.append(list(deliveries))
        return [Result(Outcome.SENT, sent=len(d.messages)) for d in deliveries]


def test_a_ticks_posts_run_concurrently_up_to_the_bound(community_id: str, registry: ConnectionRegistry) -> None:
    connections = [f"{community_id}-{n}" for n in range(40)]
    for connection_id in connections:
        registry.subscribe(connection_id, community_id, T0)
    get_tracker().add_visitor(visit(community_id, anonymous("s")), T0)
    poster = SlowPoster()

    report = LivePusher(get_tracker(), registry, poster, concurrency=8).tick(T0 + SECOND)

    assert poster.max_in_flight == 8
    assert report.messages == 80
    assert all(poster.sent[c] == BOTH for c in connections)  # in order within a connection


def test_a_batch_poster_gets_the_whole_tick_at_once(community_id: str, registry: ConnectionRegistry) -> None:
    other = f"{community_id}-b"
    registry.subscribe(f"{community_id}-1", community_id, T0)
    registry.subscribe(f"{other}-1", other, T0)
    registry.subscribe(f"{other}-2", other, T0)
    get_tracker().add_visitor(visit(community_id, anonymous("s1")), T0)
    get_tracker().add_visitor(visit(other, anonymous("s2")), T0)
    poster = BatchRecorder()

    report = LivePusher(get_tracker(), registry, poster).tick(T0 + SECOND)

    assert len(poster.batches) == 1
    deliveries = {d.connection_id: [json.loads(m)["type"] for m in d.messages] for d in poster.batches[0]}
    assert deliveries == {f"{community_id}-1": BOTH, f"{other}-1": BOTH, f"{other}-2": BOTH}
    assert report.messages == 6
