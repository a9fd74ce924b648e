"""Live push (README, "Live push"): the pusher that tells each community's WebSocket subscribers.

A beacon never waits on a push: it writes Redis and answers. The pusher runs beside it (a
scheduled Lambda that ticks once a second for the length of its invocation, locally a thread),
reads the summary of each community that has subscribers (one script call each), and posts
`visitor_count_changed` / `visitor_divisions_updated` only when the numbers moved — so at most one
message of each kind per second per community, however many beacons arrived in that second. A
tick's posts go out together, concurrently (`BatchPoster`), so a second holds thousands of them.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from community_tracker.errors import LiveStateUnavailable, PostFailed
from community_tracker.models import CrossDivisionStats, DivisionCount, LiveContext, Summary
from community_tracker.observability import logger
from community_tracker.timeutil import iso


class SummaryReader(Protocol):
    def get_summary(self, community_id: str, now_ms: int, *, timeline_minutes: int = 60) -> Summary: ...


class Lease(Enum):
    """What asking for the one-pusher-at-a-time lease gave."""

    HELD = "held"  # it was already ours (nobody else held it since): renewed
    TAKEN = "taken"  # it was free, released or expired: ours now, and someone else may have pushed meanwhile
    REFUSED = "refused"  # another pusher holds it and it has not expired


class Subscriptions(Protocol):
    """Who listens to which community, and the one-pusher-at-a-time lease."""

    def communities(self) -> list[str]: ...
    def connections(self, community_id: str, now_ms: int) -> list[str]: ...
    def forget_community(self, community_id: str) -> None: ...
    def unsubscribe(self, connection_id: str) -> None: ...
    def take_reconnects(self) -> list[str]:
        """Connections that pinged without a subscription, each handed out once."""
        ...

    def hold_pusher_lease(self, holder: str, now_ms: int, lease_ms: int) -> Lease:
        """Takes the lease if it is free or expired, renews it if it is `holder`'s: until `now_ms + lease_ms`."""
        ...

    def release_pusher_lease(self, holder: str) -> None:
        """Ends `holder`'s lease now (nothing if it is not `holder`'s)."""
        ...


class VisitorCountChanged(BaseModel):
    type: str = "visitor_count_changed"
    community_id: str
    total: int
    authenticated: int
    anonymous: int
    present_now: int
    connections: int
    timestamp: str


class VisitorDivisionsUpdated(BaseModel):
    """Who the people live are: home divisions, cross-division pairs, and the live context (the
    summary's, with its `limit` of `VT_CONTEXT_TOP`)."""

    type: str = "visitor_divisions_updated"
    community_id: str
    divisions: list[DivisionCount]
    cross_division: CrossDivisionStats
    context: LiveContext
    timestamp: str


class SubscriptionExpired(BaseModel):
    """Told to a connection whose subscription is gone: the page opens a new connection."""

    type: str = "subscription_expired"
    message: str = "the subscription has expired: open a new connection to subscribe again"
    timestamp: str


class Poster(Protocol):
    def post(self, connection_id: str, data: bytes) -> bool:
        """Sends one message; False when the connection is gone (410) and must be pruned.
        Raises `PostFailed` for any other failure (throttled, refused, server error, timeout)."""
        ...


@dataclass(frozen=True)
class Delivery:
    """What one connection gets at one tick, in this order."""

    connection_id: str
    messages: tuple[bytes, ...]


class Outcome(Enum):
    SENT = "sent"  # every message posted
    GONE = "gone"  # the connection is gone (410): unsubscribe it
    FAILED = "failed"  # a post failed otherwise (`reason`): the connection gets everything next tick


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    sent: int = 0  # messages of the delivery posted before it ended
    reason: str = ""  # why it failed: `429 LimitExceededException`, `timeout`


@runtime_checkable
class BatchPoster(Protocol):
    def post_all(self, deliveries: Sequence[Delivery]) -> list[Result]:
        """Each delivery's messages one after the other, the deliveries concurrently (as many at a
        time as the poster allows); one result per delivery, in the same order. Never raises for
        one delivery's failure."""
        ...


class ThreadPoolPoster:
    """A one-at-a-time `Poster` fanned out over a bounded pool of threads (the local WebSocket
    gateway, test doubles); the management API adapter is a `BatchPoster` of its own."""

    def __init__(self, poster: Poster, concurrency: int) -> None:
        self._poster = poster
        self._concurrency = max(1, concurrency)
        self._pool: ThreadPoolExecutor | None = None

    def post_all(self, deliveries: Sequence[Delivery]) -> list[Result]:
        if len(deliveries) <= 1 or self._concurrency == 1:
            return [self._deliver(delivery) for delivery in deliveries]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="live-post")
        return list(self._pool.map(self._deliver, deliveries))

    def _deliver(self, delivery: Delivery) -> Result:
        sent = 0
        for message in delivery.messages:
            try:
                if not self._poster.post(delivery.connection_id, message):
                    return Result(Outcome.GONE, sent)
            except PostFailed as error:
                return Result(Outcome.FAILED, sent, str(error))
            sent += 1
        return Result(Outcome.SENT, sent)


@dataclass
class PushReport:
    communities: int = 0  # communities pushed to (the most in one tick, for a whole run)
    messages: int = 0  # messages posted
    pruned: int = 0  # connections gone (410) and unsubscribed
    failed: int = 0  # connections whose post failed: they get the whole state at the next tick
    unavailable: int = 0  # communities (or whole ticks) skipped because Redis could not be read
    waited: int = 0  # ticks spent waiting for another pusher's lease
    reconnects: int = 0  # connections told their subscription had expired

    def add(self, tick: PushReport) -> None:
        self.communities = max(self.communities, tick.communities)
        self.messages += tick.messages
        self.pruned += tick.pruned
        self.failed += tick.failed
        self.unavailable += tick.unavailable
        self.waited += tick.waited
        self.reconnects += tick.reconnects


@dataclass
class LivePusher:
    """Failures stay where they happen: a post that fails is that connection's (tried again, with
    the whole state, at the next tick), a community that cannot be read is that community's (read
    again at the next tick); neither stops the others."""

    tracker: SummaryReader
    registry: Subscriptions
    poster: Poster | BatchPoster
    concurrency: int = 32  # posts in flight at once, for a one-at-a-time `Poster`
    # Who holds the lease: one pusher per execution environment, kept across its invocations, so an
    # invocation that gets the lease back from its own predecessor knows nobody else pushed since.
    identity: str = field(default_factory=lambda: uuid.uuid4().hex)
    _last: dict[str, dict[str, Any]] = field(default_factory=dict)
    _behind: dict[str, set[str]] = field(default_factory=dict)  # community -> connections that missed a post
    _fanout: BatchPoster = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._fanout = (
            self.poster if isinstance(self.poster, BatchPoster) else ThreadPoolPoster(self.poster, self.concurrency)
        )

    def forget(self) -> None:
        """Forgets what was pushed: after another pusher held the lease, the next tick sends everything."""
        self._last.clear()
        self._behind.clear()

    def tick(self, now_ms: int) -> PushReport:
        """One round over every community with subscribers; posts only what changed (and everything
        to the connections whose last post failed), every post of the tick in one concurrent batch.
        Raises `LiveStateUnavailable` only when the list of communities itself cannot be read."""
        report = PushReport()
        unreadable: Counter[str] = Counter()
        deliveries: list[Delivery] = []
        owners: list[str | None] = []  # the community of each delivery (None: a reconnect notice)
        for community_id in self.registry.communities():
            try:
                connections = self.registry.connections(community_id, now_ms)
                if not connections:
                    self.registry.forget_community(community_id)
                    self._last.pop(community_id, None)
                    self._behind.pop(community_id, None)
                    continue
                changed, everything = self._messages(community_id, now_ms)
            except LiveStateUnavailable as error:
                report.unavailable += 1
                unreadable[_cause(error)] += 1
                continue
            report.communities += 1
            behind = self._behind.pop(community_id, set())
            for connection_id in connections:
                messages = everything if connection_id in behind else changed
                if messages:
                    deliveries.append(Delivery(connection_id, messages))
                    owners.append(community_id)
        notice = (SubscriptionExpired(timestamp=iso(now_ms)).model_dump_json().encode(),)
        for connection_id in self._reconnects(unreadable):
            deliveries.append(Delivery(connection_id, notice))
            owners.append(None)
        results = self._fanout.post_all(deliveries) if deliveries else []
        reasons = self._account(deliveries, owners, results, report, unreadable)
        if reasons:
            # One line per tick, however many posts failed; no connection ids (lean logs).
            logger.warning(
                "live push: posts failed, tried again next tick", extra={"failed": report.failed, "reasons": reasons}
            )
        if unreadable:
            logger.warning(
                "live push: live state unavailable, skipped until next tick",
                extra={"communities": report.unavailable, "errors": unreadable},
            )
        return report

    def _account(
        self,
        deliveries: list[Delivery],
        owners: list[str | None],
        results: list[Result],
        report: PushReport,
        unreadable: Counter[str],
    ) -> Counter[str]:
        """Prunes the gone, remembers who missed a post, counts; returns the failures by reason."""
        reasons: Counter[str] = Counter()
        for delivery, community_id, result in zip(deliveries, owners, results, strict=True):
            if community_id is None:  # a reconnect notice: gone or failed, a page still open pings again
                report.reconnects += 1
                continue
            report.messages += result.sent
            if result.outcome is Outcome.GONE:
                report.pruned += 1
                try:
                    self.registry.unsubscribe(delivery.connection_id)
                except LiveStateUnavailable as error:  # posted again next tick, 410 again, pruned then
                    unreadable[_cause(error)] += 1
            elif result.outcome is Outcome.FAILED:
                self._behind.setdefault(community_id, set()).add(delivery.connection_id)
                report.failed += 1
                reasons[result.reason] += 1
        return reasons

    def _reconnects(self, unreadable: Counter[str]) -> list[str]:
        try:
            return self.registry.take_reconnects()
        except LiveStateUnavailable as error:
            unreadable[_cause(error)] += 1
            return []

    def _messages(self, community_id: str, now_ms: int) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """(what changed since the last tick, the whole state)."""
        summary = self.tracker.get_summary(community_id, now_ms, timeline_minutes=1)
        stats = summary.stats
        counts = VisitorCountChanged(
            community_id=community_id,
            total=stats.total_visitors,
            authenticated=stats.authenticated_visitors,
            anonymous=stats.anonymous_visitors,
            present_now=stats.present_now,
            connections=stats.connections,
            timestamp=iso(now_ms),
        )
        divisions = VisitorDivisionsUpdated(
            community_id=community_id,
            divisions=summary.divisions,
            cross_division=summary.cross_division,
            context=summary.context,
            timestamp=iso(now_ms),
        )
        last = self._last.setdefault(community_id, {})
        changed, everything = [], []
        for kind, message in (("counts", counts), ("divisions", divisions)):
            data = message.model_dump_json().encode()
            everything.append(data)
            now = message.model_dump(exclude={"timestamp"})
            if last.get(kind) != now:
                last[kind] = now
                changed.append(data)
        return tuple(changed), tuple(everything)


def _cause(error: LiveStateUnavailable) -> str:
    """The driver's error class, named by the adapter (never a key, a connection or an address)."""
    return type(error.__cause__).__name__ if error.__cause__ is not None else type(error).__name__


def run_pusher(
    pusher: LivePusher,
    *,
    clock: Callable[[], int],
    time_left_ms: Callable[[], int],
    lease_ms: int = 5000,
    tick_ms: int = 1000,
    margin_ms: int = 2000,
    sleep: Callable[[float], None] = time.sleep,
) -> PushReport:
    """Ticks once a second until the deadline is near, while it holds the pusher lease, which it
    renews at every tick; returns the totals.

    An invocation that finds the lease held asks again at every tick, so it takes over as soon as
    the holder releases it (at the end of its own run) or stops renewing it (it died): one pusher at
    a time, and never a minute without one. A Redis error costs that tick, never the run."""
    total = PushReport()
    holding = False
    try:
        while time_left_ms() > margin_ms:
            started = clock()
            try:
                lease = pusher.registry.hold_pusher_lease(pusher.identity, started, lease_ms)
                holding = lease is not Lease.REFUSED
                if lease is Lease.TAKEN:
                    pusher.forget()
                if holding:
                    total.add(pusher.tick(started))
                else:
                    total.waited += 1
            except LiveStateUnavailable as error:  # a failover: this tick is lost, the next one tries
                total.unavailable += 1
                logger.warning("live push: tick skipped, live state unavailable", extra={"error": _cause(error)})
            sleep(max(0.0, (tick_ms - (clock() - started)) / 1000))
    finally:
        if holding:
            with contextlib.suppress(LiveStateUnavailable):  # then it expires by itself within lease_ms
                pusher.registry.release_pusher_lease(pusher.identity)
    return total
