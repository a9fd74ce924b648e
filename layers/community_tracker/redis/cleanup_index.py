"""The active-community index and each community's share of a cleanup pass, in Redis.

Communities with live visitors (or open peak buckets) are registered in one of `index_shards`
sorted sets by when they are next due; cleanup claims due ones in batches and prunes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from redis import Redis

from community_tracker.factories import cached_factory
from community_tracker.models import CleanupResult, Peak
from community_tracker.redis.client import get_redis_client
from community_tracker.redis.errors import live_state_errors
from community_tracker.redis.keys import CLEANUP_CURSOR_KEY, SERIES_HOURS, CommunityKeys, index_key, index_shard
from community_tracker.redis.scripts import (
    ClaimDueArgs,
    ClaimDueKeys,
    ClusterLuaScripts,
    LuaScripts,
    PruneArgs,
    PruneKeys,
    RedisClient,
)
from community_tracker.settings import get_settings
from community_tracker.timeutil import (
    HOUR_MS,
    PERIODS,
    Bucket,
    bucket,
    hour_id,
    iso,
    minute_of,
    previous_bucket,
    seconds,
)


def _closed_buckets(now_ms: int) -> list[Bucket]:
    # The keys of a bucket outlive it by BUCKET_MARGIN_MS: two closed days can still be there.
    yesterday = previous_bucket("day", now_ms)
    return [
        yesterday,
        previous_bucket("day", yesterday.start_ms),
        previous_bucket("week", now_ms),
        previous_bucket("month", now_ms),
    ]


class CleanupIndex:
    """The cleanup's view of Redis: which communities are due, and pruning them."""

    def __init__(self, client: RedisClient, *, window_seconds: int = 300, index_shards: int = 16) -> None:
        self._client = client
        self._scripts = LuaScripts(client) if isinstance(client, Redis) else ClusterLuaScripts(client)
        self.window_ms = window_seconds * 1000
        self.index_shards = index_shards

    @live_state_errors
    def cleanup_stale_visitors(self, community_id: str, now_ms: int) -> CleanupResult:
        """Removes the community's stale visitors, adjusting every derived count atomically."""
        return self.cleanup_communities([community_id], now_ms)[0]

    @live_state_errors
    def cleanup_communities(self, community_ids: Sequence[str], now_ms: int) -> list[CleanupResult]:
        """`cleanup_stale_visitors` for many communities, pipelined on a single node. Each result
        also says which closed peak buckets still wait for their rollup, and until when the
        community must stay indexed for one."""
        closed = _closed_buckets(now_ms)
        current = [bucket(period, now_ms) for period in PERIODS]
        args = PruneArgs(
            cutoff_ms=now_ms - self.window_ms,
            minute=minute_of(now_ms),
            series_expire_at=seconds(now_ms + (SERIES_HOURS + 1) * HOUR_MS),
        ).values()
        calls: list[tuple[Sequence[str], Sequence[Any]]] = []
        for community_id in community_ids:
            keys = CommunityKeys(community_id)
            yesterday, day_before, last_week, last_month = (keys.peak(b) for b in closed)
            peak_day, peak_week, peak_month = (keys.peak(b) for b in current)
            script_keys = PruneKeys(
                **keys.state_fields,
                series=keys.series(hour_id(now_ms)),
                closed_peak_yesterday=yesterday,
                closed_peak_day_before=day_before,
                closed_peak_last_week=last_week,
                closed_peak_last_month=last_month,
                peak_day=peak_day,
                peak_week=peak_week,
                peak_month=peak_month,
            )
            calls.append((script_keys.values(), args))
        results = []
        for raw in self._scripts.call_many("prune", calls):
            removed, remaining, cleared, closed_fields, current_exists = raw
            results.append(
                CleanupResult(
                    removed=removed,
                    remaining=remaining,
                    index_flag_cleared=bool(cleared),
                    unrolled_peaks=[
                        Peak(period=b.period, bucket=b.id, count=int(count), reached_at=iso(int(at)))
                        for b, (count, at, rolled) in zip(closed, closed_fields, strict=True)
                        if count is not None and rolled is None
                    ],
                    open_bucket_end=min(
                        (b.end_ms for b, exists in zip(current, current_exists, strict=True) if exists),
                        default=None,
                    ),
                )
            )
        return results

    @live_state_errors
    def schedule_community(self, community_id: str, due_ms: int) -> None:
        """(Re)registers a community in its index shard, due for cleanup at `due_ms`."""
        shard = index_shard(community_id, self.index_shards)
        self._client.zadd(index_key(shard), {community_id: due_ms})

    @live_state_errors
    def unindex_community(self, community_id: str) -> None:
        shard = index_shard(community_id, self.index_shards)
        self._client.zrem(index_key(shard), community_id)

    @live_state_errors
    def is_index_flag_set(self, community_id: str) -> bool:
        """True once a visit has (re)registered the community since its last empty cleanup."""
        return bool(self._client.hexists(CommunityKeys(community_id).counts, "indexed"))

    @live_state_errors
    def claim_due_communities(self, shard: int, now_ms: int, limit: int, lease_ms: int) -> list[str]:
        keys = ClaimDueKeys(index=index_key(shard))
        args = ClaimDueArgs(now_ms=now_ms, limit=limit, due_ms=now_ms + lease_ms)
        claimed: list[str] = self._scripts.call("claim_due", keys.values(), args.values())
        return claimed

    @live_state_errors
    def indexed_communities(self, shard: int) -> dict[str, int]:
        """Every community of one shard with its next due time (for tests and operators)."""
        members = cast(list[tuple[str, float]], self._client.zrange(index_key(shard), 0, -1, withscores=True))
        return {community: int(score) for community, score in members}

    @live_state_errors
    def next_cleanup_shard(self) -> int:
        """Rotates the shard a cleanup pass starts from, so no shard starves behind another."""
        return int(self._client.incr(CLEANUP_CURSOR_KEY)) % self.index_shards

    @live_state_errors
    def mark_peak_rolled(self, community_id: str, peak: Peak) -> None:
        self._client.hset(CommunityKeys(community_id).peak_key(peak.period, peak.bucket), "rolled", "1")


@cached_factory
def get_cleanup_index() -> CleanupIndex:
    settings = get_settings()
    return CleanupIndex(
        get_redis_client(),
        window_seconds=settings.active_window_seconds,
        index_shards=settings.index_shards,
    )
