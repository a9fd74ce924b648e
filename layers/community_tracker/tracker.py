"""The live visitor tracker: the seed's operations on the Redis data model of design §4.

Every write is one script on one community's keys; every read first drops stale visitors, so each
answer is exact whether or not the scheduled cleanup has run. The caller passes `now_ms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from redis import Redis

from community_tracker.models import (
    DROP_REASONS,
    AddVisitorResult,
    CrossDivisionPair,
    CrossDivisionStats,
    DivisionCount,
    DropCounts,
    DropReason,
    Peak,
    PeakCounts,
    Summary,
    TimelinePoint,
    UniqueVisitors,
    Visit,
    Visitor,
    VisitorPage,
    VisitorStats,
    VisitOutcome,
    VisitStatus,
    authenticated_visitor_key,
    percentage,
)
from community_tracker.redis_client import create_redis_client
from community_tracker.redis_keys import (
    CLEANUP_CURSOR_KEY,
    CommunityKeys,
    index_key,
    index_shard,
    user_communities_key,
)
from community_tracker.redis_scripts import LuaScripts, RedisClient
from community_tracker.settings import get_settings
from community_tracker.timeutil import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    PERIODS,
    Bucket,
    bucket,
    hour_id,
    iso,
    minute_of,
    previous_bucket,
)

_COUNTED = 1
_STATUSES: dict[int, VisitStatus] = {_COUNTED: "counted", 2: "duplicate", 3: "rate_limited", 4: "not_present"}
# Clients are built with decode_responses=True, so replies are str where redis-py's types also
# allow bytes: the casts below say so.
# Calendar keys live a little longer than their bucket, so cleanup can roll a closed peak up.
_BUCKET_MARGIN_MS = 2 * DAY_MS
_HISTORY_MS = 35 * DAY_MS  # per-day pair history and drop counters
SERIES_HOURS = 48
_PAIR_SEPARATOR = ">"


def _seconds(ms: int) -> int:
    return ms // 1000


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _pairs(flat: Sequence[str]) -> list[tuple[str, int]]:
    return [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]


def _decode_visitor(record: str, last_activity_ms: int) -> Visitor:
    """Python side of the record codec in community.lua."""
    joined, pages, authenticated, _community_division, division, user_id = record.split("|", 5)
    is_authenticated = authenticated == "1"
    return Visitor(
        user_id=user_id if is_authenticated else None,
        is_authenticated=is_authenticated,
        division_id=division or None,
        joined_at=iso(int(joined)),
        pages_viewed=int(pages),
        last_activity=iso(last_activity_ms),
    )


def _pair_breakdown(pairs: list[tuple[str, int]]) -> list[CrossDivisionPair]:
    """`from>to` counts as pairs, largest first."""
    breakdown = []
    for pair, count in pairs:
        source, _, target = pair.partition(_PAIR_SEPARATOR)
        breakdown.append(CrossDivisionPair(from_division=source, to_division=target, count=count))
    return sorted(breakdown, key=lambda p: (-p.count, p.from_division, p.to_division))


@dataclass(frozen=True, slots=True)
class CleanupResult:
    removed: int
    remaining: int
    index_flag_cleared: bool
    unrolled_peaks: list[Peak]  # closed buckets still in Redis, not yet written to history
    open_bucket_end: int | None  # end of the earliest current bucket holding a peak


@dataclass(frozen=True, slots=True)
class _State:
    """One `read_state` answer, from which every aggregate shape is built."""

    total: int
    authenticated: int
    anonymous: int
    cross: int
    divisions: list[tuple[str, int]]
    pairs: list[tuple[str, int]]
    peaks: list[Peak]
    unique: UniqueVisitors
    series: dict[int, int]

    def stats(self) -> VisitorStats:
        return VisitorStats(
            total_visitors=self.total,
            authenticated_visitors=self.authenticated,
            anonymous_visitors=self.anonymous,
            authenticated_percentage=percentage(self.authenticated, self.total),
            anonymous_percentage=percentage(self.anonymous, self.total),
        )

    def division_breakdown(self) -> list[DivisionCount]:
        counts = [DivisionCount(division_id=d or None, count=n) for d, n in self.divisions]
        return sorted(counts, key=lambda c: (-c.count, c.division_id is None, c.division_id or ""))

    def cross_division(self) -> CrossDivisionStats:
        return CrossDivisionStats(
            total_visitors=self.total,
            cross_division_visits=self.cross,
            cross_division_percentage=percentage(self.cross, self.total),
            breakdown=_pair_breakdown(self.pairs),
        )

    def peak_counts(self) -> PeakCounts:
        daily, weekly, monthly = (p.count for p in self.peaks)
        return PeakCounts(daily=daily, weekly=weekly, monthly=monthly)


class VisitorTracker:
    """Live presence of every community, on one Redis node or a Redis Cluster."""

    def __init__(
        self,
        client: RedisClient,
        *,
        window_seconds: int = 300,
        dedup_seconds: int = 600,
        rate_limit_per_minute: int = 0,
        index_shards: int = 16,
    ) -> None:
        self._client = client
        self._scripts = LuaScripts(client)
        # On one node a script may touch any key, so the per-user set is updated by the script
        # itself; a cluster keeps that set in another slot, which costs a second round trip.
        self._single_node = isinstance(client, Redis)
        self.window_ms = window_seconds * 1000
        # The per-user set outlives the window a little, then expires with the user's last visit.
        self._user_set_ttl_ms = self.window_ms + MINUTE_MS
        self._dedup_seconds = dedup_seconds
        self._rate_limit = rate_limit_per_minute
        self.index_shards = index_shards

    @property
    def client(self) -> RedisClient:
        return self._client

    # -- writes ---------------------------------------------------------------------------------

    def add_visitor(self, visit: Visit, now_ms: int) -> VisitOutcome:
        """A page view: the visitor joins (or stays) and its page count goes up by one."""
        return self._record(visit, now_ms, pages=1, must_be_present=False)

    def update_visitor_activity(self, visit: Visit, now_ms: int, *, increment_pages: bool = False) -> VisitOutcome:
        """Activity of a visitor already present (a heartbeat); `not_present` if it is not live."""
        return self._record(visit, now_ms, pages=int(increment_pages), must_be_present=True)

    def _record_call(
        self, visit: Visit, now_ms: int, *, pages: int, must_be_present: bool
    ) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV of record.lua for one beacon."""
        keys = CommunityKeys(visit.community_id)
        day, week, month = (bucket(period, now_ms) for period in PERIODS)
        minute = minute_of(now_ms)
        visitor = visit.visitor
        script_keys = [
            *keys.state,
            keys.peak(day),
            keys.peak(week),
            keys.peak(month),
            keys.unique(day),
            keys.unique(week),
            keys.unique(month),
            keys.pair_history(day.id),
            keys.series(hour_id(now_ms)),
            keys.drops(day.id),
            keys.event(visit.event_id or ""),
            keys.rate(visit.client_key or "", minute),
        ]
        if visitor.user_id is not None and self._single_node:
            script_keys.append(user_communities_key(visitor.user_id))
        args: list[str | int] = [
            now_ms,
            now_ms - self.window_ms,
            visitor.key,
            pages,
            int(must_be_present),
            int(visitor.is_authenticated),
            visit.community_division or "",
            visitor.division_id or "",
            visitor.user_id or "",
            visit.merge_key or "",
            int(visit.event_id is not None),
            self._dedup_seconds,
            self._rate_limit if visit.client_key else 0,
            minute,
            *(_seconds(b.end_ms + _BUCKET_MARGIN_MS) for b in (day, week, month)),
            _seconds(now_ms + (SERIES_HOURS + 1) * HOUR_MS),
            _seconds(day.end_ms + _HISTORY_MS),
            visit.community_id,
            self._user_set_ttl_ms,
        ]
        return script_keys, args

    def _record(self, visit: Visit, now_ms: int, *, pages: int, must_be_present: bool) -> VisitOutcome:
        script_keys, args = self._record_call(visit, now_ms, pages=pages, must_be_present=must_be_present)
        raw = self._scripts.call("record", script_keys, args)
        user_id = visit.visitor.user_id
        if user_id is not None and not self._single_node and raw[0] == _COUNTED:
            pipe = self._client.pipeline(transaction=False)
            pipe.zadd(user_communities_key(user_id), {visit.community_id: now_ms})
            pipe.pexpire(user_communities_key(user_id), self._user_set_ttl_ms)
            pipe.execute()
        return self._outcome(visit, now_ms, raw)

    def _outcome(self, visit: Visit, now_ms: int, raw: list[Any]) -> VisitOutcome:
        status, count, needs_index, recorded_at = raw
        if needs_index:
            self.schedule_community(visit.community_id, 0)
        visitor_division = visit.visitor.division_id
        community_division = visit.community_division
        # Built from values this method controls, so pydantic's validation is skipped (hot path).
        return VisitOutcome.model_construct(
            status=_STATUSES[status],
            result=AddVisitorResult.model_construct(
                current_count=count,
                is_cross_division=bool(
                    visitor_division and community_division and visitor_division != community_division
                ),
                visitor_division=visitor_division,
                community_division=community_division,
                timestamp=iso(now_ms),
            ),
            recorded_at_ms=int(recorded_at),
        )

    def add_visitors(self, visits: Sequence[Visit], now_ms: int) -> list[VisitOutcome]:
        """Many page views at once (imports, load tests, benchmarks' set-up): one pipeline on a
        single node. The same as calling `add_visitor` for each, in order."""
        if not self._single_node:
            return [self.add_visitor(v, now_ms) for v in visits]
        calls = [self._record_call(v, now_ms, pages=1, must_be_present=False) for v in visits]
        return [
            self._outcome(v, now_ms, raw)
            for v, raw in zip(visits, self._scripts.call_many("record", calls), strict=True)
        ]

    def remove_visitor(self, community_id: str, visitor_key: str, now_ms: int, *, user_id: str | None = None) -> int:
        """The visitor leaves (pagehide). Returns the live count afterwards."""
        keys = list(CommunityKeys(community_id).state)
        args: list[str | int] = [now_ms - self.window_ms, visitor_key, community_id]
        if user_id is not None and self._single_node:
            keys.append(user_communities_key(user_id))
        _removed, count = self._scripts.call("remove", keys, args)
        if user_id is not None and not self._single_node:
            self._client.zrem(user_communities_key(user_id), community_id)
        return int(count)

    def record_drop(self, community_id: str, reason: DropReason, now_ms: int) -> None:
        """Counts a beacon that was not counted (bot, invalid) outside the record script."""
        day = bucket("day", now_ms)
        key = CommunityKeys(community_id).drops(day.id)
        pipe = self._client.pipeline(transaction=False)
        pipe.hincrby(key, reason, 1)
        pipe.expireat(key, _seconds(day.end_ms + _HISTORY_MS))
        pipe.execute()

    # -- reads ----------------------------------------------------------------------------------

    def is_user_visiting(self, community_id: str, user_id: str, now_ms: int) -> bool:
        score = self._client.zscore(CommunityKeys(community_id).live, authenticated_visitor_key(user_id))
        return score is not None and score > now_ms - self.window_ms

    def get_user_communities(self, user_id: str, now_ms: int) -> list[str]:
        """Communities the user is visiting now, most recent first."""
        cutoff = now_ms - self.window_ms
        candidates = cast(
            list[str],
            self._client.zrange(user_communities_key(user_id), "+inf", f"({cutoff}", byscore=True, desc=True),
        )
        if not candidates:
            return []
        pipe = self._client.pipeline(transaction=False)
        for community_id in candidates:
            pipe.zscore(CommunityKeys(community_id).live, authenticated_visitor_key(user_id))
        scores = pipe.execute()
        return [c for c, s in zip(candidates, scores, strict=True) if s is not None and s > cutoff]

    def get_visitor_list(self, community_id: str, now_ms: int, *, offset: int = 0, limit: int = 50) -> VisitorPage:
        """Live visitors, most recent activity first; only authenticated ones carry an id."""
        total, page, records = self._scripts.call(
            "list_visitors",
            CommunityKeys(community_id).state,
            [now_ms - self.window_ms, offset, limit],
        )
        visitors = [
            _decode_visitor(record, int(float(page[2 * i + 1])))
            for i, record in enumerate(records)
            if record is not None
        ]
        has_more = offset + len(page) // 2 < total
        return VisitorPage(
            visitors=visitors,
            total_visitors=total,
            next_cursor=str(offset + limit) if has_more else None,
        )

    def _read_state(self, community_id: str, now_ms: int, *, series_hours: int = 0) -> _State:
        keys = CommunityKeys(community_id)
        buckets = [bucket(period, now_ms) for period in PERIODS]
        hours = [hour_id(now_ms - i * HOUR_MS) for i in range(series_hours)]
        raw = self._scripts.call(
            "read_state",
            [
                *keys.state,
                *(keys.peak(b) for b in buckets),
                *(keys.unique(b) for b in buckets),
                *(keys.series(h) for h in hours),
            ],
            [now_ms - self.window_ms],
        )
        total, (auth, anon, cross), divisions, pairs, *peak_fields = raw[:7]
        daily_unique, weekly_unique, monthly_unique, series = raw[7:]
        return _State(
            total=total,
            authenticated=_int(auth),
            anonymous=_int(anon),
            cross=_int(cross),
            divisions=_pairs(divisions),
            pairs=_pairs(pairs),
            peaks=[
                Peak(
                    period=b.period,
                    bucket=b.id,
                    count=_int(count),
                    reached_at=iso(int(at)) if at is not None else None,
                )
                for b, (count, at) in zip(buckets, peak_fields, strict=True)
            ],
            unique=UniqueVisitors(daily=daily_unique, weekly=weekly_unique, monthly=monthly_unique),
            series={int(m): int(n) for flat in series for m, n in _pairs(flat)},
        )

    def get_visitor_stats(self, community_id: str, now_ms: int) -> VisitorStats:
        return self._read_state(community_id, now_ms).stats()

    def get_authenticated_visitor_count(self, community_id: str, now_ms: int) -> int:
        return self._read_state(community_id, now_ms).authenticated

    def get_anonymous_visitor_count(self, community_id: str, now_ms: int) -> int:
        return self._read_state(community_id, now_ms).anonymous

    def get_division_breakdown(self, community_id: str, now_ms: int) -> list[DivisionCount]:
        """Live visitors per home division, largest first; `division_id` None is "unknown"."""
        return self._read_state(community_id, now_ms).division_breakdown()

    def get_cross_division_stats(self, community_id: str, now_ms: int) -> CrossDivisionStats:
        return self._read_state(community_id, now_ms).cross_division()

    def get_peak_counts(self, community_id: str, now_ms: int) -> PeakCounts:
        return self._read_state(community_id, now_ms).peak_counts()

    def get_peaks(self, community_id: str, now_ms: int) -> list[Peak]:
        """Peaks of the current day, ISO week and month, with the time each was reached."""
        return self._read_state(community_id, now_ms).peaks

    def get_unique_visitors(self, community_id: str, now_ms: int) -> UniqueVisitors:
        return self._read_state(community_id, now_ms).unique

    def get_summary(self, community_id: str, now_ms: int, *, timeline_minutes: int = 60) -> Summary:
        """Everything a dashboard needs, from one script call."""
        hours = (timeline_minutes + 59) // 60 + 1
        state = self._read_state(community_id, now_ms, series_hours=hours)
        return Summary(
            community_id=community_id,
            stats=state.stats(),
            divisions=state.division_breakdown(),
            cross_division=state.cross_division(),
            peaks=state.peak_counts(),
            peak_details=state.peaks,
            unique_visitors=state.unique,
            timeline=_timeline(state.series, now_ms, timeline_minutes),
            timestamp=iso(now_ms),
        )

    def get_timeline(self, community_id: str, now_ms: int, *, minutes: int = 60) -> list[TimelinePoint]:
        """Highest live count of each minute, oldest first (at most the last 48 hours)."""
        minutes = max(1, min(minutes, SERIES_HOURS * 60))
        keys = CommunityKeys(community_id)
        pipe = self._client.pipeline(transaction=False)
        for i in range((minutes + 59) // 60 + 1):
            pipe.hgetall(keys.series(hour_id(now_ms - i * HOUR_MS)))
        series = {int(m): int(n) for hour in pipe.execute() for m, n in hour.items()}
        return _timeline(series, now_ms, minutes)

    def get_cross_division_history(self, community_id: str, day_id: str) -> list[CrossDivisionPair]:
        """Cumulative page views per cross-division pair on one day (kept 35 days)."""
        counts = cast(dict[str, str], self._client.hgetall(CommunityKeys(community_id).pair_history(day_id)))
        pairs = [(pair, int(n)) for pair, n in counts.items()]
        return _pair_breakdown(pairs)

    def get_drop_counts(self, community_id: str, now_ms: int) -> DropCounts:
        day = bucket("day", now_ms)
        counts = cast(dict[str, str], self._client.hgetall(CommunityKeys(community_id).drops(day.id)))
        return DropCounts(day=day.id, **{r: int(counts[r]) for r in DROP_REASONS if r in counts})

    # -- cleanup and the active-community index -------------------------------------------------

    def cleanup_stale_visitors(self, community_id: str, now_ms: int) -> CleanupResult:
        """Removes the community's stale visitors, adjusting every derived count atomically."""
        return self.cleanup_communities([community_id], now_ms)[0]

    def cleanup_communities(self, community_ids: Sequence[str], now_ms: int) -> list[CleanupResult]:
        """`cleanup_stale_visitors` for many communities, pipelined on a single node. Each result
        also says which closed peak buckets still wait for their rollup, and until when the
        community must stay indexed for one."""
        closed = _closed_buckets(now_ms)
        current = [bucket(period, now_ms) for period in PERIODS]
        series_expire = _seconds(now_ms + (SERIES_HOURS + 1) * HOUR_MS)
        calls: list[tuple[Sequence[str], Sequence[str | int]]] = []
        for community_id in community_ids:
            keys = CommunityKeys(community_id)
            script_keys = [
                *keys.state,
                keys.series(hour_id(now_ms)),
                *(keys.peak(b) for b in closed),
                *(keys.peak(b) for b in current),
            ]
            calls.append((script_keys, [now_ms - self.window_ms, minute_of(now_ms), series_expire]))
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

    def schedule_community(self, community_id: str, due_ms: int) -> None:
        """(Re)registers a community in its index shard, due for cleanup at `due_ms`."""
        shard = index_shard(community_id, self.index_shards)
        self._client.zadd(index_key(shard), {community_id: due_ms})

    def unindex_community(self, community_id: str) -> None:
        shard = index_shard(community_id, self.index_shards)
        self._client.zrem(index_key(shard), community_id)

    def is_index_flag_set(self, community_id: str) -> bool:
        """True once a visit has (re)registered the community since its last empty cleanup."""
        return bool(self._client.hexists(CommunityKeys(community_id).counts, "indexed"))

    def claim_due_communities(self, shard: int, now_ms: int, limit: int, lease_ms: int) -> list[str]:
        claimed: list[str] = self._scripts.call("claim_due", [index_key(shard)], [now_ms, limit, now_ms + lease_ms])
        return claimed

    def indexed_communities(self, shard: int) -> dict[str, int]:
        """Every community of one shard with its next due time (for tests and operators)."""
        members = cast(list[tuple[str, float]], self._client.zrange(index_key(shard), 0, -1, withscores=True))
        return {community: int(score) for community, score in members}

    def next_cleanup_shard(self) -> int:
        """Rotates the shard a cleanup pass starts from, so no shard starves behind another."""
        return int(self._client.incr(CLEANUP_CURSOR_KEY)) % self.index_shards

    def mark_peak_rolled(self, community_id: str, peak: Peak) -> None:
        self._client.hset(CommunityKeys(community_id).peak_key(peak.period, peak.bucket), "rolled", "1")


def _closed_buckets(now_ms: int) -> list[Bucket]:
    # The keys of a bucket outlive it by _BUCKET_MARGIN_MS: two closed days can still be there.
    yesterday = previous_bucket("day", now_ms)
    return [
        yesterday,
        previous_bucket("day", yesterday.start_ms),
        previous_bucket("week", now_ms),
        previous_bucket("month", now_ms),
    ]


def _timeline(series: dict[int, int], now_ms: int, minutes: int) -> list[TimelinePoint]:
    last = minute_of(now_ms)
    return [
        TimelinePoint(minute=iso(m * MINUTE_MS), visitors=series.get(m, 0)) for m in range(last - minutes + 1, last + 1)
    ]


@lru_cache(maxsize=1)
def get_tracker() -> VisitorTracker:
    """The process's tracker; its connections are opened on first use and then reused."""
    settings = get_settings()
    return VisitorTracker(
        create_redis_client(settings),
        window_seconds=settings.active_window_seconds,
        dedup_seconds=settings.dedup_seconds,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        index_shards=settings.index_shards,
    )
