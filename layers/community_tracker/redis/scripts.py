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
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

RedisClient = Redis | RedisCluster
Arg = str | int | float

# Scripts that work on one community start with the shared prelude (its keys and helpers).
COMMUNITY_SCRIPTS = ("record", "heartbeat", "remove", "prune", "read_state", "list_visitors")
INDEX_SCRIPTS = ("claim_due",)


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
    day_expire_at: int
    week_expire_at: int
    month_expire_at: int
    series_expire_at: int
    history_expire_at: int
    community_id: str
    user_set_ttl_ms: int
    rates_expire_at: int  # the minute's end and a margin (s): its rate counters are for that minute only
    window_ms: int
    presence_ms: int
    index_refresh_ms: int
    day_start_ms: int  # today's first ms: a person heard since was counted in today's buckets
    client: str  # the client's key, its field in the minute's rate counters ('' none)


@dataclass(frozen=True, slots=True)
class HeartbeatKeys(CommunityState):
    """A heartbeat of a live connection (the state, this hour's series); anything else it sends
    back to `record`."""

    script: ClassVar[str] = "heartbeat"
    series: str
    user_communities: str | None = None  # single node only, as for `record`


@dataclass(frozen=True, slots=True)
class HeartbeatArgs(BeaconArgs):
    script: ClassVar[str] = "heartbeat"
    is_authenticated: int
    community_division: str
    visitor_division: str
    connection_rate_limit: int
    minute: int
    series_expire_at: int
    community_id: str
    user_set_ttl_ms: int
    index_refresh_ms: int
    day_start_ms: int


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
    closed_peak_yesterday: str
    closed_peak_day_before: str
    closed_peak_last_week: str
    closed_peak_last_month: str
    peak_day: str
    peak_week: str
    peak_month: str


@dataclass(frozen=True, slots=True)
class PruneArgs(Contract):
    script: ClassVar[str] = "prune"
    cutoff_ms: int
    minute: int
    series_expire_at: int


@dataclass(frozen=True, slots=True)
class ReadStateArgs(Contract):
    """KEYS of read_state: the state, peaks and unique sketches of day/week/month, then any
    number of series hours."""

    script: ClassVar[str] = "read_state"
    cutoff_ms: int
    present_after_ms: int


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


KEY_CONTRACTS: tuple[type[Contract], ...] = (CommunityState, RecordKeys, HeartbeatKeys, PruneKeys, ClaimDueKeys)
ARG_CONTRACTS: tuple[type[Contract], ...] = (
    RecordArgs,
    HeartbeatArgs,
    RemoveArgs,
    PruneArgs,
    ReadStateArgs,
    ListVisitorsArgs,
    ClaimDueArgs,
)


def read_script(name: str) -> str:
    return (files("community_tracker.redis") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def script_source(name: str) -> str:
    body = read_script(name)
    return read_script("community") + "\n" + body if name in COMMUNITY_SCRIPTS else body


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


class ClusterLuaScripts(LuaScripts):
    """On a cluster, whose pipelines refuse `EVALSHA`: one call per key set."""

    def call_many(self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Arg]]]) -> list[Any]:
        return [self.call(name, keys, args) for keys, args in calls]
