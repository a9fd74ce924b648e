"""What the alert pass reads and keeps in Redis: the active communities (the cleanup index), each
one's live count and per-minute series, and its alert state (`{c:ID}:alert`)."""

from __future__ import annotations

from typing import Any, cast

from community_tracker.alerts import AlertState, Observation
from community_tracker.factories import cached_factory
from community_tracker.redis.client import get_redis_client
from community_tracker.redis.errors import live_state_errors
from community_tracker.redis.keys import ALERT_STATE_TTL_MS, ALERTS_LOCK_KEY, CommunityKeys, index_key
from community_tracker.redis.scripts import RedisClient
from community_tracker.settings import get_settings
from community_tracker.timeutil import MINUTE_MS, hour_id, minute_of

_STATE_FIELDS = ("kind", "alert_id", "started_ms", "last_breach_ms")


class AlertStateStore:
    def __init__(self, client: RedisClient, *, window_seconds: int = 300, index_shards: int = 16) -> None:
        self._client = client
        self._window_ms = window_seconds * 1000
        self._shards = index_shards

    @live_state_errors
    def active_communities(self) -> list[str]:
        """Every community of the active-community index (what cleanup samples each minute)."""
        pipe = self._client.pipeline(transaction=False)
        for shard in range(self._shards):
            pipe.zrange(index_key(shard), 0, -1)
        return sorted({cid for members in cast(list[list[str]], pipe.execute()) for cid in members})

    @live_state_errors
    def observe(self, minutes: dict[str, int], now_ms: int) -> dict[str, Observation]:
        """Live count now, the `minutes` whole minutes before now (oldest first, 0 where nothing
        was sampled) and the alert state, of each community: one round trip."""
        current = minute_of(now_ms)
        pipe = self._client.pipeline(transaction=False)
        plan: list[tuple[str, list[int], int]] = []
        for cid, count in minutes.items():
            keys = CommunityKeys(cid)
            pipe.zcount(keys.live, f"({now_ms - self._window_ms}", "+inf")
            pipe.hgetall(keys.alert_state)
            wanted = list(range(current - count, current))
            hours = sorted({hour_id(m * MINUTE_MS) for m in wanted})
            for hour in hours:
                pipe.hgetall(keys.series(hour))
            plan.append((cid, wanted, len(hours)))
        answers = iter(cast(list[Any], pipe.execute()))
        observed = {}
        for cid, wanted, hour_count in plan:
            live = int(next(answers))
            state = _state(cast(dict[str, str], next(answers)))
            samples: dict[int, int] = {}
            for _ in range(hour_count):
                samples.update({int(m): int(n) for m, n in cast(dict[str, str], next(answers)).items()})
            observed[cid] = Observation(live=live, series=[samples.get(m, 0) for m in wanted], state=state)
        return observed

    @live_state_errors
    def save_states(self, states: dict[str, AlertState]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for cid, state in states.items():
            key = CommunityKeys(cid).alert_state
            pipe.delete(key)
            if state.kind is not None:
                pipe.hset(key, mapping={f: str(getattr(state, f)) for f in _STATE_FIELDS})
                pipe.pexpire(key, ALERT_STATE_TTL_MS)
        pipe.execute()

    @live_state_errors
    def acquire_lock(self, holder: str, ttl_ms: int) -> bool:
        return bool(self._client.set(ALERTS_LOCK_KEY, holder, nx=True, px=ttl_ms))

    @live_state_errors
    def release_lock(self, holder: str) -> None:
        if self._client.get(ALERTS_LOCK_KEY) == holder:
            self._client.delete(ALERTS_LOCK_KEY)


def _state(raw: dict[str, str]) -> AlertState:
    if raw.get("kind") not in ("spike", "drop"):
        return AlertState()
    return AlertState(
        kind=raw["kind"],
        alert_id=raw.get("alert_id"),
        started_ms=int(raw["started_ms"]) if raw.get("started_ms", "").isdigit() else None,
        last_breach_ms=int(raw["last_breach_ms"]) if raw.get("last_breach_ms", "").isdigit() else None,
    )


@cached_factory
def get_alert_state_store() -> AlertStateStore:
    settings = get_settings()
    return AlertStateStore(
        get_redis_client(), window_seconds=settings.active_window_seconds, index_shards=settings.index_shards
    )
