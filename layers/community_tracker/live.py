"""Live push (design §8): WebSocket subscribers per community, and the pusher that tells them.

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
from http import HTTPStatus
from typing import Any, Protocol, cast

from botocore.exceptions import ClientError
from pydantic import BaseModel

from community_tracker.models import CrossDivisionStats, DivisionCount
from community_tracker.redis_keys import CommunityKeys
from community_tracker.redis_scripts import RedisClient
from community_tracker.timeutil import iso
from community_tracker.tracker import VisitorTracker

CONNECTION_TTL_MS = 2 * 3_600_000  # API Gateway closes a WebSocket after 2 hours anyway
IDLE_TTL_MS = 10 * 60_000  # API Gateway's idle timeout; a ping refreshes it
_COMMUNITIES_KEY = "{vt:live}:communities"  # zset: community with subscribers -> last subscription
_PUSHER_LOCK_KEY = "{vt:live}:pusher"


def _connection_key(connection_id: str) -> str:
    return f"{{vt:live:conn:{connection_id}}}"  # the community the connection listens to


def _subscribers_key(community_id: str) -> str:
    return f"{CommunityKeys(community_id).tag}:subscribers"  # zset: connection id -> expiry (ms)


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


class ConnectionRegistry:
    """Who listens to which community, in Redis, each connection with an expiry."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    def subscribe(self, connection_id: str, community_id: str, now_ms: int) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.set(_connection_key(connection_id), community_id, px=CONNECTION_TTL_MS)
        pipe.zadd(_subscribers_key(community_id), {connection_id: now_ms + IDLE_TTL_MS})
        pipe.zadd(_COMMUNITIES_KEY, {community_id: now_ms})
        pipe.execute()

    def touch(self, connection_id: str, now_ms: int) -> bool:
        """A ping: the connection stays subscribed for another idle period. False: unknown."""
        community_id = cast(str | None, self._client.get(_connection_key(connection_id)))
        if community_id is None:
            return False
        self._client.zadd(_subscribers_key(community_id), {connection_id: now_ms + IDLE_TTL_MS}, xx=True)
        return True

    def unsubscribe(self, connection_id: str) -> None:
        community_id = cast(str | None, self._client.get(_connection_key(connection_id)))
        self._client.delete(_connection_key(connection_id))
        if community_id is not None:
            self._client.zrem(_subscribers_key(community_id), connection_id)

    def connections(self, community_id: str, now_ms: int) -> list[str]:
        """Live connections of a community; expired ones are dropped on the way."""
        key = _subscribers_key(community_id)
        pipe = self._client.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", now_ms)
        pipe.zrange(key, 0, -1)
        _removed, connections = pipe.execute()
        return cast(list[str], connections)

    def communities(self) -> list[str]:
        return cast(list[str], self._client.zrange(_COMMUNITIES_KEY, 0, -1))

    def forget_community(self, community_id: str) -> None:
        self._client.zrem(_COMMUNITIES_KEY, community_id)

    def acquire_pusher_lock(self, holder: str, ttl_ms: int) -> bool:
        """One pusher at a time (scheduled invocations may overlap by a few seconds)."""
        return bool(self._client.set(_PUSHER_LOCK_KEY, holder, nx=True, px=ttl_ms))

    def release_pusher_lock(self, holder: str) -> None:
        if self._client.get(_PUSHER_LOCK_KEY) == holder:
            self._client.delete(_PUSHER_LOCK_KEY)


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
    tracker: VisitorTracker
    registry: ConnectionRegistry
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


class ManagementApiPoster:
    """Posts through the API Gateway management API (`@connections`)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def post(self, connection_id: str, data: bytes) -> bool:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == HTTPStatus.GONE:
                return False
            raise
        return True
