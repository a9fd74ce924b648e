"""The live state of every community in Redis: the seed's writes and reads (README, "Redis data
model").

Every write is one script on one community's keys; every read first drops stale visitors, so each
answer is exact whether or not the scheduled cleanup has run. The caller passes `now_ms`. Driver
errors leave every public method as `LiveStateUnavailable`.

A community split into parts (`Community.parts`, README "One community in N parts") has each part's
live state in a slot of its own, by person: a beacon goes to its person's part (and, when a tab or
a person is in another part, brings them over first: `_gathered`); a read reads every part, part 0
last, which folds the others' calendar figures into its own (`sum_parts` adds up the rest).

A single node and a Redis Cluster differ in one thing here: on one node a script may touch any
key, so the per-user set of communities is written by the script itself; a cluster keeps it in
another slot (`ClusterVisitorTracker`), which costs a second round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, cast

from redis import Redis
from redis.client import NEVER_DECODE

from community_tracker.errors import CommunityOutdated, LiveStateUnavailable
from community_tracker.factories import cached_factory
from community_tracker.models import (
    CONTEXT_DIMENSIONS,
    DROP_REASONS,
    AddVisitorResult,
    CalendarBucket,
    Checkpoint,
    CheckpointBucket,
    Community,
    ContextCounts,
    ContextDimension,
    ContextTop,
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
    context_top,
    is_cross_division,
    live_context,
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
    TAB_DIRECTORY_MS,
    USER_SET_MARGIN_MS,
    CommunityKeys,
    event_member,
    index_key,
    index_shard,
    part_of,
    parts_keys,
    stored_key,
    tab_directory_key,
    user_communities_key,
)
from community_tracker.redis.scripts import (
    AdoptArgs,
    AdoptKeys,
    ClusterLuaScripts,
    EvictArgs,
    EvictKeys,
    HeartbeatArgs,
    HeartbeatKeys,
    InstallArgs,
    InstallKeys,
    ListVisitorsArgs,
    LuaScripts,
    PlaceArgs,
    PlaceKeys,
    ReadStateArgs,
    ReadStateKeys,
    RecordArgs,
    RecordKeys,
    RedisClient,
    RemoveArgs,
)
from community_tracker.settings import get_settings
from community_tracker.timeutil import (
    HOUR_MS,
    MINUTE_MS,
    PERIODS,
    Bucket,
    Calendar,
    calendar_from_json,
    hour_id,
    iso,
    minute_of,
    seconds,
    zone_calendar,
)

_COUNTED = 1
_OUTDATED = 6  # record.lua: the registration in Redis is not the caller's
_ELSEWHERE = 7  # heartbeat.lua: not a plain heartbeat of a live connection, record.lua's
_GATHER = 8  # record.lua, a split community: someone to bring from another part first
PARTS_CACHE_SECONDS = 30  # how long a caller without a registration trusts the parts Redis held
MOVE_CHUNK = 500  # people per evict / adopt call when the number of parts changes
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


def bucket_descriptor(found: Bucket) -> str:
    """A bucket as the calendar scripts take it (`lua/calendar.lua`)."""
    return f"{found.key}|{found.start_ms}|{found.end_ms}"


def bucket_figures(client: RedisClient, keys: Sequence[tuple[str, str]]) -> list[tuple[int | None, int, int]]:
    """(peak, reached at, unique visitors) of buckets given by their (peak, unique) keys; peak None:
    no peak kept. One pipeline on a single node; a cluster refuses PFCOUNT in pipelines."""
    if not keys:
        return []
    if isinstance(client, Redis):
        pipe = client.pipeline(transaction=False)
        for peak, unique in keys:
            pipe.hmget(peak, ["count", "at"])
            pipe.pfcount(unique)
        replies = pipe.execute()
        pairs = [(replies[2 * i], replies[2 * i + 1]) for i in range(len(keys))]
    else:
        pairs = [(client.hmget(peak, ["count", "at"]), client.pfcount(unique)) for peak, unique in keys]
    return [
        (int(count) if count is not None else None, int(at) if at is not None else 0, int(unique))
        for (count, at), unique in pairs
    ]


def take_checkpoint(client: RedisClient, keys: CommunityKeys, buckets: Sequence[Bucket], taken_ms: int) -> Checkpoint:
    """The figures of `buckets` now (the sketches raw: GET of a HyperLogLog is its encoding, which
    a SET and a PFMERGE read back on any Redis). Buckets with nothing in them are left out."""
    figures = bucket_figures(client, [(keys.peak(found), keys.unique(found)) for found in buckets])
    raw: dict[str, Any] = {NEVER_DECODE: []}
    if isinstance(client, Redis):
        pipe: Any = client.pipeline(transaction=False)
        for found in buckets:
            pipe.execute_command("GET", keys.unique(found), **raw)
        sketches = pipe.execute()
    else:
        node: Any = client
        sketches = [node.execute_command("GET", keys.unique(found), **raw) for found in buckets]
    saved = [
        CheckpointBucket(
            period=found.period,
            bucket=found.id,
            time_zone=found.zone,
            start_ms=found.start_ms,
            end_ms=found.end_ms,
            count=count or 0,
            at_ms=at,
            sketch=sketch if isinstance(sketch, bytes) and sketch else None,
        )
        for found, (count, at, _unique), sketch in zip(buckets, figures, sketches, strict=True)
        if count is not None or sketch
    ]
    return Checkpoint(community_id=keys.community_id, taken_ms=taken_ms, buckets=tuple(saved))


class Registration(NamedTuple):
    """The registration a call works with: its version ('' none known) and calendar, and whether
    the caller vouches for it (a community it read) or follows what Redis holds."""

    version: str
    calendar: Calendar
    vouched: bool


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
    context: ContextCounts  # empty unless asked for

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


def _summed(flats: Iterable[Iterable[tuple[Any, int]]]) -> dict[Any, int]:
    totals: dict[Any, int] = {}
    for flat in flats:
        for field, n in flat:
            totals[field] = totals.get(field, 0) + n
    return totals


def sum_parts(first: _State, others: Sequence[_State]) -> _State:
    """The answer of a split community from its parts' answers: every live figure is the sum of the
    parts' (each person lives in one part), per field where it has fields; the calendar figures are
    `first`'s, part 0's, which folded the others' in (README, "One community in N parts")."""
    parts = (first, *others)
    return replace(
        first,
        total=sum(p.total for p in parts),
        authenticated=sum(p.authenticated for p in parts),
        anonymous=sum(p.anonymous for p in parts),
        cross=sum(p.cross for p in parts),
        divisions=list(_summed(p.divisions for p in parts).items()),
        pairs=list(_summed(p.pairs for p in parts).items()),
        series=_summed(p.series.items() for p in parts),
        present=sum(p.present for p in parts),
        connections=sum(p.connections for p in parts),
        # Each part caps its distinct values on its own, so a value may be "(other)" in one part and
        # itself in another: the sums stay exact, a top value may read a little low.
        context={
            dimension: _summed(p.context.get(dimension, {}).items() for p in parts)
            for dimension in dict.fromkeys(d for p in parts for d in p.context)
        },
    )


def _held(was: Any, parts: int) -> int:
    """A part place.lua answered a tab was in: -1 (none) for a part the community no longer has
    (an entry left from a larger N, whose person was not live to move)."""
    part = int(was)
    return part if part < parts else -1


def _decoded(value: Any) -> Any:
    """A reply read raw (`LuaScripts.call_each(raw=True)`) as the client would have decoded it."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


class _Moved(NamedTuple):
    """People evict.lua took out of a part: its flat answer, the people, and their tabs (with
    the left tabs of nobody it took: their person folded away)."""

    flat: list[Any]
    people: list[str]
    tabs: list[str]


def _moved(flat: list[Any]) -> _Moved:
    people: list[str] = []
    tabs: list[str] = []
    i = 0
    while i < len(flat):
        if flat[i]:
            people.append(flat[i])
        n = int(flat[i + 2])
        tabs.extend(flat[i + 3 + 3 * c] for c in range(n))
        i += 3 + 3 * n
    return _Moved(flat, people, tabs)


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
        default_time_zone: str = "UTC",
        context_values: int = 500,
        context_top: int = 10,
    ) -> None:
        self._client = client
        self._context_values = context_values
        self.context_top = context_top
        self._default_calendar = zone_calendar(default_time_zone)
        # community -> the registration Redis was last seen holding (for callers without one)
        self._known: dict[str, tuple[str, Calendar]] = {}
        # community -> the parts Redis was last seen holding, and until when that is trusted
        self._parts: dict[str, tuple[int, float]] = {}
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

    # -- registrations and calendars -------------------------------------------------------------

    def registration(self, community_id: str, community: Community | None = None) -> Registration:
        """The registration to compute a community's buckets with: the caller's community, else
        what Redis was last seen holding, else the default zone (a community never installed)."""
        if community is not None:
            return Registration(str(community.version), community.calendar(), vouched=True)
        known = self._known.get(community_id)
        if known is not None:
            return Registration(known[0], known[1], vouched=False)
        return Registration("", self._default_calendar, vouched=False)

    def _visit_registration(self, visit: Visit) -> Registration:
        if visit.community_version is not None:
            return Registration(str(visit.community_version), visit.calendar or self._default_calendar, vouched=True)
        return self.registration(visit.community_id)

    def _outdated(self, community_id: str, used: Registration, version: Any, calendar: Any) -> None:
        """Redis holds another registration than `used`: a caller that vouched for its own reads
        the directory again (`CommunityOutdated`); one that did not follows Redis's (or, if Redis
        holds none to follow, finds the live state unusable for now)."""
        held = int(version) if version is not None else None
        if used.vouched:
            raise CommunityOutdated(community_id, held)
        if held is None or calendar is None:
            raise LiveStateUnavailable(f"community {community_id}: its calendar in Redis is not the default one")
        self._known[community_id] = (str(held), calendar_from_json(calendar))

    @staticmethod
    def _still_outdated(community_id: str, used: Registration) -> Exception:
        if used.vouched:
            return CommunityOutdated(community_id, None)
        return LiveStateUnavailable(f"community {community_id}: its registration keeps changing")

    def calendar_of(self, community_id: str, community: Community | None = None) -> Calendar:
        return self.registration(community_id, community).calendar

    def parts_of(self, community_id: str, community: Community | None = None) -> int:
        """How many parts the community's live state is in: the caller's registration's, else what
        Redis held when last asked (for `PARTS_CACHE_SECONDS`), else what it holds now."""
        if community is not None:
            return community.parts
        known = self._parts.get(community_id)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        held = self._client.hget(CommunityKeys(community_id).meta, "parts")
        parts = int(cast(str, held)) if held else 1
        self._parts[community_id] = (parts, time.monotonic() + PARTS_CACHE_SECONDS)
        return parts

    def _visit_parts(self, visit: Visit) -> int:
        return visit.parts if visit.parts is not None else self.parts_of(visit.community_id)

    def _calendar_args(self, registration: Registration, now_ms: int) -> dict[str, Any]:
        """The registration and open buckets a script that opens buckets checks (calendar.lua)."""
        day, week, month = (registration.calendar.bucket(period, now_ms) for period in PERIODS)
        return {
            "community_version": registration.version,
            "day_bucket": bucket_descriptor(day),
            "week_bucket": bucket_descriptor(week),
            "month_bucket": bucket_descriptor(month),
        }

    @live_state_errors
    def install_community(
        self, community: Community, now_ms: int, checkpoint: Checkpoint | None = None, *, force: bool = False
    ) -> bool:
        """Makes `community` the registration Redis holds, unless it holds this one or a newer one
        already, and moves every live person to its division in the same script (a division move
        re-attributes them at once). If Redis held no registration at all, the open figures of
        `checkpoint` are merged back (the buckets of it that are this calendar's and not expired).
        `force` replaces even a newer registration: for a directory that holds an older one than
        Redis (it was reset). True when it was installed."""
        community_id = community.community_id
        meta = CommunityKeys(community_id).meta
        held_parts, held_moves = cast(list[str | None], self._client.hmget(meta, "parts", "moving_from"))
        before = int(held_parts) if held_parts else 1
        # A change of N the call that made it did not finish (it failed half-way): the numbers of
        # parts people may still be in, finished by the next install of this registration.
        moving = {int(n) for n in held_moves.split(",")} if held_moves else set()
        # A part's tag depends on N (`keys.part_tag`): the old parts and the new ones, part 0 once.
        first, *others = {
            keys.tag: keys for n in (before, community.parts) for keys in parts_keys(community_id, n)
        }.values()
        installed = self._install_part(community, first, now_ms, checkpoint, force=force)
        for keys in others:
            self._install_part(community, keys, now_ms, None, force=force)
        if not (installed or force or self._client.hget(meta, "version") == str(community.version)):
            return installed  # Redis holds a newer registration: its own caller moves people
        if installed or force or before != community.parts:
            moving = (moving | {before}) - {community.parts}
            pipe = self._client.pipeline(transaction=False)
            for keys in (first, *others):
                pipe.hset(keys.meta, "parts", community.parts)
            if moving:
                pipe.hset(meta, "moving_from", ",".join(map(str, sorted(moving))))
            pipe.execute()
            self._parts[community.community_id] = (community.parts, time.monotonic() + PARTS_CACHE_SECONDS)
        if moving:
            for old in sorted(moving):
                self._repart(community, old, now_ms)
            self._client.hdel(meta, "moving_from")
        return installed

    def _install_part(
        self, community: Community, keys: CommunityKeys, now_ms: int, checkpoint: Checkpoint | None, *, force: bool
    ) -> bool:
        """install.lua on one part; a checkpoint is part 0's, which holds the calendar figures."""
        calendar = community.calendar()
        restored = [
            b
            for b in (checkpoint.buckets if checkpoint is not None else ())
            if b.end_ms + BUCKET_MARGIN_MS > now_ms and calendar.bucket(b.period, b.start_ms) == b.as_bucket()
        ]
        script_keys = [
            *InstallKeys(**keys.state_fields, meta=keys.meta, restore=keys.restore).values(),
            *(key for b in restored for key in (keys.peak(b.as_bucket()), keys.unique(b.as_bucket()))),
        ]
        args = [
            *InstallArgs(
                version=community.version,
                division=community.division_id or "",
                calendar=calendar.to_json(),
                cutoff_ms=now_ms - self.window_ms,
                bucket_margin_ms=BUCKET_MARGIN_MS,
                force=int(force),
            ).values(),
            *(
                arg
                for b in restored
                for arg in (b.period, bucket_descriptor(b.as_bucket()), b.count, b.at_ms, b.sketch or b"")
            ),
        ]
        installed, held, moved, resumed = self._scripts.call("install", script_keys, args)
        if installed:
            self._known[community.community_id] = (str(community.version), calendar)
            if moved or resumed:
                logger.info(
                    "community installed in the live state",
                    extra={
                        "community": community.community_id,
                        "part": keys.part,
                        "moved": moved,
                        "resumed": resumed,
                        "held": held,
                    },
                )
        return bool(installed)

    def _repart(self, community: Community, before: int, now_ms: int) -> None:
        """The number of parts changed from `before`: everyone live moves to their part under the
        new number, a chunk at a time (evict.lua, then adopt.lua), with their tabs' directory
        entries. A beacon that put someone in their new part first is merged with them there."""
        community_id, parts = community.community_id, community.parts
        registration = self.registration(community_id, community)
        cutoff = now_ms - self.window_ms
        # Under the old number's tags (`keys.part_tag`): only part 0's are the same for both.
        targets = parts_keys(community_id, parts)
        for old in parts_keys(community_id, before):
            live = cast(list[str], self._client.zrange(old.live, f"({cutoff}", "+inf", byscore=True))
            leaving: dict[int, list[str]] = {}
            for member in live:
                target = part_of(member, parts)
                if targets[target].tag != old.tag:
                    leaving.setdefault(target, []).append(member)
            for target, members in leaving.items():
                new = targets[target]
                for first in range(0, len(members), MOVE_CHUNK):
                    moved = self._evict(old, members[first : first + MOVE_CHUNK], now_ms, registration)
                    self._adopt(new, moved, now_ms, registration)
                    self._place(community_id, moved.tabs, target, now_ms, parts)
        kept = {keys.tag for keys in targets}
        for old in parts_keys(community_id, before):
            if old.tag not in kept:
                self._retire_part(old)

    def _retire_part(self, keys: CommunityKeys) -> None:
        """Deletes the live state of a part no registration names any more (its tag is the old
        number of parts'): what is left there after everyone live moved out, the stale not pruned
        yet, and its registration. Every other key of it has an expiry. A function that still has
        the old number finds no registration there, and reads the directory again."""
        groups = cast(list[str], self._client.smembers(keys.groups))
        live_state = [
            *keys.state,
            keys.groups,
            keys.meta,
            *(keys.group(group) for group in groups),
            *(keys.context(dimension) for dimension in CONTEXT_DIMENSIONS),
        ]
        self._client.delete(*live_state)  # one slot: the part's tag

    # -- split communities: bringing people from one part to another ------------------------------

    @staticmethod
    def _move_keys(keys: CommunityKeys, registration: Registration, now_ms: int) -> list[str]:
        buckets = [registration.calendar.bucket(period, now_ms) for period in PERIODS]
        return EvictKeys(**keys.state_fields, **keys.calendar_fields(buckets)).values()

    def _evict(
        self,
        keys: CommunityKeys,
        names: Sequence[str],
        now_ms: int,
        registration: Registration,
        *,
        by_tab: bool = False,
    ) -> _Moved:
        args = EvictArgs(
            cutoff_ms=now_ms - self.window_ms,
            **self._calendar_args(registration, now_ms),
            window_ms=self.window_ms,
            bucket_margin_ms=BUCKET_MARGIN_MS,
            by_tab=int(by_tab),
        )
        script_keys = self._move_keys(keys, registration, now_ms)
        return _moved(self._scripts.call("evict", script_keys, [*args.values(), *names]))

    def _adopt(self, keys: CommunityKeys, moved: _Moved, now_ms: int, registration: Registration) -> None:
        if not moved.flat:
            return
        args = AdoptArgs(
            cutoff_ms=now_ms - self.window_ms,
            **self._calendar_args(registration, now_ms),
            window_ms=self.window_ms,
            presence_ms=self.presence_ms,
            bucket_margin_ms=BUCKET_MARGIN_MS,
        )
        script_keys = self._move_keys(keys, registration, now_ms)
        self._scripts.call("adopt", AdoptKeys(*script_keys).values(), [*args.values(), *moved.flat])

    def _place(self, community_id: str, tabs: Sequence[str], part: int, now_ms: int, parts: int) -> list[int]:
        """Enters `tabs` in the tab directory as living in `part` of `parts` (one pipeline, one call
        per directory shard); answers the part each was in before (-1: none; `_held`)."""
        shards: dict[str, list[int]] = {}
        for i, tab in enumerate(tabs):
            shards.setdefault(tab_directory_key(community_id, tab), []).append(i)
        args = PlaceArgs(now_ms=now_ms, keep_ms=TAB_DIRECTORY_MS, part=part).values()
        calls = [("place", PlaceKeys(tabs=key).values(), [*args, *(tabs[i] for i in at)]) for key, at in shards.items()]
        # One call (a new tab's page view) goes without a pipeline, which costs a cluster client
        # more than the call itself.
        answers = self._scripts.call_each(calls) if len(calls) > 1 else [self._scripts.call(*c) for c in calls]
        before = [-1] * len(tabs)
        for at, answer in zip(shards.values(), answers, strict=True):
            for i, was in zip(at, answer, strict=True):
                before[i] = _held(was, parts)
        return before

    def _placement(
        self, visit: Visit, now_ms: int, *, only_new: bool = False
    ) -> tuple[str, list[str], list[Any]] | None:
        """The place.lua call entering a page view's tab in the tab directory as living in its
        person's part, when the beacon is recorded there whatever record.lua answers: a split
        community, and no other key of the person's in another part (they may be live there, and
        the beacon go there instead). None otherwise."""
        parts = self._visit_parts(visit)
        if parts == 1:
            return None
        part = part_of(stored_key(visit.visitor.key), parts)
        if visit.alt_key is not None and part_of(stored_key(visit.alt_key), parts) != part:
            return None
        tab = stored_key(visit.connection)
        args = PlaceArgs(now_ms=now_ms, keep_ms=TAB_DIRECTORY_MS, part=part, only_new=int(only_new)).values()
        return "place", PlaceKeys(tabs=tab_directory_key(visit.community_id, tab)).values(), [*args, tab]

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
            call = self._heartbeat_call(visit, now_ms, self._visit_registration(visit))
            raw = self._scripts.call("heartbeat", *call)
            if raw[0] != _ELSEWHERE:
                self._after_record(visit, now_ms, raw[0])
                return self._outcome(visit, now_ms, raw)
        return self._record(visit, now_ms, pages=int(increment_pages), must_be_present=True)

    def _heartbeat_call(self, visit: Visit, now_ms: int, registration: Registration) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of heartbeat.lua for one heartbeat."""
        visitor = visit.visitor
        member = stored_key(visitor.key)
        parts = self._visit_parts(visit)
        keys = CommunityKeys(visit.community_id, part_of(member, parts), parts)
        day, week, month = (registration.calendar.bucket(period, now_ms) for period in PERIODS)
        script_keys = HeartbeatKeys(
            **keys.state_fields,
            series=keys.series(hour_id(now_ms)),
            meta=keys.meta,
            user_communities=self._user_set_in_script(visitor.user_id),
        )
        args = HeartbeatArgs(
            now_ms=now_ms,
            cutoff_ms=now_ms - self.window_ms,
            member=member,
            alt_member=stored_key(visit.alt_key) if visit.alt_key else "",
            connection=stored_key(visit.connection),
            is_authenticated=int(visitor.is_authenticated),
            community_division=visit.community_division or "",
            visitor_division=visitor.division_id or "",
            look_elsewhere=int(bool(visit.alt_key) or parts > 1),
            connection_rate_limit=self._connection_rate_limit,
            minute=minute_of(now_ms),
            series_expire_at=seconds(now_ms + (SERIES_HOURS + 1) * HOUR_MS),
            community_id=visit.community_id,
            user_set_ttl_ms=self._user_set_ttl_ms,
            index_refresh_ms=self._index_refresh_ms,
            community_version=registration.version,
            day_bucket=bucket_descriptor(day),
            week_bucket=bucket_descriptor(week),
            month_bucket=bucket_descriptor(month),
        )
        return script_keys.values(), args.values()

    def _record_call(
        self,
        visit: Visit,
        now_ms: int,
        *,
        pages: int,
        must_be_present: bool,
        registration: Registration,
        checks: bool = True,
        part: int | None = None,
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of record.lua for one beacon, in its person's part (or `part`); `checks`:
        a split community's beacon asks whether someone is to be found in another part first."""
        visitor = visit.visitor
        member = stored_key(visitor.key)
        alt = stored_key(visit.alt_key) if visit.alt_key else ""
        parts = self._visit_parts(visit)
        if part is None:
            part = part_of(member, parts)
        keys = CommunityKeys(visit.community_id, part, parts)
        calendar = registration.calendar
        day, week, month = (calendar.bucket(period, now_ms) for period in PERIODS)
        minute = minute_of(now_ms)
        context = visit.context
        script_keys = RecordKeys(
            **keys.state_fields,
            peak_day=keys.peak(day),
            peak_week=keys.peak(week),
            peak_month=keys.peak(month),
            unique_day=keys.unique(day),
            unique_week=keys.unique(week),
            unique_month=keys.unique(month),
            pair_history=keys.pair_history(day.key),
            series=keys.series(hour_id(now_ms)),
            drops=keys.drops(day.key),
            events=keys.events,
            client_rates=keys.rates(minute),
            client_people=keys.client_people(visit.client_key or ""),
            meta=keys.meta,
            closed=keys.closed,
            user_communities=self._user_set_in_script(visitor.user_id),
        )
        args = RecordArgs(
            now_ms=now_ms,
            cutoff_ms=now_ms - self.window_ms,
            member=member,
            alt_member=alt,
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
            day_bucket=bucket_descriptor(day),
            week_bucket=bucket_descriptor(week),
            month_bucket=bucket_descriptor(month),
            series_expire_at=seconds(now_ms + (SERIES_HOURS + 1) * HOUR_MS),
            history_expire_at=seconds(day.end_ms + HISTORY_MS),
            community_id=visit.community_id,
            user_set_ttl_ms=self._user_set_ttl_ms,
            rates_expire_at=seconds((minute + 1) * MINUTE_MS + RATE_COUNTER_MARGIN_MS),
            window_ms=self.window_ms,
            presence_ms=self.presence_ms,
            index_refresh_ms=self._index_refresh_ms,
            community_version=registration.version,
            bucket_margin_ms=BUCKET_MARGIN_MS,
            client=visit.client_key or "",
            check_tab=int(checks and parts > 1),
            check_alt=int(checks and alt != "" and part_of(alt, parts) != part),
            page=context.page if context else "",
            referrer=context.referrer if context else "",
            device=context.device if context else "",
            country=context.country if context else "",
            context_cap=self._context_values,
        )
        return script_keys.values(), args.values()

    def _record(self, visit: Visit, now_ms: int, *, pages: int, must_be_present: bool) -> VisitOutcome:
        for _attempt in (1, 2):
            registration = self._visit_registration(visit)
            script_keys, args = self._record_call(
                visit, now_ms, pages=pages, must_be_present=must_be_present, registration=registration
            )
            # A page view asks the tab directory when record.lua answers "gather"; one that says it
            # is its tab's first asks at the same time (place.lua beside record.lua, one cluster
            # pipeline: both nodes written before either is read), saving a new tab a round trip.
            # Every page view doing so would cost the others more than that (README, "One community
            # in N parts"). Only a hint: the directory enters the tab only if it holds none (one it
            # holds is moved as without the hint) and the record still checks the tab.
            hinted = visit.new_tab and pages == 1
            placement = self._placement(visit, now_ms, only_new=True) if hinted else None
            placed_from: int | None = None
            if placement is not None:
                before, raw = self._scripts.call_each([placement, ("record", script_keys, args)])
                placed_from = -1 if int(before[0]) == -1 else None  # entered now; else `_gathered` moves it
            else:
                raw = self._scripts.call("record", script_keys, args)
            if raw[0] == _GATHER:
                raw = self._gathered(
                    visit,
                    now_ms,
                    pages=pages,
                    must_be_present=must_be_present,
                    registration=registration,
                    member_here=bool(raw[4]),
                    placed_from=placed_from,
                )
            if raw[0] == _OUTDATED:
                self._outdated(visit.community_id, registration, raw[4], raw[5])
                continue
            self._after_record(visit, now_ms, raw[0])
            return self._outcome(visit, now_ms, raw)
        raise self._still_outdated(visit.community_id, registration)

    def _gathered(
        self,
        visit: Visit,
        now_ms: int,
        *,
        pages: int,
        must_be_present: bool,
        registration: Registration,
        member_here: bool,
        placed_from: int | None = None,
    ) -> list[Any]:
        """A beacon of a split community whose person may be live under their other key in that
        key's part, or whose tab is in another part (a login, a logout). The beacon goes to the
        part of the person it is recorded for (their other key's, if they are live there); the
        tab's person is brought there, the beacon is recorded as in an unsplit community (the tab
        moves, its person folds into this one), and the tab's person goes back where they came from
        if they kept other tabs: everyone lives in the part of the key they live under, so each is
        found by it. The tab directory follows every move. Each step is one script: a read between
        two of them may miss the person on the way. `placed_from`: the caller entered the tab in
        its person's part already (`_placement`), and this is where it was before (-1: nowhere)."""
        community_id = visit.community_id
        parts = self._visit_parts(visit)
        tab = stored_key(visit.connection)
        part = part_of(stored_key(visit.visitor.key), parts)
        if placed_from is not None:
            owner_part = placed_from
        else:
            alt = stored_key(visit.alt_key) if visit.alt_key else None
            if not member_here and alt is not None and part_of(alt, parts) != part:
                alt_part = part_of(alt, parts)
                score = self._client.zscore(CommunityKeys(community_id, alt_part, parts).live, alt)
                if score is not None and score > now_ms - self.window_ms:
                    part = alt_part
            owner_part = self._place(community_id, [tab], part, now_ms, parts)[0]
        here = CommunityKeys(community_id, part, parts)
        owner = _Moved([], [], [])
        if owner_part not in (-1, part):
            owner = self._evict(
                CommunityKeys(community_id, owner_part, parts), [tab], now_ms, registration, by_tab=True
            )
            self._adopt(here, owner, now_ms, registration)
        script_keys, args = self._record_call(
            visit,
            now_ms,
            pages=pages,
            must_be_present=must_be_present,
            registration=registration,
            checks=False,
            part=part,
        )
        raw: list[Any] = self._scripts.call("record", script_keys, args)
        back = _Moved([], [], [])
        if owner.people:
            back = self._evict(here, owner.people, now_ms, registration)
            self._adopt(CommunityKeys(community_id, owner_part, parts), back, now_ms, registration)
            self._place(community_id, back.tabs, owner_part, now_ms, parts)
        staying = [t for t in owner.tabs if t not in back.tabs]
        if staying:
            self._place(community_id, staying, part, now_ms, parts)
        return raw

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
        single node. The same as calling `add_visitor` for each, in order, but that a page view
        whose tab is new to its part is recorded after the others (`_gather_many`), so a count or
        a rate limit that depends on the order may differ."""
        registrations = [self._visit_registration(v) for v in visits]
        calls = [
            self._record_call(v, now_ms, pages=1, must_be_present=False, registration=r)
            for v, r in zip(visits, registrations, strict=True)
        ]
        raws = self._scripts.call_many("record", calls)
        self._gather_many(visits, registrations, raws, now_ms)
        outcomes = []
        for visit, raw in zip(visits, raws, strict=True):
            if raw[0] in (_OUTDATED, _GATHER):
                outcomes.append(self._record(visit, now_ms, pages=1, must_be_present=False))
                continue
            self._after_record(visit, now_ms, raw[0])
            outcomes.append(self._outcome(visit, now_ms, raw))
        return outcomes

    def _gather_many(
        self, visits: Sequence[Visit], registrations: Sequence[Registration], raws: list[Any], now_ms: int
    ) -> None:
        """The page views of a batch record.lua answered "gather" for, whose beacon goes to its
        person's part (`_placement`), recorded again in `raws`: their tabs entered in the tab
        directory together (one pipeline, in order), then, in order, those whose tab was nowhere
        or in that part already recorded together without the checks, and one whose tab comes
        from another part on its own (`_gathered`). Any other stays for `_record`."""
        gathered = {
            i: placement
            for i, raw in enumerate(raws)
            if raw[0] == _GATHER and (placement := self._placement(visits[i], now_ms)) is not None
        }
        if not gathered:
            return
        run: list[int] = []
        for i, before in zip(gathered, self._scripts.call_each(list(gathered.values())), strict=True):
            visit, parts = visits[i], self._visit_parts(visits[i])
            placed_from = _held(before[0], parts)
            if placed_from in (-1, part_of(stored_key(visit.visitor.key), parts)):
                run.append(i)
                continue
            self._record_again(visits, registrations, raws, run, now_ms)
            run = []
            raws[i] = self._gathered(
                visit,
                now_ms,
                pages=1,
                must_be_present=False,
                registration=registrations[i],
                member_here=bool(raws[i][4]),
                placed_from=placed_from,
            )
        self._record_again(visits, registrations, raws, run, now_ms)

    def _record_again(
        self,
        visits: Sequence[Visit],
        registrations: Sequence[Registration],
        raws: list[Any],
        again: Sequence[int],
        now_ms: int,
    ) -> None:
        """The page views `again` recorded without the checks, their tabs placed in their part."""
        if not again:
            return
        calls = [
            self._record_call(
                visits[i], now_ms, pages=1, must_be_present=False, registration=registrations[i], checks=False
            )
            for i in again
        ]
        for i, raw in zip(again, self._scripts.call_many("record", calls), strict=True):
            raws[i] = raw

    @live_state_errors
    def update_visitors_activity(self, visits: Sequence[Visit], now_ms: int) -> list[VisitOutcome]:
        """Many heartbeats at once (load tests, benchmarks): the same as `update_visitor_activity`
        for each, in one pipeline on a single node (a second one for those sent on to
        `record.lua`)."""
        registrations = [self._visit_registration(v) for v in visits]
        raws = self._scripts.call_many(
            "heartbeat", [self._heartbeat_call(v, now_ms, r) for v, r in zip(visits, registrations, strict=True)]
        )
        elsewhere = [i for i, raw in enumerate(raws) if raw[0] == _ELSEWHERE]
        if elsewhere:
            calls = [
                self._record_call(visits[i], now_ms, pages=0, must_be_present=True, registration=registrations[i])
                for i in elsewhere
            ]
            for i, raw in zip(elsewhere, self._scripts.call_many("record", calls), strict=True):
                raws[i] = raw
        outcomes = []
        for visit, raw in zip(visits, raws, strict=True):
            if raw[0] in (_OUTDATED, _GATHER):
                outcomes.append(self._record(visit, now_ms, pages=0, must_be_present=True))
                continue
            self._after_record(visit, now_ms, raw[0])
            outcomes.append(self._outcome(visit, now_ms, raw))
        return outcomes

    @live_state_errors
    def remove_visitors(self, leaves: Sequence[tuple[str, str]], now_ms: int) -> list[int]:
        """Many leaves at once, `(community_id, connection)` each: the same as `remove_visitor`
        for each, in one pipeline on a single node."""
        calls = [
            (self._tab_keys(c, connection).state, self._remove_args(connection, now_ms)) for c, connection in leaves
        ]
        return [int(count) for _left, count in self._scripts.call_many("remove", calls)]

    def _tab_keys(self, community_id: str, connection: str) -> CommunityKeys:
        """The keys of the part a tab lives in (the tab directory of a split community; part 0 if it
        holds none, or names a part the community no longer has)."""
        parts = self.parts_of(community_id)
        if parts == 1:
            return CommunityKeys(community_id)
        tab = stored_key(connection)
        score = self._client.zscore(tab_directory_key(community_id, tab), tab)
        part = int(score) % 128 if score is not None else 0
        return CommunityKeys(community_id, part if part < parts else 0, parts)

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
        keys = self._tab_keys(community_id, connection)
        _left, count = self._scripts.call("remove", keys.state, args)
        return int(count)

    @live_state_errors
    def event_seen(self, community_id: str, event_id: str, now_ms: int) -> bool:
        """Whether a page view with this event id was recorded within the dedup window (in any
        part: a retry is its person's, in their part)."""
        pipe = self._client.pipeline(transaction=False)
        for keys in parts_keys(community_id, self.parts_of(community_id)):
            pipe.zscore(keys.events, event_member(event_id))
        return any(seen is not None and now_ms - seen < self._dedup_ms for seen in pipe.execute())

    @live_state_errors
    def record_drop(
        self, community_id: str, reason: DropReason, now_ms: int, community: Community | None = None
    ) -> None:
        """Counts a beacon that was not counted (bot, invalid) outside the record script."""
        day = self.calendar_of(community_id, community).bucket("day", now_ms)
        key = CommunityKeys(community_id).drops(day.key)
        pipe = self._client.pipeline(transaction=False)
        pipe.hincrby(key, reason, 1)
        pipe.expireat(key, seconds(day.end_ms + HISTORY_MS))
        pipe.execute()

    # -- reads ----------------------------------------------------------------------------------

    @live_state_errors
    def is_user_visiting(self, community_id: str, user_id: str, now_ms: int) -> bool:
        member = authenticated_visitor_key(user_id)
        parts = self.parts_of(community_id)
        keys = CommunityKeys(community_id, part_of(member, parts), parts)
        score = self._client.zscore(keys.live, member)
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
        member = authenticated_visitor_key(user_id)
        pipe = self._client.pipeline(transaction=False)
        for community_id in candidates:
            parts = self.parts_of(community_id)
            pipe.zscore(CommunityKeys(community_id, part_of(member, parts), parts).live, member)
        scores = pipe.execute()
        return [c for c, s in zip(candidates, scores, strict=True) if s is not None and s > cutoff]

    @live_state_errors
    def get_visitor_list(self, community_id: str, now_ms: int, *, offset: int = 0, limit: int = 50) -> VisitorPage:
        """Live visitors, most recent activity first; only authenticated ones carry an id. A split
        community's page is the first `offset + limit` of each part, merged in the same order."""
        parts = self.parts_of(community_id)
        # Each part answers its first offset + limit; their merge is the page.
        first, size = (0, offset + limit) if parts > 1 else (offset, limit)
        args = ListVisitorsArgs(cutoff_ms=now_ms - self.window_ms, offset=first, limit=size)
        calls = [("list_visitors", keys.state, args.values()) for keys in parts_keys(community_id, parts)]
        answers = self._scripts.call_each(calls) if parts > 1 else [self._scripts.call(*calls[0])]
        total = sum(int(answer[0]) for answer in answers)
        listed = [
            (float(page[i + 1]), page[i], records[i // 2])
            for _count, page, records in answers
            for i in range(0, len(page), 2)
        ]
        if parts > 1:
            listed = sorted(listed, key=lambda entry: (entry[0], entry[1]), reverse=True)[offset : offset + limit]
        visitors = [decode_visitor(record) for _score, _member, record in listed if record is not None]
        has_more = offset + len(listed) < total
        return VisitorPage(
            visitors=visitors,
            total_visitors=total,
            next_cursor=str(offset + limit) if has_more else None,
        )

    def _read_state(
        self,
        community_id: str,
        now_ms: int,
        *,
        series_hours: int = 0,
        community: Community | None = None,
        with_context: bool = False,
    ) -> _State:
        """Every aggregate, from read_state.lua: in a split community, the other parts first (one
        pipeline: a round trip per node), then part 0, which folds their calendar figures into its
        own (README, "One community in N parts")."""
        parts = self.parts_of(community_id, community)
        hours = [hour_id(now_ms - i * HOUR_MS) for i in range(series_hours)]
        for _attempt in (1, 2):
            registration = self.registration(community_id, community)
            buckets = [registration.calendar.bucket(period, now_ms) for period in PERIODS]
            others: list[_State] = []
            opened = [0, 0, 0]
            sketches: list[Any] = []  # raw bytes: a script argument may be bytes
            if parts > 1:
                calls = [
                    self._read_call(keys, now_ms, registration, buckets, hours, with_context=with_context)
                    for keys in parts_keys(community_id, parts)[1:]
                ]
                answers = self._scripts.call_each(calls, raw=True)
                outdated = next((a for a in answers if a[0] is None), None)
                if outdated is not None:
                    self._outdated(community_id, registration, *_decoded(outdated[1:3]))
                    continue
                for answer in answers:
                    # Fields 13 and 14 are the part's counts at its buckets' starts and its raw
                    # sketches (never decoded), 15 its live context.
                    state = self._state([*_decoded(answer[:13]), None, None, _decoded(answer[15])], buckets)
                    others.append(state)
                    opened = [n + int(m) for n, m in zip(opened, answer[13], strict=True)]
                    sketches.extend(answer[14])
            name, keys, args = self._read_call(
                CommunityKeys(community_id),
                now_ms,
                registration,
                buckets,
                hours,
                others_total=sum(o.total for o in others) if parts > 1 else -1,
                others_opened=opened,
                with_context=with_context,
            )
            raw = self._scripts.call(name, keys, [*args, *sketches])
            if raw[0] is None:
                self._outdated(community_id, registration, raw[1], raw[2])
                continue
            return sum_parts(self._state(raw, buckets), others)
        raise self._still_outdated(community_id, registration)

    def _read_call(
        self,
        keys: CommunityKeys,
        now_ms: int,
        registration: Registration,
        buckets: Sequence[Bucket],
        hours: Sequence[str],
        *,
        others_total: int = -1,
        others_opened: Sequence[int] = (0, 0, 0),
        with_context: bool = False,
    ) -> tuple[str, list[str], list[Any]]:
        script_keys = ReadStateKeys(**keys.state_fields, **keys.calendar_fields(buckets))
        args = ReadStateArgs(
            cutoff_ms=now_ms - self.window_ms,
            present_after_ms=now_ms - self.presence_ms,
            **self._calendar_args(registration, now_ms),
            window_ms=self.window_ms,
            bucket_margin_ms=BUCKET_MARGIN_MS,
            now_ms=now_ms,
            with_sketches=int(keys.part > 0),
            others_total=others_total,
            others_opened_day=others_opened[0],
            others_opened_week=others_opened[1],
            others_opened_month=others_opened[2],
            with_context=int(with_context),
        )
        return "read_state", [*script_keys.values(), *(keys.series(h) for h in hours)], args.values()

    @staticmethod
    def _state(raw: list[Any], buckets: list[Bucket]) -> _State:
        total, (auth, anon, cross), divisions, pairs, *peak_fields = raw[:7]
        daily_unique, weekly_unique, monthly_unique, series, present, connections = raw[7:13]
        context = raw[15] if len(raw) > 15 else None
        return _State(
            total=total,
            authenticated=_int(auth),
            anonymous=_int(anon),
            cross=_int(cross),
            divisions=_pairs(divisions),
            pairs=_pairs(pairs),
            peaks=[
                Peak.at(b, _int(count), iso(int(at)) if at is not None else None)
                for b, (count, at) in zip(buckets, peak_fields, strict=True)
            ],
            unique=UniqueVisitors(
                daily=daily_unique,
                weekly=weekly_unique,
                monthly=monthly_unique,
                buckets=[CalendarBucket.of(b) for b in buckets],
            ),
            series={int(m): int(n) for flat in series for m, n in _pairs(flat)},
            present=present,
            connections=connections,
            context={d: dict(_pairs(flat)) for d, flat in zip(CONTEXT_DIMENSIONS, context or (), strict=False)},
        )

    # Each aggregate read takes the caller's `community` when it has one (a function that read the
    # directory): its calendar and version are checked against Redis's (`CommunityOutdated`).

    @live_state_errors
    def get_visitor_stats(self, community_id: str, now_ms: int, *, community: Community | None = None) -> VisitorStats:
        return self._read_state(community_id, now_ms, community=community).stats()

    @live_state_errors
    def get_authenticated_visitor_count(self, community_id: str, now_ms: int) -> int:
        return self._read_state(community_id, now_ms).authenticated

    @live_state_errors
    def get_anonymous_visitor_count(self, community_id: str, now_ms: int) -> int:
        return self._read_state(community_id, now_ms).anonymous

    @live_state_errors
    def get_division_breakdown(
        self, community_id: str, now_ms: int, *, community: Community | None = None
    ) -> list[DivisionCount]:
        """Live visitors per home division, largest first; `division_id` None is "unknown"."""
        return self._read_state(community_id, now_ms, community=community).division_breakdown()

    @live_state_errors
    def get_cross_division_stats(
        self, community_id: str, now_ms: int, *, community: Community | None = None
    ) -> CrossDivisionStats:
        return self._read_state(community_id, now_ms, community=community).cross_division()

    @live_state_errors
    def get_peak_counts(self, community_id: str, now_ms: int, *, community: Community | None = None) -> PeakCounts:
        return self._read_state(community_id, now_ms, community=community).peak_counts()

    @live_state_errors
    def get_peaks(self, community_id: str, now_ms: int, *, community: Community | None = None) -> list[Peak]:
        """Peaks of the current day, ISO week and month, with the time each was reached."""
        return self._read_state(community_id, now_ms, community=community).peaks

    @live_state_errors
    def get_unique_visitors(
        self, community_id: str, now_ms: int, *, community: Community | None = None
    ) -> UniqueVisitors:
        return self._read_state(community_id, now_ms, community=community).unique

    @live_state_errors
    def get_summary(
        self, community_id: str, now_ms: int, *, timeline_minutes: int = 60, community: Community | None = None
    ) -> Summary:
        """Everything a dashboard needs, from one script call."""
        hours = (timeline_minutes + 59) // 60 + 1
        state = self._read_state(community_id, now_ms, series_hours=hours, community=community, with_context=True)
        return Summary(
            community_id=community_id,
            stats=state.stats(),
            divisions=state.division_breakdown(),
            cross_division=state.cross_division(),
            peaks=state.peak_counts(),
            peak_details=state.peaks,
            unique_visitors=state.unique,
            timeline=_timeline(state.series, now_ms, timeline_minutes),
            context=live_context(state.context, self.context_top),
            timestamp=iso(now_ms),
        )

    @live_state_errors
    def get_context_counts(
        self, community_id: str, now_ms: int, *, community: Community | None = None
    ) -> tuple[int, ContextCounts]:
        """The people live and, per dimension, every value kept -> its live people: the plain,
        summable answer (a community kept in parts adds its parts' counters)."""
        state = self._read_state(community_id, now_ms, community=community, with_context=True)
        return state.total, state.context

    @live_state_errors
    def get_context(
        self,
        community_id: str,
        now_ms: int,
        dimension: ContextDimension,
        *,
        limit: int,
        community: Community | None = None,
    ) -> tuple[int, ContextTop]:
        """The people live, and one dimension of their context: its `limit` largest values and the rest."""
        total, counts = self.get_context_counts(community_id, now_ms, community=community)
        return total, context_top(counts.get(dimension, {}), limit)

    @live_state_errors
    def get_timeline(self, community_id: str, now_ms: int, *, minutes: int = 60) -> list[TimelinePoint]:
        """Highest live count of each minute, oldest first (at most the last 48 hours)."""
        minutes = max(1, min(minutes, SERIES_HOURS * 60))
        pipe = self._client.pipeline(transaction=False)
        for keys in parts_keys(community_id, self.parts_of(community_id)):
            for i in range((minutes + 59) // 60 + 1):
                pipe.hgetall(keys.series(hour_id(now_ms - i * HOUR_MS)))
        series = _summed(((int(m), int(n)) for m, n in hour.items()) for hour in pipe.execute())
        return _timeline(series, now_ms, minutes)

    @live_state_errors
    def get_cross_division_history(
        self, community_id: str, day_id: str, *, community: Community | None = None
    ) -> tuple[list[CalendarBucket], list[CrossDivisionPair]]:
        """Cumulative page views per cross-division pair on one day of the community's calendar
        (kept 35 days): the day's buckets (two where a change of zone split it) and their sum."""
        days = self.calendar_of(community_id, community).days_labelled(day_id)
        pipe = self._client.pipeline(transaction=False)
        for keys in parts_keys(community_id, self.parts_of(community_id, community)):
            for day in days:
                pipe.hgetall(keys.pair_history(day.key))
        totals: dict[str, int] = {}
        for counts in cast(list[dict[str, str]], pipe.execute() if days else []):
            for pair, n in counts.items():
                totals[pair] = totals.get(pair, 0) + int(n)
        return [CalendarBucket.of(day) for day in days], pair_breakdown(list(totals.items()))

    @live_state_errors
    def get_drop_counts(self, community_id: str, now_ms: int, *, community: Community | None = None) -> DropCounts:
        day = self.calendar_of(community_id, community).bucket("day", now_ms)
        pipe = self._client.pipeline(transaction=False)
        for keys in parts_keys(community_id, self.parts_of(community_id, community)):
            pipe.hgetall(keys.drops(day.key))
        counts = _summed(((r, int(n)) for r, n in drops.items()) for drops in pipe.execute())
        return DropCounts(
            day=day.id,
            time_zone=day.zone,
            start=iso(day.start_ms),
            end=iso(day.end_ms),
            **{r: counts[r] for r in DROP_REASONS if r in counts},
        )

    @live_state_errors
    def get_closed_peaks(self, community_id: str, buckets: Sequence[Bucket]) -> list[Peak | None]:
        """The figures Redis still keeps of closed buckets (for two days after each): the history
        of the buckets cleanup has not written yet."""
        keys = CommunityKeys(community_id)
        figures = bucket_figures(self._client, [(keys.peak(found), keys.unique(found)) for found in buckets])
        return [
            Peak.at(found, count, iso(at), unique) if count is not None and at else None
            for found, (count, at, unique) in zip(buckets, figures, strict=True)
        ]


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


def tracker_for(client: RedisClient, **options: Any) -> VisitorTracker:
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
        default_time_zone=settings.default_time_zone,
        context_values=settings.context_values,
        context_top=settings.context_top,
    )
