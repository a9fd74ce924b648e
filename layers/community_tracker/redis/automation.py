"""Live counts of automated clients (bots, AI agents) per community and class, in Redis.

Written when a beacon is dropped as automated (`agents.record_automated`), read by
`GET /v1/communities/{id}/automation`. Per community and class, a sorted set of names and, per
name, a sorted set of hashed clients (`Beacon.client_key`, never an address), each scored with
its last-seen time and pruned by the live window on every write; both expire a minute after the
window, so a community the bots left holds nothing. One round trip to write, two to read.
"""

from __future__ import annotations

from typing import cast

from community_tracker.agents import AUTOMATED_KINDS, AutomatedClients, AutomatedKind, AutomationNow, NamedClients
from community_tracker.factories import cached_factory
from community_tracker.redis.client import get_redis_client
from community_tracker.redis.errors import live_state_errors
from community_tracker.redis.keys import AUTOMATION_MAX_CLIENTS, AUTOMATION_MAX_NAMES, CommunityKeys
from community_tracker.redis.scripts import RedisClient
from community_tracker.settings import get_settings
from community_tracker.timeutil import MINUTE_MS, iso


class AutomationTracker:
    def __init__(self, client: RedisClient, *, window_seconds: int = 300) -> None:
        self._client = client
        self._window_ms = window_seconds * 1000

    @live_state_errors
    def record(self, community_id: str, kind: AutomatedKind, name: str, client_key: str, now_ms: int) -> None:
        keys = CommunityKeys(community_id)
        stale = now_ms - self._window_ms  # live: seen after this, exactly as visitors
        ttl_ms = self._window_ms + MINUTE_MS
        pipe = self._client.pipeline(transaction=False)
        for key, member, cap in (
            (keys.automation_names(kind), name, AUTOMATION_MAX_NAMES),
            (keys.automation_clients(kind, name), client_key, AUTOMATION_MAX_CLIENTS),
        ):
            pipe.zadd(key, {member: now_ms})
            pipe.zremrangebyscore(key, "-inf", stale)
            pipe.zremrangebyrank(key, 0, -(cap + 1))  # the oldest go first
            pipe.pexpire(key, ttl_ms)
        pipe.execute()

    @live_state_errors
    def live_counts(self, community_id: str, now_ms: int, *, limit: int = 50) -> AutomationNow:
        """Distinct clients per class and per name seen within the window, most clients first."""
        keys = CommunityKeys(community_id)
        since = f"({now_ms - self._window_ms}"
        pipe = self._client.pipeline(transaction=False)
        for kind in AUTOMATED_KINDS:
            pipe.zrangebyscore(keys.automation_names(kind), since, "+inf")
        names_by_kind = cast(list[list[str]], pipe.execute())
        pipe = self._client.pipeline(transaction=False)
        for kind, names in zip(AUTOMATED_KINDS, names_by_kind, strict=True):
            for name in names:
                pipe.zcount(keys.automation_clients(kind, name), since, "+inf")
        counts = iter(cast(list[int], pipe.execute()))
        classes = {}
        for kind, names in zip(AUTOMATED_KINDS, names_by_kind, strict=True):
            named = [NamedClients(name=name, clients=int(next(counts))) for name in names]
            named = sorted((n for n in named if n.clients), key=lambda n: (-n.clients, n.name))
            classes[kind] = AutomatedClients(clients=sum(n.clients for n in named), names=named[:limit])
        return AutomationNow(
            community_id=community_id,
            window_seconds=self._window_ms // 1000,
            bots=classes["bot"],
            ai_agents=classes["ai_agent"],
            timestamp=iso(now_ms),
        )


@cached_factory
def get_automation_tracker() -> AutomationTracker:
    return AutomationTracker(get_redis_client(), window_seconds=get_settings().active_window_seconds)
