"""The Lua scripts, their contracts, and how they are called (by SHA, with `NOSCRIPT` recovered).

Each script's KEYS and ARGV are declared once here, as a dataclass whose fields are in order;
the script unpacks them into locals of the same names on its first lines, one line per index,
and `tests/component/redis/test_script_contracts.py` checks the two agree.

Hand-written rather than redis-py's `register_script`: its `Script` re-checks `SCRIPT EXISTS` on
every pipeline execution (an extra round trip), and cluster pipelines refuse `EVALSHA` altogether.
Here the SHA is computed locally, the script is loaded the first time a node answers `NOSCRIPT`
(a new node, a failover, a `SCRIPT FLUSH`), and the call is retried once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import cache
from importlib.resources import files
from operator import attrgetter
from typing import Any, ClassVar

from redis import Redis
from redis.client import NEVER_DECODE
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

RedisClient = Redis | RedisCluster
Arg = str | int | float

# Scripts that work on one community start with the shared prelude (its keys and helpers); those
# that keep calendar figures also with the calendar's (`lua/calendar.lua`).
COMMUNITY_SCRIPTS = (
    "record",
    "heartbeat",
    "remove",
    "prune",
    "read_state",
    "list_visitors",
    "install",
    "rolled",
    "evict",
    "adopt",
    "fold",
)
CALENDAR_SCRIPTS = ("record", "prune", "read_state", "install", "evict", "adopt", "fold")
INDEX_SCRIPTS = ("claim_due", "place")


class Contract:
    """A script's KEYS or ARGV: dataclass fields in order; None fields (optional keys) last."""

    script: ClassVar[str]

    def values(self) -> list[Any]:
        # One attrgetter per contract reads every field at once: `dataclasses.astuple` deep-copies
        # every value (~20 us a beacon), a getattr per field costs a few us more.
        return [value for value in _fields_getter(type(self))(self) if value is not None]

    @classmethod
    def names(cls) -> list[str]:
        return list(_field_names(cls))


_FIELD_NAMES: dict[type[Contract], tuple[str, ...]] = {}
_FIELDS_GETTERS: dict[type[Contract], Callable[[Contract], tuple[Any, ...]]] = {}


def _field_names(contract: type[Contract]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(contract)
    if names is None:
        names = _FIELD_NAMES[contract] = tuple(field.name for field in fields(contract))  # type: ignore[arg-type]
    return names


def _fields_getter(contract: type[Contract]) -> Callable[[Contract], tuple[Any, ...]]:
    getter = _FIELDS_GETTERS.get(contract)
    if getter is None:
        first, *others = _field_names(contract)
        # attrgetter of one name answers the value itself, of several a tuple
        getter = attrgetter(first, *others) if others else lambda contract: (getattr(contract, first),)
        _FIELDS_GETTERS[contract] = getter
    return getter


@dataclass(frozen=True, slots=True)
class CommunityState(Contract):
    """KEYS[1..8] of every community script (the prelude, `community.lua`); the contracts of
    scripts with keys of their own extend it, so their fields follow these."""

    script: ClassVar[str] = "community"
    live: str
    visitors: str
    counts: str
    divisions: str
    pairs: str
    conns: str
    conn_people: str
    present: str


@dataclass(frozen=True, slots=True)
class RecordKeys(CommunityState):
    script: ClassVar[str] = "record"
    peak_day: str
    peak_week: str
    peak_month: str
    unique_day: str
    unique_week: str
    unique_month: str
    pair_history: str
    series: str
    drops: str
    events: str
    client_rates: str
    client_people: str
    meta: str
    closed: str
    user_communities: str | None = None  # single node only: a cluster keeps it in another slot


@dataclass(frozen=True, slots=True)
class BeaconArgs(Contract):
    """ARGV[1..5] of the scripts that record a beacon of a person's connection (record,
    heartbeat); their contracts extend it, so their fields follow these."""

    now_ms: int
    cutoff_ms: int
    member: str  # the person
    alt_member: str  # the same cookieless person's key of the previous day ('' none)
    connection: str


@dataclass(frozen=True, slots=True)
class RecordArgs(BeaconArgs):
    script: ClassVar[str] = "record"
    pages: int  # 0 or 1
    must_be_present: int  # 1: a heartbeat, which never creates a person
    is_authenticated: int
    community_division: str
    visitor_division: str
    user_id: str
    # The event id's digest (keys.event_member), page views only ('' none): a repeated heartbeat
    # changes nothing a first one did not.
    event: str
    dedup_ms: int
    client_rate_limit: int  # page views per client per minute, 0 off
    connection_rate_limit: int  # beacons per connection per minute (counted in its entry), 0 off
    people_per_client: int  # new anonymous people one client may make per window, 0 off
    minute: int
    day_bucket: str  # the beacon's day, "key|start_ms|end_ms" in the community's calendar
    week_bucket: str
    month_bucket: str
    series_expire_at: int
    history_expire_at: int
    community_id: str
    user_set_ttl_ms: int
    rates_expire_at: int  # the minute's end and a margin (s): its rate counters are for that minute only
    window_ms: int
    presence_ms: int
    index_refresh_ms: int
    community_version: str  # the registration the buckets come from; '' none known (tools, tests)
    bucket_margin_ms: int  # calendar keys outlive their bucket by this
    client: str  # the client's key, its field in the minute's rate counters ('' none)
    check_tab: int  # 1 (a split community): answer 8 if the tab is unknown in this part
    check_alt: int  # 1 (a split community): answer 8 if neither the person nor alt_member is live here
    # The page view's live context (`context.PageContext`); '' keeps the person's value (a
    # heartbeat, a referrer from the site itself), or gives a new person the default.
    page: str
    referrer: str
    device: str
    country: str
    context_cap: int  # distinct values kept per dimension; a new one beyond is counted as "(other)"


@dataclass(frozen=True, slots=True)
class HeartbeatKeys(CommunityState):
    """A heartbeat of a live connection (the state, this hour's series, the registration and open
    buckets to check); anything else it sends back to `record`."""

    script: ClassVar[str] = "heartbeat"
    series: str
    meta: str
    user_communities: str | None = None  # single node only, as for `record`


@dataclass(frozen=True, slots=True)
class HeartbeatArgs(BeaconArgs):
    script: ClassVar[str] = "heartbeat"
    is_authenticated: int
    community_division: str
    visitor_division: str
    # 1: the person may be live under another key, or (a split community) the tab or the person in
    # another part: only `record` looks
    look_elsewhere: int
    connection_rate_limit: int
    minute: int
    series_expire_at: int
    community_id: str
    user_set_ttl_ms: int
    index_refresh_ms: int
    community_version: str  # as for `record`: a heartbeat of another registration is record's
    day_bucket: str  # the open buckets the caller expects, as for `record`: any other is record's
    week_bucket: str
    month_bucket: str


@dataclass(frozen=True, slots=True)
class RemoveArgs(Contract):
    """KEYS of remove: the state only."""

    script: ClassVar[str] = "remove"
    now_ms: int
    cutoff_ms: int
    connection: str
    grace_ms: int
    window_ms: int
    presence_ms: int


@dataclass(frozen=True, slots=True)
class PruneKeys(CommunityState):
    script: ClassVar[str] = "prune"
    series: str
    meta: str
    closed: str
    peak_day: str
    peak_week: str
    peak_month: str
    unique_day: str
    unique_week: str
    unique_month: str


@dataclass(frozen=True, slots=True)
class PruneArgs(Contract):
    script: ClassVar[str] = "prune"
    cutoff_ms: int
    minute: int
    series_expire_at: int
    community_version: str
    day_bucket: str
    week_bucket: str
    month_bucket: str
    window_ms: int
    bucket_margin_ms: int
    checkpoint_before_ms: int  # a checkpoint taken before this is due, if a figure changed since; -1 never


@dataclass(frozen=True, slots=True)
class ReadStateKeys(Contract):
    """KEYS of read_state: the state, the open buckets' keys, then any number of series hours."""

    script: ClassVar[str] = "read_state"
    live: str
    visitors: str
    counts: str
    divisions: str
    pairs: str
    conns: str
    conn_people: str
    present: str
    peak_day: str
    peak_week: str
    peak_month: str
    unique_day: str
    unique_week: str
    unique_month: str
    meta: str
    closed: str


@dataclass(frozen=True, slots=True)
class ReadStateArgs(Contract):
    script: ClassVar[str] = "read_state"
    cutoff_ms: int
    present_after_ms: int
    community_version: str
    day_bucket: str
    week_bucket: str
    month_bucket: str
    window_ms: int
    bucket_margin_ms: int
    now_ms: int
    with_sketches: int  # 1: a part of a split community other than 0, whose sketches part 0 folds in
    others_total: int  # part 0 of a split community: the other parts' live count; -1 no other parts
    others_opened_day: int  # the other parts' counts at the bucket's start, summed
    others_opened_week: int
    others_opened_month: int
    with_context: int  # 1: the live context too


@dataclass(frozen=True, slots=True)
class EvictKeys(CommunityState):
    """KEYS of evict and adopt: the state, the open buckets' keys (opened first), meta, closed."""

    script: ClassVar[str] = "evict"
    peak_day: str
    peak_week: str
    peak_month: str
    unique_day: str
    unique_week: str
    unique_month: str
    meta: str
    closed: str


@dataclass(frozen=True, slots=True)
class AdoptKeys(EvictKeys):
    script: ClassVar[str] = "adopt"


@dataclass(frozen=True, slots=True)
class FoldKeys(EvictKeys):
    script: ClassVar[str] = "fold"


@dataclass(frozen=True, slots=True)
class EvictArgs(Contract):
    """ARGV of evict, then the people (or tabs) to take out."""

    script: ClassVar[str] = "evict"
    cutoff_ms: int
    community_version: str
    day_bucket: str
    week_bucket: str
    month_bucket: str
    window_ms: int
    bucket_margin_ms: int
    by_tab: int  # 1: the names are tabs, whose people go


@dataclass(frozen=True, slots=True)
class AdoptArgs(Contract):
    """ARGV of adopt, then evict's answer."""

    script: ClassVar[str] = "adopt"
    cutoff_ms: int
    community_version: str
    day_bucket: str
    week_bucket: str
    month_bucket: str
    window_ms: int
    presence_ms: int
    bucket_margin_ms: int


@dataclass(frozen=True, slots=True)
class FoldArgs(Contract):
    """ARGV of fold, then the other parts' sketches (day, week, month per part)."""

    script: ClassVar[str] = "fold"
    now_ms: int
    community_version: str
    day_bucket: str
    week_bucket: str
    month_bucket: str
    bucket_margin_ms: int
    total: int  # the live count of all parts
    others_opened_day: int
    others_opened_week: int
    others_opened_month: int


@dataclass(frozen=True, slots=True)
class PlaceKeys(Contract):
    script: ClassVar[str] = "place"
    tabs: str


@dataclass(frozen=True, slots=True)
class PlaceArgs(Contract):
    """ARGV of place, then the tabs."""

    script: ClassVar[str] = "place"
    now_ms: int
    keep_ms: int
    part: int
    only_new: int = 0  # 1: enters only the tabs the directory does not hold; answers all the same


@dataclass(frozen=True, slots=True)
class InstallKeys(Contract):
    """KEYS of install: the state, then, per checkpoint bucket, its peak and unique-visitor keys."""

    script: ClassVar[str] = "install"
    live: str
    visitors: str
    counts: str
    divisions: str
    pairs: str
    conns: str
    conn_people: str
    present: str
    meta: str
    restore: str  # where a checkpointed sketch is put, merged from and deleted, in the script


@dataclass(frozen=True, slots=True)
class InstallArgs(Contract):
    """ARGV of install, then per checkpoint bucket: period, "key|start|end", count, at, sketch."""

    script: ClassVar[str] = "install"
    version: int
    division: str
    calendar: str
    cutoff_ms: int
    bucket_margin_ms: int
    force: int  # 1: replace even a newer registration (the directory was reset)


@dataclass(frozen=True, slots=True)
class RolledKeys(Contract):
    script: ClassVar[str] = "rolled"
    live: str
    visitors: str
    counts: str
    divisions: str
    pairs: str
    conns: str
    conn_people: str
    present: str
    closed: str
    peak: str
    unique: str


@dataclass(frozen=True, slots=True)
class RolledArgs(Contract):
    script: ClassVar[str] = "rolled"
    member: str  # "period|key|start|end" in CLOSED
    count: int  # what was written to DynamoDB
    unique_visitors: int


@dataclass(frozen=True, slots=True)
class ListVisitorsArgs(Contract):
    script: ClassVar[str] = "list_visitors"
    cutoff_ms: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class ClaimDueKeys(Contract):
    script: ClassVar[str] = "claim_due"
    index: str


@dataclass(frozen=True, slots=True)
class ClaimDueArgs(Contract):
    script: ClassVar[str] = "claim_due"
    now_ms: int
    limit: int
    due_ms: int


KEY_CONTRACTS: tuple[type[Contract], ...] = (
    CommunityState,
    RecordKeys,
    HeartbeatKeys,
    PruneKeys,
    ReadStateKeys,
    InstallKeys,
    RolledKeys,
    ClaimDueKeys,
    EvictKeys,
    AdoptKeys,
    FoldKeys,
    PlaceKeys,
)
ARG_CONTRACTS: tuple[type[Contract], ...] = (
    RecordArgs,
    HeartbeatArgs,
    RemoveArgs,
    PruneArgs,
    ReadStateArgs,
    InstallArgs,
    RolledArgs,
    ListVisitorsArgs,
    ClaimDueArgs,
    EvictArgs,
    AdoptArgs,
    FoldArgs,
    PlaceArgs,
)


def read_script(name: str) -> str:
    return (files("community_tracker.redis") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def script_source(name: str) -> str:
    parts = [read_script(name)]
    if name in CALENDAR_SCRIPTS:
        parts.insert(0, read_script("calendar"))
    if name in COMMUNITY_SCRIPTS:
        parts.insert(0, read_script("community"))
    return "\n".join(parts)


class LuaScripts:
    """Runs the project's scripts on a single node: batches go in one pipeline."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._shas = {
            name: hashlib.sha1(script_source(name).encode(), usedforsecurity=False).hexdigest()
            for name in COMMUNITY_SCRIPTS + INDEX_SCRIPTS
        }

    def _load(self, name: str) -> None:
        # On a cluster, SCRIPT LOAD goes to every primary.
        self._client.script_load(script_source(name))

    def call(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """One `EVALSHA`; the cluster client routes it by the keys' shared hash slot."""
        try:
            return self._client.evalsha(self._shas[name], len(keys), *keys, *args)
        except NoScriptError:
            self._load(name)
            return self._client.evalsha(self._shas[name], len(keys), *keys, *args)

    def call_many(self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Arg]]]) -> list[Any]:
        """The same script for many key sets in one pipeline. Only for scripts that may safely
        run twice (the whole pipeline is replayed after a `NOSCRIPT`)."""
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.evalsha(self._shas[name], len(keys), *keys, *args)
            results = pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(result, NoScriptError) for result in results):
                self._load(name)
                continue
            for result in results:
                if isinstance(result, Exception):
                    raise result
            return results
        raise AssertionError("unreachable: the second attempt returns or raises")

    def call_each(self, calls: Sequence[tuple[str, Sequence[str], Sequence[Arg]]], *, raw: bool = False) -> list[Any]:
        """Scripts for key sets in several slots, in one pipeline, which a cluster client splits by
        node (one round trip per node, every node's calls written before any reply is read):
        `EVALSHA` through `execute_command`, which its pipelines pass on. A call answered
        `NOSCRIPT` did not run, and only those go again once their script is loaded (a node may
        lack a script the others have), so any script may be called here. `raw`: replies keep
        their bytes (a sketch is no text)."""
        options: dict[str, Any] = {NEVER_DECODE: []} if raw else {}
        results = self._pipelined(calls, options)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:
            for name in {calls[i][0] for i in missing}:
                self._load(name)
            for i, result in zip(missing, self._pipelined([calls[i] for i in missing], options), strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def _pipelined(
        self, calls: Sequence[tuple[str, Sequence[str], Sequence[Arg]]], options: dict[str, Any]
    ) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for name, keys, args in calls:
            pipe.execute_command("EVALSHA", self._shas[name], len(keys), *keys, *args, **options)
        return list(pipe.execute(raise_on_error=False))


class ClusterLuaScripts(LuaScripts):
    """On a cluster, whose pipelines refuse `EVALSHA`: one call per key set."""

    def call_many(self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Arg]]]) -> list[Any]:
        return [self.call(name, keys, args) for keys, args in calls]
