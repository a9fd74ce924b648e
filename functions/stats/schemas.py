"""Answer bodies of the stats routes that are not a domain shape as such."""

from __future__ import annotations

from pydantic import BaseModel, Field

from community_tracker.alerts import Alert
from community_tracker.models import (
    CalendarBucket,
    ContextDimension,
    ContextTop,
    CrossDivisionPair,
    DivisionCount,
    Peak,
    TimelinePoint,
)


class DivisionBreakdown(BaseModel):
    community_id: str
    total_visitors: int
    divisions: list[DivisionCount]


class CrossDivisionHistory(BaseModel):
    """Page views per pair on one day of the community's calendar; `buckets` is that day (two
    parts where a change of zone split it)."""

    community_id: str
    day: str
    buckets: list[CalendarBucket]
    breakdown: list[CrossDivisionPair]


class PeaksAnswer(BaseModel):
    """The seed's `{daily, weekly, monthly}`, the current buckets with the time each peak was
    reached, and (with `?history=`) the closed buckets before them in the community's calendar,
    newest first: each as cleanup wrote it to DynamoDB (or as Redis keeps it until then), and a
    bucket nobody came to as a gap (`count` 0, `reached_at` null)."""

    daily: int
    weekly: int
    monthly: int
    current: list[Peak]
    history: list[Peak]


class ContextAnswer(ContextTop):
    """One dimension of the live context; `top` and `other` add up to `total_visitors`."""

    community_id: str
    dimension: ContextDimension
    total_visitors: int
    timestamp: str


class VisitingAnswer(BaseModel):
    community_id: str
    user_id: str
    is_visiting: bool


class Timeline(BaseModel):
    community_id: str
    minutes: int
    points: list[TimelinePoint]


class Badge(BaseModel):
    """`current_count` is null (and `fewer_than` set) below the badge threshold."""

    community_id: str
    current_count: int | None
    fewer_than: int | None
    label: str


class UserPresence(BaseModel):
    user_id: str
    communities: list[str]


class ErasedVisits(BaseModel):
    user_id: str
    deleted: int = Field(description="Visits this call deleted")
    complete: bool = Field(
        description="Whether none is left; false (a 202): the history was too long for one call, call again to go on"
    )


class AlertPage(BaseModel):
    community_id: str
    alerts: list[Alert]
    next_cursor: str | None = None
