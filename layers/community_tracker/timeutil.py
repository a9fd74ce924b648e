"""Time in one unit (epoch milliseconds, UTC) and the calendar buckets built on it.

Everything that records or reads presence takes `now_ms` from its caller, so tests and the
property-based model can move the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal

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
    """One calendar bucket: its id (used in Redis keys and DynamoDB sort keys) and its end."""

    period: Period
    id: str
    start_ms: int
    end_ms: int


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def bucket(period: Period, ms: int) -> Bucket:
    """The day, ISO week or month that contains `ms`."""
    return _bucket_of_day(period, ms // DAY_MS)


@lru_cache(maxsize=64)
def _bucket_of_day(period: Period, day_number: int) -> Bucket:
    day = date.fromordinal(_EPOCH_ORDINAL + day_number)
    if period == "day":
        start = _midnight(day)
        return Bucket(period, day.isoformat(), to_ms(start), to_ms(start + timedelta(days=1)))
    if period == "week":
        year, week, weekday = day.isocalendar()
        start = _midnight(day - timedelta(days=weekday - 1))
        return Bucket(period, f"{year}-W{week:02d}", to_ms(start), to_ms(start + timedelta(days=7)))
    start = _midnight(day.replace(day=1))
    next_month = (start + timedelta(days=32)).replace(day=1)
    return Bucket(period, f"{day.year}-{day.month:02d}", to_ms(start), to_ms(next_month))


def previous_bucket(period: Period, ms: int) -> Bucket:
    """The bucket that closed most recently before the one containing `ms`."""
    return bucket(period, bucket(period, ms).start_ms - 1)


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
