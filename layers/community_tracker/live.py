"""Live push (README, "Live push"): the pusher that tells each community's WebSocket subscribers.

A beacon never waits on a push: it writes Redis and answers. The pusher runs beside it (a
scheduled Lambda that ticks once a second for the length of its invocation, locally a thread),
reads the summary of each community that has subscribers (one script call each), and posts
`visitor_count_changed` / `visitor_divisions_updated` only when the numbers moved — so at most one
message of each kind per second per community, however many beacons arrived in that second.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from community_tracker.models import CrossDivisionStats, DivisionCount, Summary
from community_tracker.timeutil import iso


class SummaryReader(Protocol):
    def get_summary(self, community_id: str, now_ms: int, *, timeline_minutes: int = 60) -> Summary: ...


class Subscriptions(Protocol):
    """Who listens to which community, and the one-pusher-at-a-time lock."""

    def communities(self) -> list[str]: ...
    def connections(self, community_id: str, now_ms: int) -> list[str]: ...
    def forget_community(self, community_id: str) -> None: ...
    def unsubscribe(self, connection_id: str) -> None: ...
    def acquire_pusher_lock(self, holder: str, ttl_ms: int) -> bool: ...
    def release_pusher_lock(self, holder: str) -> None: ...


class VisitorCountChanged(BaseModel):
    type: str = "visitor_count_changed"
    community_id: str
    total: int
    authenticated: int
    anonymous: int
    timestamp: str


class VisitorDivisionsUpdated(BaseModel):
    type: str = "visitor_divisions_updated"
    community_id: str
    divisions: list[DivisionCount]
    cross_division: CrossDivisionStats
    timestamp: str


class Poster(Protocol):
    def post(self, connection_id: str, data: bytes) -> bool:
        """Sends one message; False when the connection is gone (410) and must be pruned."""
        ...


@dataclass
class PushReport:
    communities: int = 0
    messages: int = 0
    pruned: int = 0


@dataclass
class LivePusher:
    tracker: SummaryReader
    registry: Subscriptions
    poster: Poster
    _last: dict[str, dict[str, Any]] = field(default_factory=dict)

    def tick(self, now_ms: int) -> PushReport:
        """One round over every community with subscribers; posts only what changed."""
        report = PushReport()
        for community_id in self.registry.communities():
            connections = self.registry.connections(community_id, now_ms)
            if not connections:
                self.registry.forget_community(community_id)
                self._last.pop(community_id, None)
                continue
            report.communities += 1
            messages = self._changes(community_id, now_ms)
            for connection_id in connections:
                for message in messages:
                    if not self.poster.post(connection_id, message):
                        self.registry.unsubscribe(connection_id)
                        report.pruned += 1
                        break
                    report.messages += 1
        return report

    def _changes(self, community_id: str, now_ms: int) -> list[bytes]:
        summary = self.tracker.get_summary(community_id, now_ms, timeline_minutes=1)
        stats = summary.stats
        counts = VisitorCountChanged(
            community_id=community_id,
            total=stats.total_visitors,
            authenticated=stats.authenticated_visitors,
            anonymous=stats.anonymous_visitors,
            timestamp=iso(now_ms),
        )
        divisions = VisitorDivisionsUpdated(
            community_id=community_id,
            divisions=summary.divisions,
            cross_division=summary.cross_division,
            timestamp=iso(now_ms),
        )
        last = self._last.setdefault(community_id, {})
        messages = []
        counts_now = counts.model_dump(exclude={"timestamp"})
        if last.get("counts") != counts_now:
            last["counts"] = counts_now
            messages.append(counts.model_dump_json().encode())
        divisions_now = divisions.model_dump(exclude={"timestamp"})
        if last.get("divisions") != divisions_now:
            last["divisions"] = divisions_now
            messages.append(divisions.model_dump_json().encode())
        return messages


def run_pusher(
    pusher: LivePusher,
    *,
    clock: Callable[[], int],
    time_left_ms: Callable[[], int],
    tick_ms: int = 1000,
    margin_ms: int = 2000,
    sleep: Callable[[float], None] = time.sleep,
) -> PushReport:
    """Ticks once a second until the deadline is near; returns the totals. Does nothing when
    another pusher holds the lock."""
    holder = uuid.uuid4().hex
    total = PushReport()
    if not pusher.registry.acquire_pusher_lock(holder, ttl_ms=time_left_ms() + tick_ms):
        return total
    try:
        while time_left_ms() > margin_ms:
            started = clock()
            report = pusher.tick(started)
            total.communities = max(total.communities, report.communities)
            total.messages += report.messages
            total.pruned += report.pruned
            sleep(max(0.0, (tick_ms - (clock() - started)) / 1000))
    finally:
        pusher.registry.release_pusher_lock(holder)
    return total
