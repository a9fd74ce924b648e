"""Time in one unit (epoch milliseconds, UTC) and the calendar buckets built on it, in any IANA
time zone (`zoneinfo`), with the changes of zone a community makes over time (`Calendar`).

Everything that records or reads presence takes `now_ms` from its caller, so tests and the
property-based model can move the clock.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Clock = Callable[[], int]
Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def system_clock() -> int:
    """Wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def iso(ms: int) -> str:
    """ISO 8601 UTC with a `Z`, millisecond precision: 2026-11-24T22:06:04.123Z."""
    return f"{_second(ms // 1000)}.{ms % 1000:03d}Z"


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # Formatting dates is a good part of a beacon's own CPU time; a second's text is reused.
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class Bucket:
    """One calendar bucket: the day, ISO week or month of one time zone, or the part of one that
    follows a change of zone (see `Calendar`).

    `id` is what a person reads (`2026-11-24`, `2026-W48`, `2026-11`, in `zone`); `key` adds the
    zone (`2026-11-24@America/Toronto`): the name of its Redis keys, never the same for two
    buckets. `start_ms` (inclusive) and `end_ms` (exclusive) are instants: 23 or 25 hours apart
    on the day a zone moves its clocks.
    """

    period: Period
    id: str
    start_ms: int
    end_ms: int
    zone: str = "UTC"

    @property
    def key(self) -> str:
        return f"{self.id}@{self.zone}"

    def contains(self, ms: int) -> bool:
        return self.start_ms <= ms < self.end_ms


def is_time_zone(name: str) -> bool:
    """An IANA time zone this runtime knows (`zoneinfo`: the system's tz database, else the
    `tzdata` package)."""
    if not _ZONE_NAME.fullmatch(name):
        return False
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}")


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_start(day: date, zone: ZoneInfo) -> int:
    """The first instant of a local date: local midnight, or the end of a clock change that skips
    it (fold 0 reads a skipped time with the offset before the change, which is that instant)."""
    return to_ms(datetime(day.year, day.month, day.day, tzinfo=zone))


@lru_cache(maxsize=4096)
def _natural(period: Period, zone_name: str, day: date) -> Bucket:
    """The day, ISO week or month (of `zone_name`) that holds the local date `day`."""
    zone = _zone(zone_name)
    if period == "day":
        first, following, label = day, day + timedelta(days=1), day.isoformat()
    elif period == "week":
        year, week, weekday = day.isocalendar()
        first = day - timedelta(days=weekday - 1)
        following, label = first + timedelta(days=7), f"{year}-W{week:02d}"
    else:
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        label = f"{day.year}-{day.month:02d}"
    return Bucket(period, label, _local_start(first, zone), _local_start(following, zone), zone_name)


def natural_bucket(period: Period, ms: int, zone_name: str = "UTC") -> Bucket:
    """The day, ISO week or month of `zone_name` that contains the instant `ms`. Zones move their
    clocks on whole seconds, so the second `ms` lies in tells the local date."""
    if zone_name == "UTC":
        day = date.fromordinal(_EPOCH_ORDINAL + ms // DAY_MS)
    else:
        day = datetime.fromtimestamp(ms // 1000, tz=_zone(zone_name)).date()
    return _natural(period, zone_name, day)


@dataclass(frozen=True, slots=True)
class ZoneChange:
    """A time zone a community registered at `at_ms` (0: from the start)."""

    zone: str
    at_ms: int


_FOREVER = -(2**53)


class Calendar:
    """The buckets of one community: its time zones over time.

    A change of zone registered at some instant takes effect, for each period, at the end of the
    bucket that instant lies in: an open bucket keeps its boundaries (and its zone) to its end.
    The first bucket after the change starts there, and ends where the new zone's bucket does:
    moving from UTC to America/Toronto on 5 March, the UTC day 2031-03-05 runs to midnight UTC,
    then the Toronto day 2031-03-05 runs from that midnight to Toronto's midnight (five hours),
    then Toronto days follow. A change registered while an earlier one still waits replaces it.
    """

    __slots__ = ("_last", "_segments", "changes")

    def __init__(self, changes: tuple[ZoneChange, ...]) -> None:
        if not changes:
            raise ValueError("a calendar has at least one time zone")
        self.changes = changes
        self._segments: dict[Period, list[tuple[int, str]]] = {p: [(_FOREVER, changes[0].zone)] for p in PERIODS}
        self._last: dict[Period, Bucket] = {}
        for change in changes[1:]:
            for period in PERIODS:
                effective = self._bucket(period, change.at_ms).end_ms
                kept = [segment for segment in self._segments[period] if segment[0] < effective]
                if kept[-1][1] != change.zone:
                    kept.append((effective, change.zone))
                self._segments[period] = kept

    @property
    def zone(self) -> str:
        """The zone registered last (in effect once each open bucket has ended)."""
        return self.changes[-1].zone

    def zone_at(self, period: Period, ms: int) -> str:
        return self._segment(period, ms)[1]

    def _segment(self, period: Period, ms: int) -> tuple[int, str]:
        segments = self._segments[period]
        for segment in reversed(segments):
            if segment[0] <= ms:
                return segment
        return segments[0]

    def _bucket(self, period: Period, ms: int) -> Bucket:
        start, zone = self._segment(period, ms)
        found = natural_bucket(period, ms, zone)
        if found.start_ms < start:
            return Bucket(period, found.id, start, found.end_ms, zone)
        return found

    def bucket(self, period: Period, ms: int) -> Bucket:
        """The bucket of `period` that contains the instant `ms`."""
        last = self._last.get(period)
        if last is not None and last.start_ms <= ms < last.end_ms:
            return last
        found = self._bucket(period, ms)
        self._last[period] = found
        return found

    def previous(self, found: Bucket) -> Bucket:
        return self.bucket(found.period, found.start_ms - 1)

    def following(self, found: Bucket) -> Bucket:
        return self.bucket(found.period, found.end_ms)

    def closed_before(self, period: Period, ms: int, count: int) -> list[Bucket]:
        """The `count` buckets that closed last before the one containing `ms`, newest first."""
        buckets: list[Bucket] = []
        current = self.bucket(period, ms)
        for _ in range(count):
            current = self.previous(current)
            buckets.append(current)
        return buckets

    def days_labelled(self, label: str) -> list[Bucket]:
        """The day buckets named `label` (a date): one, or two where a change of zone splits it."""
        day = date.fromisoformat(label)
        found: dict[str, Bucket] = {}
        for zone in {zone for _, zone in self._segments["day"]}:
            natural = _natural("day", zone, day)
            for probe in (natural.start_ms, natural.end_ms - 1):
                candidate = self.bucket("day", probe)
                if candidate.id == label:
                    found[candidate.key] = candidate
        return sorted(found.values(), key=lambda b: b.start_ms)

    def with_zone(self, zone: str, at_ms: int) -> Calendar:
        """This calendar with `zone` registered at `at_ms` (itself when nothing changes)."""
        if zone == self.zone:
            return self
        return calendar_of((*self.changes, ZoneChange(zone, at_ms)))

    def to_json(self) -> str:
        return json.dumps([[change.zone, change.at_ms] for change in self.changes], separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Calendar) and other.changes == self.changes

    def __hash__(self) -> int:
        return hash(self.changes)

    def __repr__(self) -> str:
        return f"Calendar({self.to_json()})"


@lru_cache(maxsize=1024)
def calendar_of(changes: tuple[ZoneChange, ...]) -> Calendar:
    """The (shared, cached) calendar of these zone registrations."""
    return Calendar(changes)


def zone_calendar(zone: str) -> Calendar:
    """One zone, always."""
    return calendar_of((ZoneChange(zone, 0),))


def calendar_from_json(text: str) -> Calendar:
    return calendar_of(tuple(ZoneChange(str(zone), int(at)) for zone, at in json.loads(text)))


UTC_CALENDAR = zone_calendar("UTC")


def bucket(period: Period, ms: int) -> Bucket:
    """The UTC day, ISO week or month that contains `ms` (the anonymous key's daily salt; every
    community's figures use its own `Calendar`)."""
    return UTC_CALENDAR.bucket(period, ms)


def previous_bucket(period: Period, ms: int) -> Bucket:
    """The UTC bucket that closed most recently before the one containing `ms`."""
    return UTC_CALENDAR.previous(bucket(period, ms))


def minute_of(ms: int) -> int:
    return ms // MINUTE_MS


def hour_id(ms: int) -> str:
    """The hour of the per-minute series key: 2026-11-24T22."""
    return _hour(ms // HOUR_MS)


@lru_cache(maxsize=128)
def _hour(hour_number: int) -> str:
    return datetime.fromtimestamp(hour_number * 3600, tz=UTC).strftime("%Y-%m-%dT%H")


def seconds(ms: int) -> int:
    """Epoch seconds (Redis EXPIREAT) of epoch milliseconds."""
    return ms // 1000


def scheduled_time_ms(event: Mapping[str, object], clock: Clock = system_clock) -> int:
    """When a scheduled invocation was due: the EventBridge event's own `time` (so a pass that
    starts late still works on its minute), else the clock."""
    stamp = event.get("time")
    if isinstance(stamp, str):
        try:
            return to_ms(datetime.fromisoformat(stamp))
        except ValueError:
            pass
    return clock()
