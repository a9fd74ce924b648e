"""The active-community index and each community's share of a cleanup pass, in Redis.

Communities with live visitors (or open peak buckets) are registered in one of `index_shards`
sorted sets by when they are next due; cleanup claims due ones in batches and prunes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from redis import Redis

from community_tracker.factories import cached_factory
from community_tracker.models import CleanupResult, Peak
from community_tracker.redis.client import get_redis_client
from community_tracker.redis.errors import live_state_errors
from community_tracker.redis.keys import (
    BUCKET_MARGIN_MS,
    CLEANUP_CURSOR_KEY,
    SERIES_HOURS,
    CommunityKeys,
    index_key,
    index_shard,
)
from community_tracker.redis.live_state import bucket_descriptor, bucket_figures, take_checkpoint
from community_tracker.redis.scripts import (
    ClaimDueArgs,
    ClaimDueKeys,
    ClusterLuaScripts,
    LuaScripts,
    PruneArgs,
    PruneKeys,
    RedisClient,
    RolledArgs,
    RolledKeys,
)
from community_tracker.settings import get_settings
from community_tracker.timeutil import (
    HOUR_MS,
    PERIODS,
    Bucket,
    Calendar,
    Period,
    calendar_from_json,
    hour_id,
    iso,
    minute_of,
    seconds,
    to_ms,
    zone_calendar,
)


def _closed_bucket(member: str) -> Bucket:
    """A member of a community's CLOSED set, "period|key|start|end" (key: "label@zone")."""
    period, key, start, end = member.split("|")
    label, _, zone = key.partition("@")
    return Bucket(cast(Period, period), label, int(start), int(end), zone)


def _member(peak: Peak) -> tuple[str, Bucket]:
    start, end = to_ms(datetime.fromisoformat(peak.start)), to_ms(datetime.fromisoformat(peak.end))
    found = Bucket(peak.period, peak.bucket, start, end, peak.time_zone)
    return f"{peak.period}|{bucket_descriptor(found)}", found


class CleanupIndex:
    """The cleanup's view of Redis: which communities are due, and pruning them."""

    def __init__(
        self,
        client: RedisClient,
        *,
        window_seconds: int = 300,
        index_shards: int = 16,
        default_time_zone: str = "UTC",
        checkpoint_seconds: int = 0,
    ) -> None:
        self._client = client
        self._checkpoint_ms = checkpoint_seconds * 1000  # 0: no checkpoints
        self._scripts = LuaScripts(client) if isinstance(client, Redis) else ClusterLuaScripts(client)
        self.window_ms = window_seconds * 1000
        self.index_shards = index_shards
        self._default_calendar = zone_calendar(default_time_zone)

    @live_state_errors
    def cleanup_stale_visitors(self, community_id: str, now_ms: int) -> CleanupResult:
        """Removes the community's stale visitors, adjusting every derived count atomically."""
        return self.cleanup_communities([community_id], now_ms)[0]

    def _registrations(self, community_ids: Sequence[str]) -> list[tuple[str, Calendar]]:
        """Each community's registration as Redis holds it (one pipeline): its calendar tells the
        buckets of now; a community never installed follows the default zone."""
        pipe = self._client.pipeline(transaction=False)
        for community_id in community_ids:
            pipe.hmget(CommunityKeys(community_id).meta, ["version", "calendar"])
        registrations = []
        for version, calendar in pipe.execute():
            registrations.append((version or "", calendar_from_json(calendar) if calendar else self._default_calendar))
        return registrations

    @live_state_errors
    def cleanup_communities(self, community_ids: Sequence[str], now_ms: int) -> list[CleanupResult]:
        """`cleanup_stale_visitors` for many communities, pipelined on a single node. Each result
        also carries the closed buckets still waiting to be written to DynamoDB, with their figures,
        and until when the community must stay indexed for one."""
        if not community_ids:
            return []
        calls: list[tuple[Sequence[str], Sequence[Any]]] = []
        current: list[list[Bucket]] = []
        for community_id, (version, calendar) in zip(community_ids, self._registrations(community_ids), strict=True):
            keys = CommunityKeys(community_id)
            day, week, month = (calendar.bucket(period, now_ms) for period in PERIODS)
            current.append([day, week, month])
            script_keys = PruneKeys(
                **keys.state_fields,
                series=keys.series(hour_id(now_ms)),
                meta=keys.meta,
                closed=keys.closed,
                peak_day=keys.peak(day),
                peak_week=keys.peak(week),
                peak_month=keys.peak(month),
                unique_day=keys.unique(day),
                unique_week=keys.unique(week),
                unique_month=keys.unique(month),
            )
            args = PruneArgs(
                cutoff_ms=now_ms - self.window_ms,
                minute=minute_of(now_ms),
                series_expire_at=seconds(now_ms + (SERIES_HOURS + 1) * HOUR_MS),
                community_version=version,
                day_bucket=bucket_descriptor(day),
                week_bucket=bucket_descriptor(week),
                month_bucket=bucket_descriptor(month),
                window_ms=self.window_ms,
                bucket_margin_ms=BUCKET_MARGIN_MS,
                checkpoint_before_ms=now_ms - self._checkpoint_ms if self._checkpoint_ms else -1,
            )
            calls.append((script_keys.values(), args.values()))
        pruned = self._scripts.call_many("prune", calls)
        closed = [[_closed_bucket(member) for member in raw[3]] for raw in pruned]
        figures = self._closed_figures(community_ids, closed)
        results = []
        for community_id, raw, community_figures, buckets in zip(community_ids, pruned, figures, current, strict=True):
            removed, remaining, cleared, _members, open_end, _followed, checkpoint_due = raw
            results.append(
                CleanupResult(
                    removed=removed,
                    remaining=remaining,
                    index_flag_cleared=bool(cleared),
                    unrolled_peaks=[peak for peak in community_figures if peak is not None],
                    open_bucket_end=int(open_end) if open_end is not None else None,
                    checkpoint=take_checkpoint(self._client, CommunityKeys(community_id), buckets, now_ms)
                    if checkpoint_due
                    else None,
                )
            )
        self._forget_empty(community_ids, closed, figures)
        return results

    def _closed_figures(self, community_ids: Sequence[str], closed: list[list[Bucket]]) -> list[list[Peak | None]]:
        """Peak and unique visitors of each closed bucket (one pipeline); None: nobody came."""
        wanted = [
            (CommunityKeys(community_id), found)
            for community_id, buckets in zip(community_ids, closed, strict=True)
            for found in buckets
        ]
        replies = iter(bucket_figures(self._client, [(keys.peak(found), keys.unique(found)) for keys, found in wanted]))
        figures: list[list[Peak | None]] = []
        for buckets in closed:
            community_figures: list[Peak | None] = []
            for found in buckets:
                count, at, unique = next(replies)
                community_figures.append(Peak.at(found, count, iso(at), unique) if count is not None and at else None)
            figures.append(community_figures)
        return figures

    def _forget_empty(
        self, community_ids: Sequence[str], closed: list[list[Bucket]], figures: list[list[Peak | None]]
    ) -> None:
        """Closed buckets nobody came to (or whose keys expired) have nothing to write: they leave
        CLOSED at once."""
        calls = [
            self._rolled_call(community_id, f"{found.period}|{bucket_descriptor(found)}", found, 0, 0)
            for community_id, buckets, community_figures in zip(community_ids, closed, figures, strict=True)
            for found, peak in zip(buckets, community_figures, strict=True)
            if peak is None
        ]
        if calls:
            self._scripts.call_many("rolled", calls)

    @staticmethod
    def _rolled_call(
        community_id: str, member: str, found: Bucket, count: int, unique: int
    ) -> tuple[list[str], list[Any]]:
        keys = CommunityKeys(community_id)
        script_keys = RolledKeys(
            **keys.state_fields, closed=keys.closed, peak=keys.peak(found), unique=keys.unique(found)
        )
        return script_keys.values(), RolledArgs(member=member, count=count, unique_visitors=unique).values()

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
    def checkpoint_failed(self, community_id: str) -> None:
        """The checkpoint was not saved: the next pass takes it again."""
        self._client.hset(CommunityKeys(community_id).meta, mapping={"dirty": 1, "checkpoint_ms": 0})

    @live_state_errors
    def mark_peak_rolled(self, community_id: str, peak: Peak) -> bool:
        """The bucket was written with these figures: it stops waiting, unless a late beacon raised
        them since (then it waits for the next pass). Creates no key."""
        member, found = _member(peak)
        keys, args = self._rolled_call(community_id, member, found, peak.count, peak.unique_visitors or 0)
        return bool(self._scripts.call("rolled", keys, args))


@cached_factory
def get_cleanup_index() -> CleanupIndex:
    settings = get_settings()
    return CleanupIndex(
        get_redis_client(),
        window_seconds=settings.active_window_seconds,
        index_shards=settings.index_shards,
        default_time_zone=settings.default_time_zone,
        checkpoint_seconds=settings.checkpoint_seconds,
    )
