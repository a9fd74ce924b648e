"""The live state of every community in Redis: the seed's writes and reads (README, "Redis data
model").

Every write is one script on one community's keys; every read first drops stale visitors, so each
answer is exact whether or not the scheduled cleanup has run. The caller passes `now_ms`. Driver
errors leave every public method as `LiveStateUnavailable`.

A single node and a Redis Cluster differ in one thing here: on one node a script may touch any
key, so the per-user set of communities is written by the script itself; a cluster keeps it in
another slot (`ClusterVisitorTracker`), which costs a second round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis

from community_tracker.factories import cached_factory
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
    VisitorPage,
    VisitorStats,
    VisitOutcome,
    VisitStatus,
    authenticated_visitor_key,
    is_cross_division,
    percentage,
)
from community_tracker.observability import logger
from community_tracker.redis.client import get_redis_client
from community_tracker.redis.codec import decode_visitor
from community_tracker.redis.errors import DRIVER_ERRORS, live_state_errors
from community_tracker.redis.keys import (
    BUCKET_MARGIN_MS,
    HISTORY_MS,
    RATE_COUNTER_MARGIN_MS,
    SERIES_HOURS,
    USER_SET_MARGIN_MS,
    CommunityKeys,
    event_member,
    index_key,
    index_shard,
    stored_key,
    user_communities_key,
)
from community_tracker.redis.scripts import (
    ClusterLuaScripts,
    HeartbeatArgs,
    HeartbeatKeys,
    ListVisitorsArgs,
    LuaScripts,
    ReadStateArgs,
    RecordArgs,
    RecordKeys,
    RedisClient,
    RemoveArgs,
)
from community_tracker.settings import get_settings
from community_tracker.timeutil import HOUR_MS, MINUTE_MS, PERIODS, bucket, hour_id, iso, minute_of, seconds

_COUNTED = 1
_ELSEWHERE = 6  # heartbeat.lua: not a plain heartbeat of a live connection, record.lua's
_STATUSES: dict[int, VisitStatus] = {
    _COUNTED: "counted",
    2: "duplicate",
    3: "rate_limited",
    4: "not_present",
    5: "too_many_people",
}
# Clients are built with decode_responses=True, so replies are str where redis-py's types also
# allow bytes: the casts below say so.
_PAIR_SEPARATOR = ">"


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _pairs(flat: Sequence[str]) -> list[tuple[str, int]]:
    return [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]


def pair_breakdown(pairs: list[tuple[str, int]]) -> list[CrossDivisionPair]:
    """`from>to` counts as pairs, largest first."""
    breakdown = []
    for pair, count in pairs:
        source, _, target = pair.partition(_PAIR_SEPARATOR)
        breakdown.append(CrossDivisionPair(from_division=source, to_division=target, count=count))
    return sorted(breakdown, key=lambda p: (-p.count, p.from_division, p.to_division))


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
    present: int
    connections: int

    def stats(self) -> VisitorStats:
        return VisitorStats(
            total_visitors=self.total,
            authenticated_visitors=self.authenticated,
            anonymous_visitors=self.anonymous,
            authenticated_percentage=percentage(self.authenticated, self.total),
            anonymous_percentage=percentage(self.anonymous, self.total),
            present_now=self.present,
            connections=self.connections,
        )

    def division_breakdown(self) -> list[DivisionCount]:
        counts = [DivisionCount(division_id=d or None, count=n) for d, n in self.divisions]
        return sorted(counts, key=lambda c: (-c.count, c.division_id is None, c.division_id or ""))

    def cross_division(self) -> CrossDivisionStats:
        return CrossDivisionStats(
            total_visitors=self.total,
            cross_division_visits=self.cross,
            cross_division_percentage=percentage(self.cross, self.total),
            breakdown=pair_breakdown(self.pairs),
        )

    def peak_counts(self) -> PeakCounts:
        daily, weekly, monthly = (p.count for p in self.peaks)
        return PeakCounts(daily=daily, weekly=weekly, monthly=monthly)


class VisitorTracker:
    """Live presence of every community on one Redis node (see `ClusterVisitorTracker`)."""

    def __init__(
        self,
        client: RedisClient,
        *,
        window_seconds: int = 300,
        dedup_seconds: int = 600,
        rate_limit_per_minute: int = 0,
        connection_rate_limit_per_minute: int = 0,
        anonymous_people_per_client: int = 0,
        presence_seconds: int = 65,
        leave_grace_seconds: int = 15,
        index_refresh_seconds: int = 60,
        index_shards: int = 16,
    ) -> None:
        self._client = client
        self._index_shards = index_shards
        self.presence_ms = presence_seconds * 1000
        self.grace_ms = leave_grace_seconds * 1000
        self._connection_rate_limit = connection_rate_limit_per_minute
        self._people_per_client = anonymous_people_per_client
        self._index_refresh_ms = index_refresh_seconds * 1000
        self._scripts = self._scripts_for(client)
        self.window_ms = window_seconds * 1000
        # The per-user set outlives the window a little, then expires with the user's last visit.
        self._user_set_ttl_ms = self.window_ms + USER_SET_MARGIN_MS
        self._dedup_ms = dedup_seconds * 1000
        self._rate_limit = rate_limit_per_minute

    @staticmethod
    def _scripts_for(client: RedisClient) -> LuaScripts:
        return LuaScripts(client)

    @property
    def client(self) -> RedisClient:
        return self._client

    # -- what a single node and a cluster do differently ----------------------------------------

    def _user_set_in_script(self, user_id: str | None) -> str | None:
        """The per-user set's key when the script itself updates it."""
        return user_communities_key(user_id) if user_id is not None else None

    def _after_record(self, visit: Visit, now_ms: int, status: int) -> None:
        """What the record script could not do itself (nothing, on one node)."""

    # -- writes ---------------------------------------------------------------------------------

    @live_state_errors
    def add_visitor(self, visit: Visit, now_ms: int) -> VisitOutcome:
        """A page view: the visitor joins (or stays) and its page count goes up by one."""
        return self._record(visit, now_ms, pages=1, must_be_present=False)

    @live_state_errors
    def update_visitor_activity(self, visit: Visit, now_ms: int, *, increment_pages: bool = False) -> VisitOutcome:
        """Activity of a visitor already present (a heartbeat); `not_present` if it is not live.

        A heartbeat of a live connection whose person was heard today is `heartbeat.lua`, which
        does only that; any other (and one that counts a page) is `record.lua`'s, which then
        costs a second round trip when `heartbeat.lua` sent it on."""
        if not increment_pages:
            raw = self._scripts.call("heartbeat", *self._heartbeat_call(visit, now_ms))
            if raw[0] != _ELSEWHERE:
                self._after_record(visit, now_ms, raw[0])
                return self._outcome(visit, now_ms, raw)
        return self._record(visit, now_ms, pages=int(increment_pages), must_be_present=True)

    def _heartbeat_call(self, visit: Visit, now_ms: int) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of heartbeat.lua for one heartbeat."""
        keys = CommunityKeys(visit.community_id)
        visitor = visit.visitor
        script_keys = HeartbeatKeys(
            **keys.state_fields,
            series=keys.series(hour_id(now_ms)),
            user_communities=self._user_set_in_script(visitor.user_id),
        )
        args = HeartbeatArgs(
            now_ms=now_ms,
            cutoff_ms=now_ms - self.window_ms,
            member=stored_key(visitor.key),
            alt_member=stored_key(visit.alt_key) if visit.alt_key else "",
            connection=stored_key(visit.connection),
            is_authenticated=int(visitor.is_authenticated),
            community_division=visit.community_division or "",
            visitor_division=visitor.division_id or "",
            connection_rate_limit=self._connection_rate_limit,
            minute=minute_of(now_ms),
            series_expire_at=seconds(now_ms + (SERIES_HOURS + 1) * HOUR_MS),
            community_id=visit.community_id,
            user_set_ttl_ms=self._user_set_ttl_ms,
            index_refresh_ms=self._index_refresh_ms,
            day_start_ms=bucket("day", now_ms).start_ms,
        )
        return script_keys.values(), args.values()

    def _record_call(
        self, visit: Visit, now_ms: int, *, pages: int, must_be_present: bool
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of record.lua for one beacon."""
        keys = CommunityKeys(visit.community_id)
        day, week, month = (bucket(period, now_ms) for period in PERIODS)
        minute = minute_of(now_ms)
        visitor = visit.visitor
        script_keys = RecordKeys(
            **keys.state_fields,
            peak_day=keys.peak(day),
            peak_week=keys.peak(week),
            peak_month=keys.peak(month),
            unique_day=keys.unique(day),
            unique_week=keys.unique(week),
            unique_month=keys.unique(month),
            pair_history=keys.pair_history(day.id),
            series=keys.series(hour_id(now_ms)),
            drops=keys.drops(day.id),
            events=keys.events,
            client_rates=keys.rates(minute),
            client_people=keys.client_people(visit.client_key or ""),
            user_communities=self._user_set_in_script(visitor.user_id),
        )
        args = RecordArgs(
            now_ms=now_ms,
            cutoff_ms=now_ms - self.window_ms,
            member=stored_key(visitor.key),
            alt_member=stored_key(visit.alt_key) if visit.alt_key else "",
            connection=stored_key(visit.connection),
            pages=pages,
            must_be_present=int(must_be_present),
            is_authenticated=int(visitor.is_authenticated),
            community_division=visit.community_division or "",
            visitor_division=visitor.division_id or "",
            user_id=visitor.user_id or "",
            # A heartbeat is not deduplicated: repeated, it changes nothing a first one did not.
            event=event_member(visit.event_id) if visit.event_id is not None and pages > 0 else "",
            dedup_ms=self._dedup_ms,
            client_rate_limit=self._rate_limit if visit.client_key else 0,
            connection_rate_limit=self._connection_rate_limit,
            people_per_client=self._people_per_client if visit.client_key else 0,
            minute=minute,
            day_expire_at=seconds(day.end_ms + BUCKET_MARGIN_MS),
            week_expire_at=seconds(week.end_ms + BUCKET_MARGIN_MS),
            month_expire_at=seconds(month.end_ms + BUCKET_MARGIN_MS),
            series_expire_at=seconds(now_ms + (SERIES_HOURS + 1) * HOUR_MS),
            history_expire_at=seconds(day.end_ms + HISTORY_MS),
            community_id=visit.community_id,
            user_set_ttl_ms=self._user_set_ttl_ms,
            rates_expire_at=seconds((minute + 1) * MINUTE_MS + RATE_COUNTER_MARGIN_MS),
            window_ms=self.window_ms,
            presence_ms=self.presence_ms,
            index_refresh_ms=self._index_refresh_ms,
            day_start_ms=day.start_ms,
            client=visit.client_key or "",
        )
        return script_keys.values(), args.values()

    def _record(self, visit: Visit, now_ms: int, *, pages: int, must_be_present: bool) -> VisitOutcome:
        script_keys, args = self._record_call(visit, now_ms, pages=pages, must_be_present=must_be_present)
        raw = self._scripts.call("record", script_keys, args)
        self._after_record(visit, now_ms, raw[0])
        return self._outcome(visit, now_ms, raw)

    def _outcome(self, visit: Visit, now_ms: int, raw: list[Any]) -> VisitOutcome:
        status, count, needs_index, recorded_at = raw
        if needs_index:
            # Due at once; a registration lost on the way (a timeout, a crash) is redone by a later
            # beacon, since record.lua asks again every `index_refresh_seconds`.
            shard = index_key(index_shard(visit.community_id, self._index_shards))
            self._client.zadd(shard, {visit.community_id: 0})
        visitor_division = visit.visitor.division_id
        # Built from values this method controls, so pydantic's validation is skipped (hot path).
        return VisitOutcome.model_construct(
            status=_STATUSES[status],
            result=AddVisitorResult.model_construct(
                current_count=count,
                is_cross_division=is_cross_division(visitor_division, visit.community_division),
                visitor_division=visitor_division,
                community_division=visit.community_division,
                timestamp=iso(now_ms),
            ),
            recorded_at_ms=int(recorded_at),
        )

    @live_state_errors
    def add_visitors(self, visits: Sequence[Visit], now_ms: int) -> list[VisitOutcome]:
        """Many page views at once (imports, load tests, benchmarks' set-up): one pipeline on a
        single node. The same as calling `add_visitor` for each, in order."""
        calls = [self._record_call(v, now_ms, pages=1, must_be_present=False) for v in visits]
        outcomes = []
        for visit, raw in zip(visits, self._scripts.call_many("record", calls), strict=True):
            self._after_record(visit, now_ms, raw[0])
            outcomes.append(self._outcome(visit, now_ms, raw))
        return outcomes

    @live_state_errors
    def update_visitors_activity(self, visits: Sequence[Visit], now_ms: int) -> list[VisitOutcome]:
        """Many heartbeats at once (load tests, benchmarks): the same as `update_visitor_activity`
        for each, in one pipeline on a single node (a second one for those sent on to
        `record.lua`)."""
        raws = self._scripts.call_many("heartbeat", [self._heartbeat_call(v, now_ms) for v in visits])
        elsewhere = [i for i, raw in enumerate(raws) if raw[0] == _ELSEWHERE]
        if elsewhere:
            calls = [self._record_call(visits[i], now_ms, pages=0, must_be_present=True) for i in elsewhere]
            for i, raw in zip(elsewhere, self._scripts.call_many("record", calls), strict=True):
                raws[i] = raw
        outcomes = []
        for visit, raw in zip(visits, raws, strict=True):
            self._after_record(visit, now_ms, raw[0])
            outcomes.append(self._outcome(visit, now_ms, raw))
        return outcomes

    @live_state_errors
    def remove_visitors(self, leaves: Sequence[tuple[str, str]], now_ms: int) -> list[int]:
        """Many leaves at once, `(community_id, connection)` each: the same as `remove_visitor`
        for each, in one pipeline on a single node."""
        calls = [(CommunityKeys(c).state, self._remove_args(connection, now_ms)) for c, connection in leaves]
        return [int(count) for _left, count in self._scripts.call_many("remove", calls)]

    def _remove_args(self, connection: str, now_ms: int) -> list[Any]:
        return RemoveArgs(
            now_ms=now_ms,
            cutoff_ms=now_ms - self.window_ms,
            connection=stored_key(connection),
            grace_ms=self.grace_ms,
            window_ms=self.window_ms,
            presence_ms=self.presence_ms,
        ).values()

    @live_state_errors
    def remove_visitor(self, community_id: str, connection: str, now_ms: int) -> int:
        """One connection leaves (pagehide); it counts for the leave grace, then its person goes
        with it unless another connection is open. Returns the live count afterwards."""
        args = self._remove_args(connection, now_ms)
        _left, count = self._scripts.call("remove", CommunityKeys(community_id).state, args)
        return int(count)

    @live_state_errors
    def event_seen(self, community_id: str, event_id: str, now_ms: int) -> bool:
        """Whether a page view with this event id was recorded within the dedup window."""
        seen = self._client.zscore(CommunityKeys(community_id).events, event_member(event_id))
        return seen is not None and now_ms - seen < self._dedup_ms

    @live_state_errors
    def record_drop(self, community_id: str, reason: DropReason, now_ms: int) -> None:
        """Counts a beacon that was not counted (bot, invalid) outside the record script."""
        day = bucket("day", now_ms)
        key = CommunityKeys(community_id).drops(day.id)
        pipe = self._client.pipeline(transaction=False)
        pipe.hincrby(key, reason, 1)
        pipe.expireat(key, seconds(day.end_ms + HISTORY_MS))
        pipe.execute()

    # -- reads ----------------------------------------------------------------------------------

    @live_state_errors
    def is_user_visiting(self, community_id: str, user_id: str, now_ms: int) -> bool:
        score = self._client.zscore(CommunityKeys(community_id).live, authenticated_visitor_key(user_id))
        return score is not None and score > now_ms - self.window_ms

    @live_state_errors
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

    @live_state_errors
    def get_visitor_list(self, community_id: str, now_ms: int, *, offset: int = 0, limit: int = 50) -> VisitorPage:
        """Live visitors, most recent activity first; only authenticated ones carry an id."""
        args = ListVisitorsArgs(cutoff_ms=now_ms - self.window_ms, offset=offset, limit=limit)
        total, page, records = self._scripts.call("list_visitors", CommunityKeys(community_id).state, args.values())
        visitors = [decode_visitor(record) for record in records if record is not None]
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
            ReadStateArgs(cutoff_ms=now_ms - self.window_ms, present_after_ms=now_ms - self.presence_ms).values(),
        )
        total, (auth, anon, cross), divisions, pairs, *peak_fields = raw[:7]
        daily_unique, weekly_unique, monthly_unique, series, present, connections = raw[7:]
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
            present=present,
            connections=connections,
        )

    @live_state_errors
    def get_visitor_stats(self, community_id: str, now_ms: int) -> VisitorStats:
        return self._read_state(community_id, now_ms).stats()

    @live_state_errors
    def get_authenticated_visitor_count(self, community_id: str, now_ms: int) -> int:
        return self._read_state(community_id, now_ms).authenticated

    @live_state_errors
    def get_anonymous_visitor_count(self, community_id: str, now_ms: int) -> int:
        return self._read_state(community_id, now_ms).anonymous

    @live_state_errors
    def get_division_breakdown(self, community_id: str, now_ms: int) -> list[DivisionCount]:
        """Live visitors per home division, largest first; `division_id` None is "unknown"."""
        return self._read_state(community_id, now_ms).division_breakdown()

    @live_state_errors
    def get_cross_division_stats(self, community_id: str, now_ms: int) -> CrossDivisionStats:
        return self._read_state(community_id, now_ms).cross_division()

    @live_state_errors
    def get_peak_counts(self, community_id: str, now_ms: int) -> PeakCounts:
        return self._read_state(community_id, now_ms).peak_counts()

    @live_state_errors
    def get_peaks(self, community_id: str, now_ms: int) -> list[Peak]:
        """Peaks of the current day, ISO week and month, with the time each was reached."""
        return self._read_state(community_id, now_ms).peaks

    @live_state_errors
    def get_unique_visitors(self, community_id: str, now_ms: int) -> UniqueVisitors:
        return self._read_state(community_id, now_ms).unique

    @live_state_errors
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

    @live_state_errors
    def get_timeline(self, community_id: str, now_ms: int, *, minutes: int = 60) -> list[TimelinePoint]:
        """Highest live count of each minute, oldest first (at most the last 48 hours)."""
        minutes = max(1, min(minutes, SERIES_HOURS * 60))
        keys = CommunityKeys(community_id)
        pipe = self._client.pipeline(transaction=False)
        for i in range((minutes + 59) // 60 + 1):
            pipe.hgetall(keys.series(hour_id(now_ms - i * HOUR_MS)))
        series = {int(m): int(n) for hour in pipe.execute() for m, n in hour.items()}
        return _timeline(series, now_ms, minutes)

    @live_state_errors
    def get_cross_division_history(self, community_id: str, day_id: str) -> list[CrossDivisionPair]:
        """Cumulative page views per cross-division pair on one day (kept 35 days)."""
        counts = cast(dict[str, str], self._client.hgetall(CommunityKeys(community_id).pair_history(day_id)))
        pairs = [(pair, int(n)) for pair, n in counts.items()]
        return pair_breakdown(pairs)

    @live_state_errors
    def get_drop_counts(self, community_id: str, now_ms: int) -> DropCounts:
        day = bucket("day", now_ms)
        counts = cast(dict[str, str], self._client.hgetall(CommunityKeys(community_id).drops(day.id)))
        return DropCounts(day=day.id, **{r: int(counts[r]) for r in DROP_REASONS if r in counts})


class ClusterVisitorTracker(VisitorTracker):
    """On a Redis Cluster: the per-user set lives in the user's slot, written after the script."""

    @staticmethod
    def _scripts_for(client: RedisClient) -> LuaScripts:
        return ClusterLuaScripts(client)

    def _user_set_in_script(self, user_id: str | None) -> str | None:  # noqa: ARG002 (the base's signature)
        return None

    def _after_record(self, visit: Visit, now_ms: int, status: int) -> None:
        user_id = visit.visitor.user_id
        if user_id is None or status != _COUNTED:
            return
        # The visit is recorded already: a failure here must not make it look unrecorded. The
        # set is rewritten by the user's every beacon, so a lost write heals within one heartbeat.
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.zadd(user_communities_key(user_id), {visit.community_id: now_ms})
            pipe.pexpire(user_communities_key(user_id), self._user_set_ttl_ms)
            pipe.execute()
        except DRIVER_ERRORS as error:
            logger.warning("per-user set not updated", extra={"error": type(error).__name__})


def _timeline(series: dict[int, int], now_ms: int, minutes: int) -> list[TimelinePoint]:
    last = minute_of(now_ms)
    return [
        TimelinePoint(minute=iso(m * MINUTE_MS), visitors=series.get(m, 0)) for m in range(last - minutes + 1, last + 1)
    ]


def tracker_for(client: RedisClient, **options: int) -> VisitorTracker:
    """The tracker that fits the client: chosen once, here."""
    kind = VisitorTracker if isinstance(client, Redis) else ClusterVisitorTracker
    return kind(client, **options)


@cached_factory
def get_tracker() -> VisitorTracker:
    """The process's tracker; its connections are opened on first use and then reused."""
    settings = get_settings()
    return tracker_for(
        get_redis_client(),
        window_seconds=settings.active_window_seconds,
        dedup_seconds=settings.dedup_seconds,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        connection_rate_limit_per_minute=settings.connection_rate_limit_per_minute,
        anonymous_people_per_client=settings.anonymous_people_per_client,
        presence_seconds=settings.presence_seconds,
        leave_grace_seconds=settings.leave_grace_seconds,
        index_refresh_seconds=settings.index_refresh_seconds,
        index_shards=settings.index_shards,
    )
