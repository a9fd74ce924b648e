"""DynamoDB stores: communities, visit events and peak rollups in one table (README, "Deploying").

Each store is a small class over the table, built by a cached factory on first use; the domain
takes them as parameters, so tests pass moto- or emulator-backed ones. botocore's errors end here:
the visit and peak stores raise `HistoryUnavailable`, the community store `DirectoryUnavailable`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from boto3.dynamodb.types import Binary
from botocore.exceptions import BotoCoreError, ClientError

from community_tracker.aws.clients import CONNECTIONS_PER_CLIENT, dynamodb_resource
from community_tracker.errors import DirectoryUnavailable, HistoryUnavailable, InvalidCursor
from community_tracker.factories import cached_factory
from community_tracker.models import (
    Checkpoint,
    CheckpointBucket,
    Community,
    Peak,
    VisitEvent,
    VisitHistoryPage,
    VisitMetadata,
    ZoneRegistration,
)
from community_tracker.settings import get_settings
from community_tracker.timeutil import Bucket, Period, iso, natural_bucket, to_ms

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import Table

USER_INDEX = "ByUser"
_META = "META"
_CHECKPOINT = "CHECKPOINT"
_EVENT = "EVENT"
# How long an event id keeps a retry from being stored twice: far past any client's retries
# (the beacon script gives up on a page view after a day).
EVENT_GUARD_SECONDS = 8 * 86_400


CONFLICT_ATTEMPTS = 3
# A community history page stops reading its partitions after this (README, "Timeouts").
HISTORY_READ_SECONDS = 3.0
# An erasure stops after this, well inside the function's timeout, and says it is not complete
# (README, "Visit history (DynamoDB)"); it deletes a page of the user's index at a time.
HISTORY_ERASE_SECONDS = 5.0
ERASE_PAGE = 200
# A page reads this many of its partitions at once (README, "Visit history (DynamoDB)"), each
# on a connection of the client's own.
HISTORY_READERS = CONNECTIONS_PER_CLIENT


@functools.cache
def _history_pool() -> ThreadPoolExecutor:
    """The threads a history page reads its partitions on: made on first use (never at import,
    nor before a SnapStart snapshot), kept for the execution environment."""
    return ThreadPoolExecutor(max_workers=HISTORY_READERS, thread_name_prefix="history")


def _cancelled_for(error: ClientError, reason: str) -> bool:
    """Whether a write failed for `reason` (a transaction's cancellation reasons name it)."""
    code = error.response["Error"]["Code"]
    if code == f"{reason}Exception":
        return True
    reasons = error.response.get("CancellationReasons") or []
    return code == "TransactionCanceledException" and any(r.get("Code") == reason for r in reasons)


_AWS_ERRORS = (ClientError, BotoCoreError)


P = ParamSpec("P")
R = TypeVar("R")


def _history_errors(method: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _translated(HistoryUnavailable, "visit history"):
            return method(*args, **kwargs)

    return wrapper


@contextmanager
def _translated(domain_error: type[Exception], what: str) -> Iterator[None]:
    try:
        yield
    except _AWS_ERRORS as error:
        raise domain_error(f"{what} unavailable ({type(error).__name__})") from error


def _community_pk(community_id: str) -> str:
    return f"COMMUNITY#{community_id}"


def _event_pk(event_id: str) -> str:
    return f"EVENT#{event_id}"


def _user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


VISIT_PREFIX = "VISIT#"


def _visit_sk(timestamp: str, event_id: str) -> str:
    return f"{VISIT_PREFIX}{timestamp}#{event_id}"


def visit_partition(event_id: str, parts: int) -> int:
    """Which of a community's `parts` visit partitions holds an event: by a hash of its event id,
    so writes spread evenly over them and a retry goes where its first try went (`parts` alike)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % parts


def _visit_pk(community_id: str, partition: int) -> str:
    """Partition 0 is the community's own key (where every visit was before, and every one at
    `parts=1`); a community id holds no `#`, so `COMMUNITY#<id>#<k>` is never another's key."""
    base = _community_pk(community_id)
    return base if partition == 0 else f"{base}#{partition}"


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps(last_key, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str | None, expected_keys: set[str]) -> dict[str, str] | None:
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidCursor("the cursor is not one this API handed out") from error
    if (
        not isinstance(key, dict)
        or set(key) != expected_keys
        or not all(isinstance(v, str) and len(v) <= 512 for v in key.values())
    ):
        raise InvalidCursor("the cursor is not one this API handed out")
    return key


class CommunityStore(Protocol):
    def get(self, community_id: str) -> Community | None: ...
    def put(self, community: Community) -> None: ...
    def fresh(self, community_id: str) -> Community | None: ...
    def replace(self, community: Community, previous: Community | None) -> bool: ...


def _community_from_item(item: dict[str, Any]) -> Community:
    history = item.get("zone_history") or []
    return Community(
        community_id=str(item["community_id"]),
        slug=str(item["slug"]),
        name=str(item["name"]),
        division_id=str(item["division_id"]) if item.get("division_id") else None,
        time_zone=str(item.get("time_zone") or get_settings().default_time_zone),
        zone_history=tuple(
            ZoneRegistration(time_zone=str(entry["time_zone"]), registered_ms=int(entry["registered_ms"]))
            for entry in history
        ),
        version=int(item.get("version") or 0),
        parts=int(item.get("parts") or 1),
        history_parts=int(item.get("history_parts") or 1),
    )


class DynamoCommunityStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, community_id: str, *, consistent: bool = False) -> Community | None:
        with _translated(DirectoryUnavailable, "community directory"):
            item = self._table.get_item(
                Key={"PK": _community_pk(community_id), "SK": _META}, ConsistentRead=consistent
            ).get("Item")
        return _community_from_item(item) if item is not None else None

    def fresh(self, community_id: str) -> Community | None:
        """What the directory holds now (a strongly consistent read)."""
        return self.get(community_id, consistent=True)

    def _item(self, community: Community) -> dict[str, Any]:
        return {
            "PK": _community_pk(community.community_id),
            "SK": _META,
            "entity": "community",
            **community.model_dump(),
        }

    def put(self, community: Community) -> None:
        with _translated(DirectoryUnavailable, "community directory"):
            self._table.put_item(Item=self._item(community))

    def replace(self, community: Community, previous: Community | None) -> bool:
        """Writes `community` if the directory still holds `previous` (None: nothing), by version;
        False when another registration came first."""
        condition: ConditionBase
        if previous is None:
            condition = Attr("PK").not_exists()
        elif previous.version == 0:
            condition = Attr("version").not_exists() | Attr("version").eq(0)
        else:
            condition = Attr("version").eq(previous.version)
        with _translated(DirectoryUnavailable, "community directory"):
            try:
                self._table.put_item(Item=self._item(community), ConditionExpression=condition)
            except ClientError as error:
                if _cancelled_for(error, "ConditionalCheckFailed"):
                    return False
                raise
        return True


class CachedCommunityStore:
    """Keeps looked-up communities for a short time; unknown ids for a shorter one, so a flood of
    random ids costs one read each per container, and a newly registered community soon shows.

    While the directory is down, a community looked up before is served from the cache (and not
    asked for again for `outage_backoff_seconds`), so beacons of known communities never wait on
    DynamoDB; only an id never seen answers 503.
    """

    def __init__(
        self,
        store: CommunityStore,
        ttl_seconds: float,
        *,
        unknown_ttl_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
        outage_backoff_seconds: float = 15.0,
    ) -> None:
        self._outage_backoff = outage_backoff_seconds
        self._store = store
        self._ttl = ttl_seconds
        self._unknown_ttl = min(unknown_ttl_seconds, ttl_seconds)
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, tuple[float, Community | None]] = {}

    def get(self, community_id: str) -> Community | None:
        now = self._clock()
        cached = self._entries.get(community_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            community = self._store.get(community_id)
        except DirectoryUnavailable:
            if cached is None:
                raise
            self._entries[community_id] = (now + self._outage_backoff, cached[1])
            return cached[1]
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[community_id] = (now + (self._ttl if community else self._unknown_ttl), community)
        return community

    def put(self, community: Community) -> None:
        self._store.put(community)
        self._entries[community.community_id] = (self._clock() + self._ttl, community)

    def fresh(self, community_id: str) -> Community | None:
        """The directory's current entry, read through (and kept): for a function told by Redis
        that a newer registration exists than the one it keeps."""
        community = self._store.fresh(community_id)
        self._entries[community_id] = (self._clock() + (self._ttl if community else self._unknown_ttl), community)
        return community

    def replace(self, community: Community, previous: Community | None) -> bool:
        written = self._store.replace(community, previous)
        if written:
            self._entries[community.community_id] = (self._clock() + self._ttl, community)
        return written


def visit_item(event: VisitEvent, parts: int = 1) -> dict[str, Any]:
    """The `community_visit` item of one event: under one of its community's `parts` partition
    keys, and under its user in the ByUser index, both sorted by time."""
    sort_key = _visit_sk(event.timestamp, event.event_id)
    return {
        "PK": _visit_pk(event.metadata.community_id, visit_partition(event.event_id, parts)),
        "SK": sort_key,
        "GSI1PK": _user_pk(event.user_id),
        "GSI1SK": sort_key,
        **event.model_dump(),
    }


def _visit_from_item(item: dict[str, Any]) -> VisitEvent:
    metadata = item["metadata"]
    return VisitEvent(
        event_id=str(item["event_id"]),
        user_id=str(item["user_id"]),
        timestamp=str(item["timestamp"]),
        metadata=VisitMetadata.model_validate(metadata),
    )


# A page of the export stays well under Lambda's 6 MB response, envelope and headers included.
EXPORT_PAGE_BYTES = 4_000_000


@dataclass(frozen=True, slots=True)
class ExportPage:
    """Visits as JSON texts (one `VisitEvent` each), and the cursor of the next page."""

    fragments: list[str]
    next_cursor: str | None

    def body(self) -> str:
        """`{"visits": [...], "next_cursor": ...}`, the `VisitHistoryPage` shape, without parsing
        the fragments again."""
        return f'{{"visits":[{",".join(self.fragments)}],"next_cursor":{json.dumps(self.next_cursor)}}}'


@dataclass(frozen=True, slots=True)
class HistoryPosition:
    """Where a page of a community's history ended, for each of its partitions: those in `done`
    have nothing left; every other one goes on just after `after`, the sort key of the page's
    last visit (the merge handed out everything newer, from every partition)."""

    after: str
    done: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Erasure:
    """What one erasure call did: how many visits it deleted, and whether none is left."""

    deleted: int
    complete: bool


@dataclass(frozen=True, slots=True)
class CommunityHistoryPage:
    visits: list[VisitEvent]
    next: HistoryPosition | None


class _PartitionReader:
    """One partition's visits, newest first, read a chunk at a time as the merge takes them.

    A page reads its partitions at once, on threads: through the table's client, which botocore
    makes safe to share between threads (a resource is not). The client still turns Python values
    into DynamoDB's and back (boto3's transformation injector, on every client of a resource);
    the key condition is a string, since the injector's condition builder is one per client."""

    def __init__(
        self, client: DynamoDBClient, table: str, pk: str, partition: int, after: str | None, chunk: int
    ) -> None:
        self._client = client
        self.partition = partition
        self._query: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :visit)",
            "ExpressionAttributeValues": {":pk": pk, ":visit": VISIT_PREFIX},
            "ScanIndexForward": False,
        }
        if after is not None:
            # A position, not necessarily a key of this partition: DynamoDB starts after it either way.
            self._query["ExclusiveStartKey"] = {"PK": pk, "SK": after}
        self._chunk = chunk
        self._buffer: deque[dict[str, Any]] = deque()
        self._more = True

    @property
    def needs_read(self) -> bool:
        """Nothing buffered, and the partition may hold more: its head is not known."""
        return not self._buffer and self._more

    def read(self, share: int) -> None:
        """The next chunk; `share`: what a later read asks for (and one more)."""
        response = self._client.query(Limit=self._chunk, **self._query)
        self._buffer.extend(cast(list[dict[str, Any]], response["Items"]))
        self._more = "LastEvaluatedKey" in response
        if self._more:
            self._query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        self._chunk = share + 1

    @property
    def head(self) -> dict[str, Any] | None:
        """The partition's newest visit not taken yet (once read)."""
        return self._buffer[0] if self._buffer else None

    def head_key(self) -> str:
        return str(self._buffer[0]["SK"])

    def pop(self) -> dict[str, Any]:
        return self._buffer.popleft()

    @property
    def done(self) -> bool:
        return not self._buffer and not self._more


class DynamoVisitStore:
    """`community_visit` events: by community (table) and by user (the ByUser index)."""

    _INDEX_KEYS = {"PK", "SK", "GSI1PK", "GSI1SK"}

    def __init__(self, table: Table, retention_days: int = 0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._table = table
        self._retention_seconds = retention_days * 86_400
        self._clock = clock

    @_history_errors
    def put_visit(self, event: VisitEvent, *, parts: int = 1) -> bool:
        """Writes the event once per event id, whenever it is retried. False: it was there.

        The visit's key holds its time (history reads come newest first) and its partition (one
        of the community's `parts`), which a retry may not know or may see changed: so the write
        is a transaction with a guard item keyed by the event id alone (`EVENT#<event_id>`), and
        only the guard's absence lets the visit in.
        """
        now_s = int(time.time())
        item = visit_item(event, parts)
        if self._retention_seconds:
            item["expires_at"] = now_s + self._retention_seconds
        guard = {
            "PK": _event_pk(event.event_id),
            "SK": _EVENT,
            "entity": "event_guard",
            "visit_pk": item["PK"],
            "visit_sk": item["SK"],
            "expires_at": now_s + min(self._retention_seconds or EVENT_GUARD_SECONDS, EVENT_GUARD_SECONDS),
        }
        # The resource's client serializes Python values itself (boto3's transformation injector).
        puts = [
            {"Put": {"TableName": self._table.name, "Item": new, "ConditionExpression": "attribute_not_exists(PK)"}}
            for new in (guard, item)
        ]
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                self._table.meta.client.transact_write_items(TransactItems=puts)  # type: ignore[arg-type]
            except ClientError as error:
                if _cancelled_for(error, "ConditionalCheckFailed"):
                    return False
                # Another request is writing the same guard this instant (a racing retry): once
                # it is done, this one finds the guard and is a duplicate, or takes it.
                if not _cancelled_for(error, "TransactionConflict") or attempt == CONFLICT_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)
            else:
                return True
        raise AssertionError("unreachable: the last attempt returns or raises")

    @_history_errors
    def community_visits(
        self,
        community_id: str,
        *,
        limit: int,
        after: HistoryPosition | None = None,
        partitions: int = 1,
        budget_seconds: float | None = None,
    ) -> CommunityHistoryPage:
        """Newest first, merged from the community's `partitions` visit partitions: each is read
        newest first from where the page before ended, and the newest head of them all goes next.
        A partition's reads ask for its share of what the page still needs, and one more (so a
        partition that ends with the page is known to be done): visits spread evenly, so a page
        reads not much more than it hands out. Past `budget_seconds` (`HISTORY_READ_SECONDS`) of reading, the page ends
        with what it has (its position goes on from there), or, with nothing yet, is
        `HistoryUnavailable`: a 503 in time, never a Lambda timeout."""
        deadline = self._clock() + (HISTORY_READ_SECONDS if budget_seconds is None else budget_seconds)
        done = after.done if after is not None else frozenset()
        start = after.after if after is not None else None
        client, table = self._table.meta.client, self._table.name
        first_chunk = -(-limit // partitions) + 1
        readers = [
            _PartitionReader(client, table, _visit_pk(community_id, k), k, start, first_chunk)
            for k in range(partitions)
            if k not in done
        ]
        taken: list[dict[str, Any]] = []
        while len(taken) < limit:
            share = -(-(limit - len(taken)) // partitions)
            unread = [reader for reader in readers if reader.needs_read]
            if unread and not self._read_all(unread, share, deadline):
                if not taken:
                    raise HistoryUnavailable("visit history: its partitions answer too slowly, try again")
                # The partitions still reading are left out: only those whose state is known count
                return self._history_page(taken, done, [r for r in readers if r not in unread], partitions)
            heads = [reader for reader in readers if reader.head is not None]
            if not heads:
                break
            taken.append(max(heads, key=_PartitionReader.head_key).pop())
        return self._history_page(taken, done, readers, partitions)

    def _read_all(self, readers: list[_PartitionReader], share: int, deadline: float) -> bool:
        """Reads the next chunk of every reader at once, within the page's budget. False: the
        budget ended first (what is still reading then is left to itself; its reader is dropped
        with the page). A read's own error is raised."""
        now = self._clock()
        if now > deadline:
            return False
        futures: list[Future[None]] = [_history_pool().submit(reader.read, share) for reader in readers]
        finished, pending = wait(futures, timeout=deadline - now if math.isfinite(deadline) else None)
        for future in finished:
            future.result()
        return not pending

    @staticmethod
    def _history_page(
        taken: list[dict[str, Any]], done: frozenset[int], readers: list[_PartitionReader], partitions: int
    ) -> CommunityHistoryPage:
        done = done | {reader.partition for reader in readers if reader.done}
        finished = all(k in done for k in range(partitions))
        return CommunityHistoryPage(
            visits=[_visit_from_item(item) for item in taken],
            next=None if finished else HistoryPosition(after=str(taken[-1]["SK"]), done=done),
        )

    def user_visits(self, user_id: str, *, limit: int, cursor: str | None) -> VisitHistoryPage:
        """Newest first, from the ByUser index."""
        query = {"IndexName": USER_INDEX, "KeyConditionExpression": Key("GSI1PK").eq(_user_pk(user_id))}
        return self._page(query, self._INDEX_KEYS, limit, cursor)

    @_history_errors
    def _page(self, query: dict[str, Any], cursor_keys: set[str], limit: int, cursor: str | None) -> VisitHistoryPage:
        start = decode_cursor(cursor, cursor_keys)
        if start is not None:
            query["ExclusiveStartKey"] = start
        response = self._table.query(ScanIndexForward=False, Limit=limit, **query)
        return VisitHistoryPage(
            visits=[_visit_from_item(item) for item in response["Items"]],
            next_cursor=encode_cursor(response.get("LastEvaluatedKey")),
        )

    @_history_errors
    def export_page(self, user_id: str, *, cursor: str | None, max_bytes: int = EXPORT_PAGE_BYTES) -> ExportPage:
        """One page of the user's whole history, newest first, as JSON fragments whose size (as the
        Lambda runtime escapes them into its response, `json.dumps`) stays within `max_bytes`;
        the cursor of the next page is the index key of the last visit on this one. Bounded by
        bytes, not by count, so a page fits Lambda's 6 MB response whatever the visits hold."""
        start: dict[str, Any] | None = decode_cursor(cursor, self._INDEX_KEYS)
        fragments: list[str] = []
        size = 0
        last: dict[str, Any] | None = None
        query: dict[str, Any] = {
            "IndexName": USER_INDEX,
            "KeyConditionExpression": Key("GSI1PK").eq(_user_pk(user_id)),
            "ScanIndexForward": False,
        }
        while True:
            if start is not None:
                query["ExclusiveStartKey"] = start
            if fragments:
                # Read about what is left of the page, not a whole 1 MB answer mostly thrown away.
                query["Limit"] = (max_bytes - size) * len(fragments) // size + 1
            response = self._table.query(**query)
            for item in response["Items"]:
                fragment = _visit_from_item(item).model_dump_json()
                cost = len(json.dumps(fragment)) + 1
                if fragments and size + cost > max_bytes:
                    return ExportPage(fragments, encode_cursor(last))
                fragments.append(fragment)
                size += cost
                last = {key: item[key] for key in self._INDEX_KEYS}
            start = dict(response["LastEvaluatedKey"]) if "LastEvaluatedKey" in response else None
            if start is None:
                return ExportPage(fragments, None)

    def _user_items(self, user_id: str) -> Iterator[dict[str, Any]]:
        """Every ByUser item of the user: each carries its table key, whichever partition it is in."""
        query: dict[str, Any] = {"IndexName": USER_INDEX, "KeyConditionExpression": Key("GSI1PK").eq(_user_pk(user_id))}
        while True:
            response = self._table.query(**query)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def all_user_visits(self, user_id: str) -> Iterator[VisitEvent]:
        return (_visit_from_item(item) for item in self._user_items(user_id))

    @_history_errors
    def delete_user_visits(self, user_id: str, *, budget_seconds: float | None = None) -> Erasure:
        """Erases the user's visit events, and their event guards, a page of the ByUser index at
        a time, for up to `budget_seconds` (`HISTORY_ERASE_SECONDS`): a history too long for one
        call is `complete=False`, and the next call goes on (what is gone is not listed again).
        Each item is deleted by the key the index gives back, so a visit in any partition is found."""
        deadline = self._clock() + (HISTORY_ERASE_SECONDS if budget_seconds is None else budget_seconds)
        deleted = 0
        query: dict[str, Any] = {
            "IndexName": USER_INDEX,
            "KeyConditionExpression": Key("GSI1PK").eq(_user_pk(user_id)),
            "Limit": ERASE_PAGE,
        }
        while True:
            response = self._table.query(**query)
            with self._table.batch_writer() as batch:
                for item in response["Items"]:
                    batch.delete_item(Key={"PK": item["PK"], "SK": item["SK"]})
                    batch.delete_item(Key={"PK": _event_pk(str(item["event_id"])), "SK": _EVENT})
                    deleted += 1
            if "LastEvaluatedKey" not in response:
                return Erasure(deleted=deleted, complete=True)
            if self._clock() > deadline:
                return Erasure(deleted=deleted, complete=False)
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _figure(value: Any) -> int:
    """A count as DynamoDB returns it: typed (the resource), or `{"N": "3"}` (a refusal's item)."""
    if isinstance(value, dict):
        value = value.get("N", 0)
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("S")
    return value


def _peak_sk(period: str, start: str) -> str:
    # By the bucket's start instant: unique (two buckets named alike across a change of zone are
    # not), and in time order whatever the zones.
    return f"PEAK#{period}#{start}"


def _legacy_bucket(period: Period, label: str) -> Bucket | None:
    """A rollup written before buckets carried their zone: a UTC bucket named `label`."""
    try:
        if period == "day":
            day = date.fromisoformat(label)
        elif period == "week":
            year, week = label.split("-W")
            day = date.fromisocalendar(int(year), int(week), 1)
        else:
            day = date.fromisoformat(f"{label}-01")
    except ValueError:
        return None
    return natural_bucket(period, to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC)))


def _peak_from_item(period: Period, item: dict[str, Any]) -> Peak | None:
    count = int(item["count"]) if isinstance(item.get("count"), Decimal | int) else 0
    reached_at = str(item["reached_at"]) if item.get("reached_at") else None
    unique = int(item["unique_visitors"]) if isinstance(item.get("unique_visitors"), Decimal | int) else None
    if "start" not in item:
        legacy = _legacy_bucket(period, str(item.get("bucket", "")))
        return Peak.at(legacy, count, reached_at, unique) if legacy is not None else None
    return Peak(
        period=period,
        bucket=str(item["bucket"]),
        time_zone=str(item["time_zone"]),
        start=str(item["start"]),
        end=str(item["end"]),
        count=count,
        reached_at=reached_at,
        unique_visitors=unique,
    )


class DynamoPeakStore:
    """Closed peak buckets, written by cleanup so peaks have history after Redis forgets them."""

    def __init__(self, table: Table) -> None:
        self._table = table

    @_history_errors
    def put_rollup(self, community_id: str, peak: Peak) -> None:
        """Idempotent, and never lowers a stored figure (two cleanups may write the same bucket,
        and a late beacon makes cleanup write a closed one again). PutItem only (cleanup's role
        allows nothing else): a put refused because one figure is lower learns the stored item
        from the refusal and puts the higher of each, on the condition it is still that item."""
        key = {"PK": _community_pk(community_id), "SK": _peak_sk(peak.period, peak.start)}
        unique = peak.unique_visitors or 0
        item: dict[str, Any] = {**key, "entity": "peak", **peak.model_dump(), "unique_visitors": unique}
        condition: ConditionBase = Attr("PK").not_exists() | (
            Attr("count").lte(peak.count) & (Attr("unique_visitors").not_exists() | Attr("unique_visitors").lte(unique))
        )
        for _attempt in range(3):
            try:
                self._table.put_item(
                    Item=item, ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD"
                )
                return
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                stored = cast(dict[str, Any], error.response.get("Item") or {})
            stored_count, stored_unique = _figure(stored.get("count")), _figure(stored.get("unique_visitors"))
            if stored_count >= item["count"] and stored_unique >= item["unique_visitors"]:
                return  # nothing to raise
            if stored_count > item["count"]:
                item.update(count=stored_count, reached_at=_plain(stored.get("reached_at")))
            item["unique_visitors"] = max(stored_unique, item["unique_visitors"])
            condition = Attr("count").eq(stored_count) & (
                Attr("unique_visitors").eq(stored_unique)
                if "unique_visitors" in stored
                else Attr("unique_visitors").not_exists()
            )
        raise HistoryUnavailable(f"peak {peak.period} {peak.bucket}: concurrent rollups, written next pass")

    @_history_errors
    def rollups(self, community_id: str, period: Period, *, limit: int) -> list[Peak]:
        """Newest bucket first."""
        response = self._table.query(
            KeyConditionExpression=Key("PK").eq(_community_pk(community_id)) & Key("SK").begins_with(f"PEAK#{period}#"),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [peak for item in response["Items"] if (peak := _peak_from_item(period, item)) is not None]

    @_history_errors
    def rollups_since(self, community_id: str, period: Period, start_ms: int) -> list[Peak]:
        """Every rollup of a bucket starting at or after `start_ms`, newest first."""
        condition = Key("PK").eq(_community_pk(community_id)) & Key("SK").between(
            _peak_sk(period, iso(start_ms)), _peak_sk(period, "~")
        )
        query: dict[str, Any] = {"KeyConditionExpression": condition, "ScanIndexForward": False}
        peaks: list[Peak] = []
        while True:
            response = self._table.query(**query)
            peaks.extend(peak for item in response["Items"] if (peak := _peak_from_item(period, item)) is not None)
            if "LastEvaluatedKey" not in response:
                return peaks
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class DynamoCheckpointStore:
    """Each community's last checkpoint of its open calendar figures (one item, replaced)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    @_history_errors
    def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Kept only if no later checkpoint is there (two passes may race)."""
        item: dict[str, Any] = {
            "PK": _community_pk(checkpoint.community_id),
            "SK": _CHECKPOINT,
            "entity": "checkpoint",
            "taken_ms": checkpoint.taken_ms,
            "buckets": [
                {**bucket.model_dump(exclude={"sketch"}), "sketch": Binary(bucket.sketch or b"")}
                for bucket in checkpoint.buckets
            ],
        }
        try:
            self._table.put_item(
                Item=item, ConditionExpression=Attr("PK").not_exists() | Attr("taken_ms").lte(checkpoint.taken_ms)
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    @_history_errors
    def load_checkpoint(self, community_id: str) -> Checkpoint | None:
        item = self._table.get_item(Key={"PK": _community_pk(community_id), "SK": _CHECKPOINT}).get("Item")
        if item is None:
            return None
        buckets = []
        for entry in cast(list[dict[str, Any]], item.get("buckets") or []):
            sketch = entry.get("sketch")
            buckets.append(
                CheckpointBucket(
                    period=entry["period"],
                    bucket=str(entry["bucket"]),
                    time_zone=str(entry["time_zone"]),
                    start_ms=int(entry["start_ms"]),
                    end_ms=int(entry["end_ms"]),
                    count=int(entry["count"]),
                    at_ms=int(entry["at_ms"]),
                    sketch=bytes(cast(Any, sketch).value) or None if isinstance(sketch, Binary) else None,
                )
            )
        return Checkpoint(community_id=community_id, taken_ms=int(str(item["taken_ms"])), buckets=tuple(buckets))


@dataclass(frozen=True, slots=True)
class Stores:
    communities: CommunityStore
    visits: DynamoVisitStore
    peaks: DynamoPeakStore
    checkpoints: DynamoCheckpointStore


@cached_factory
def get_stores() -> Stores:
    settings = get_settings()
    table = dynamodb_resource().Table(settings.table_name)
    return Stores(
        communities=CachedCommunityStore(DynamoCommunityStore(table), settings.community_cache_seconds),
        visits=DynamoVisitStore(table, settings.visit_retention_days),
        peaks=DynamoPeakStore(table),
        checkpoints=DynamoCheckpointStore(table),
    )
