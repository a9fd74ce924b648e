"""The active-community index and each community's share of a cleanup pass, in Redis.

Communities with live visitors (or open peak buckets) are registered in one of `index_shards`
sorted sets by when they are next due; cleanup claims due ones in batches and prunes them. A split
community (README, "One community in N parts") is pruned part by part, then the other parts'
calendar figures are folded into part 0's (`fold.lua`), which are the community's: its checkpoint
and rollups are part 0's, and the other parts' closed buckets are let go.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from redis import Redis
from redis.client import NEVER_DECODE

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
    parts_keys,
)
from community_tracker.redis.live_state import bucket_descriptor, bucket_figures, take_checkpoint
from community_tracker.redis.scripts import (
    ClaimDueArgs,
    ClaimDueKeys,
    ClusterLuaScripts,
    FoldArgs,
    FoldKeys,
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
        self._parts: dict[str, int] = {}  # community -> its parts, as its last cleanup found them

    @live_state_errors
    def cleanup_stale_visitors(self, community_id: str, now_ms: int) -> CleanupResult:
        """Removes the community's stale visitors, adjusting every derived count atomically."""
        return self.cleanup_communities([community_id], now_ms)[0]

    def _registrations(self, community_ids: Sequence[str]) -> list[tuple[str, Calendar, int]]:
        """Each community's registration as Redis holds it (one pipeline): its calendar tells the
        buckets of now; a community never installed follows the default zone."""
        pipe = self._client.pipeline(transaction=False)
        for community_id in community_ids:
            pipe.hmget(CommunityKeys(community_id).meta, ["version", "calendar", "parts"])
        registrations = []
        for community_id, (version, calendar, parts) in zip(community_ids, pipe.execute(), strict=True):
            self._parts[community_id] = int(parts or 1)
            registrations.append(
                (version or "", calendar_from_json(calendar) if calendar else self._default_calendar, int(parts or 1))
            )
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
        versions: list[str] = []
        spans: list[range] = []  # each community's calls (one per part)
        for community_id, (version, calendar, parts) in zip(
            community_ids, self._registrations(community_ids), strict=True
        ):
            day, week, month = (calendar.bucket(period, now_ms) for period in PERIODS)
            current.append([day, week, month])
            versions.append(version)
            spans.append(range(len(calls), len(calls) + parts))
            for keys in parts_keys(community_id, parts):
                calls.append(self._prune_call(keys, version, [day, week, month], now_ms))
        pruned = self._scripts.call_many("prune", calls)
        for community_id, span, version, buckets in zip(community_ids, spans, versions, current, strict=True):
            if len(span) > 1:
                total = sum(int(pruned[i][1]) for i in span)
                self._fold(community_id, len(span), version, buckets, total, now_ms)
        firsts = [pruned[span.start] for span in spans]
        closed = [[_closed_bucket(member) for member in raw[3]] for raw in firsts]
        figures = self._closed_figures(community_ids, closed)
        results = []
        for community_id, raw, span, community_figures, buckets in zip(
            community_ids, firsts, spans, figures, current, strict=True
        ):
            _removed, _remaining, _cleared, _members, open_end, _followed, checkpoint_due = raw
            answers = [pruned[i] for i in span]
            results.append(
                CleanupResult(
                    removed=sum(int(a[0]) for a in answers),
                    remaining=sum(int(a[1]) for a in answers),
                    # Cleared in part 0 with every part empty: the community may leave the index.
                    index_flag_cleared=bool(raw[2]) and not any(int(a[1]) for a in answers),
                    unrolled_peaks=[peak for peak in community_figures if peak is not None],
                    open_bucket_end=int(open_end) if open_end is not None else None,
                    checkpoint=take_checkpoint(self._client, CommunityKeys(community_id), buckets, now_ms)
                    if checkpoint_due
                    else None,
                )
            )
        self._forget_empty(community_ids, closed, figures)
        self._let_go_of_parts(community_ids, spans)
        return results

    def _prune_call(
        self, keys: CommunityKeys, version: str, buckets: Sequence[Bucket], now_ms: int
    ) -> tuple[list[str], list[Any]]:
        day, week, month = buckets
        script_keys = PruneKeys(
            **keys.state_fields, series=keys.series(hour_id(now_ms)), **keys.calendar_fields(buckets)
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
            # Part 0's checkpoint holds the community's figures; the other parts take none.
            checkpoint_before_ms=now_ms - self._checkpoint_ms if self._checkpoint_ms and not keys.part else -1,
        )
        return script_keys.values(), args.values()

    def _fold(
        self, community_id: str, parts: int, version: str, buckets: Sequence[Bucket], total: int, now_ms: int
    ) -> None:
        """The other parts' counts at each bucket's start and their sketches (one pipeline), folded
        into part 0's figures (fold.lua) with the live count of all parts."""
        raw: dict[str, Any] = {NEVER_DECODE: []}
        pipe: Any = self._client.pipeline(transaction=False)
        for keys in parts_keys(community_id, parts)[1:]:
            for found in buckets:
                pipe.hget(keys.peak(found), "opened")
            for found in buckets:
                pipe.execute_command("GET", keys.unique(found), **raw)
        replies = pipe.execute()
        opened = [0, 0, 0]
        sketches: list[Any] = []
        for first in range(0, len(replies), 6):
            opened = [n + int(m or 0) for n, m in zip(opened, replies[first : first + 3], strict=True)]
            sketches.extend(sketch or b"" for sketch in replies[first + 3 : first + 6])
        keys = CommunityKeys(community_id)
        day, week, month = buckets
        script_keys = FoldKeys(**keys.state_fields, **keys.calendar_fields(buckets))
        args = FoldArgs(
            now_ms=now_ms,
            community_version=version,
            day_bucket=bucket_descriptor(day),
            week_bucket=bucket_descriptor(week),
            month_bucket=bucket_descriptor(month),
            bucket_margin_ms=BUCKET_MARGIN_MS,
            total=total,
            others_opened_day=opened[0],
            others_opened_week=opened[1],
            others_opened_month=opened[2],
        )
        self._scripts.call("fold", script_keys.values(), [*args.values(), *sketches])

    def _let_go_of_parts(self, community_ids: Sequence[str], spans: Sequence[range]) -> None:
        """The closed buckets of a split community's other parts: their figures were folded into part
        0's, which cleanup rolls up; theirs are never written."""
        split = [(c, len(span)) for c, span in zip(community_ids, spans, strict=True) if len(span) > 1]
        if not split:
            return
        pipe = self._client.pipeline(transaction=False)
        for community_id, parts in split:
            for keys in parts_keys(community_id, parts)[1:]:
                pipe.delete(keys.closed)
        pipe.execute()

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
        """True once a visit has (re)registered the community (any of its parts) since its last
        empty cleanup."""
        pipe = self._client.pipeline(transaction=False)
        for keys in parts_keys(community_id, self._parts.get(community_id, 1)):
            pipe.hexists(keys.counts, "indexed")
        return any(pipe.execute())

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
