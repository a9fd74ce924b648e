"""Domain models: what a visit is, and every result shape of the seed's API (field names exactly,
README "Seed operations").

Nothing here knows about API Gateway, Redis or DynamoDB; the HTTP functions use these models as
their response types, which is also where the OpenAPI schema comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Ids that end up inside Redis keys and DynamoDB keys: no braces (they would break the cluster hash
# tag), no separators, bounded length.
COMMUNITY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DIVISION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{7,63}$"
USER_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"  # a token's `sub`: any printable text

CommunityId = Annotated[str, StringConstraints(pattern=COMMUNITY_ID_PATTERN)]
DivisionId = Annotated[str, StringConstraints(pattern=DIVISION_ID_PATTERN)]
EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Community(Frozen):
    community_id: CommunityId
    slug: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    division_id: DivisionId | None = None


class VisitorIdentity(Frozen):
    """Who is visiting, as far as presence is concerned.

    `key` is what Redis stores: `u:<user_id>` for an authenticated visitor, `a:<keyed hash>` for an
    anonymous one (never the raw browser or client id).
    """

    key: str
    user_id: str | None
    division_id: str | None
    is_authenticated: bool


def authenticated_visitor_key(user_id: str) -> str:
    return f"u:{user_id}"


def anonymous_visitor_key(digest: str) -> str:
    return f"a:{digest}"


class Visit(Frozen):
    """One beacon of one connection of one person (`visitor`) of one community.

    `connection_key` is the keyed hash of the tab's id; a beacon without one is its browser's only
    connection (`connection_key` None: the person's own key). `alt_key` is the same cookieless
    person's key of the previous day, so a person live across midnight stays one person.
    """

    community_id: CommunityId
    community_division: str | None
    visitor: VisitorIdentity
    event_id: str | None = None
    connection_key: str | None = None
    alt_key: str | None = None
    client_key: str | None = None  # keyed hash of the client address, for the per-client limits

    @property
    def connection(self) -> str:
        return self.connection_key or f"c:{self.visitor.key}"


VisitStatus = Literal["counted", "duplicate", "rate_limited", "not_present", "too_many_people"]


class AddVisitorResult(Frozen):
    current_count: int
    is_cross_division: bool
    visitor_division: str | None
    community_division: str | None
    timestamp: str


class VisitOutcome(Frozen):
    """What recording a beacon did; `result` is the design's `add_visitor` shape.

    `recorded_at_ms` is when this beacon's event id was first recorded: now, or for a duplicate the
    original time, so that a retry maps to the same permanent record.
    """

    status: VisitStatus
    result: AddVisitorResult
    recorded_at_ms: int


class Visitor(Frozen):
    user_id: str | None
    is_authenticated: bool
    division_id: str | None
    joined_at: str
    pages_viewed: int
    last_activity: str


class VisitorPage(Frozen):
    visitors: list[Visitor]
    total_visitors: int
    next_cursor: str | None = None


class VisitorStats(Frozen):
    """People live now (the seed's figures: a person is live until 5 minutes after their last
    beacon, or the grace after their last connection left), and two finer "now" numbers."""

    total_visitors: int
    authenticated_visitors: int
    anonymous_visitors: int
    authenticated_percentage: float
    anonymous_percentage: float
    present_now: int = Field(description="People with a connection heard within the presence window")
    connections: int = Field(description="Open connections (tabs) of the people live now")


class DivisionCount(Frozen):
    division_id: str | None  # None: visitors whose home division is unknown
    count: int


class CrossDivisionPair(Frozen):
    from_division: str
    to_division: str
    count: int


class CrossDivisionStats(Frozen):
    total_visitors: int
    cross_division_visits: int
    cross_division_percentage: float
    breakdown: list[CrossDivisionPair]


class PeakCounts(Frozen):
    daily: int
    weekly: int
    monthly: int


class Peak(Frozen):
    period: Literal["day", "week", "month"]
    bucket: str
    count: int
    reached_at: str | None


class UniqueVisitors(Frozen):
    """Approximate (HyperLogLog, ~0.8 % standard error) distinct visitors per bucket."""

    daily: int
    weekly: int
    monthly: int


class TimelinePoint(Frozen):
    minute: str
    visitors: int


DropReason = Literal["bot", "rate_limited", "duplicate", "invalid", "too_many_people"]
DROP_REASONS: tuple[DropReason, ...] = ("bot", "rate_limited", "duplicate", "invalid", "too_many_people")


class DropCounts(Frozen):
    day: str
    bot: int = 0
    rate_limited: int = 0
    duplicate: int = 0
    invalid: int = 0
    too_many_people: int = 0


class Summary(Frozen):
    """Everything a dashboard shows, read in one Redis round trip."""

    community_id: str
    stats: VisitorStats
    divisions: list[DivisionCount]
    cross_division: CrossDivisionStats
    peaks: PeakCounts
    peak_details: list[Peak]
    unique_visitors: UniqueVisitors
    timeline: list[TimelinePoint]
    timestamp: str


@dataclass(frozen=True, slots=True)
class CleanupResult:
    """What pruning one community did, and what its cleanup still owes it."""

    removed: int
    remaining: int
    index_flag_cleared: bool
    unrolled_peaks: list[Peak]  # closed buckets still in Redis, not yet written to history
    open_bucket_end: int | None  # end of the earliest current bucket holding a peak


def is_cross_division(visitor_division: str | None, community_division: str | None) -> bool:
    """The one cross-division rule: both divisions known, and different."""
    return bool(visitor_division and community_division and visitor_division != community_division)


def percentage(part: int, whole: int) -> float:
    """Share of `whole`, two decimals, 0.0 when there is nothing to share."""
    return round(part * 100 / whole, 2) if whole else 0.0


class VisitMetadata(Frozen):
    community_id: str
    community_slug: str
    visitor_division_id: str | None
    community_division_id: str | None
    is_cross_division: bool
    is_authenticated: bool
    url: str | None
    referrer: str | None


class VisitEvent(Frozen):
    """The permanent `community_visit` record of one authenticated page view (README, "Beacon API")."""

    event_type: Literal["community_visit"] = "community_visit"
    event_id: str
    user_id: str
    timestamp: str
    metadata: VisitMetadata


class VisitHistoryPage(Frozen):
    visits: list[VisitEvent]
    next_cursor: str | None = None
