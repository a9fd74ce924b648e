"""Domain models: what a visit is, and every result shape of the seed's API (field names exactly,
README "Seed operations").

Nothing here knows about API Gateway, Redis or DynamoDB; the HTTP functions use these models as
their response types, which is also where the OpenAPI schema comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from community_tracker.settings import get_settings
from community_tracker.timeutil import Bucket, Calendar, ZoneChange, calendar_of, is_time_zone, iso

# Ids that end up inside Redis keys and DynamoDB keys: no braces (they would break the cluster hash
# tag), no separators, bounded length.
COMMUNITY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DIVISION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{7,63}$"
USER_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"  # a token's `sub`: any printable text

CommunityId = Annotated[str, StringConstraints(pattern=COMMUNITY_ID_PATTERN)]
DivisionId = Annotated[str, StringConstraints(pattern=DIVISION_ID_PATTERN)]
EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]


def _known_time_zone(name: str) -> str:
    if not is_time_zone(name):
        raise ValueError("not an IANA time zone this runtime knows, e.g. America/Toronto")
    return name


TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_known_time_zone),
    Field(description="IANA time zone (zoneinfo), e.g. America/Toronto", examples=["America/Toronto"]),
]


def default_time_zone() -> str:
    return get_settings().default_time_zone


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ZoneRegistration(Frozen):
    """A time zone registered for a community at `registered_ms` (0: from the start)."""

    time_zone: TimeZone
    registered_ms: int = Field(ge=0)


class Community(Frozen):
    """A registered community. Its calendar figures (days, ISO weeks, months) are in `time_zone`;
    `zone_history` lists every zone registered, oldest first, when it was changed (a change
    takes effect at the end of each open bucket, `timeutil.Calendar`). `version` goes up with
    each registration, so every function can tell a newer one from the one it keeps. `parts`
    splits a hot community: its live state over that many parts, each in a hash slot of its own
    (README, "One community in N parts"), and its visit history over that many partition keys
    (README, "Visit history (DynamoDB)"); `history_parts` keeps the highest ever registered, so
    lowering `parts` loses no visit on read."""

    community_id: CommunityId
    slug: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    division_id: DivisionId | None = None
    time_zone: TimeZone = Field(default_factory=default_time_zone)
    zone_history: tuple[ZoneRegistration, ...] = ()
    version: int = Field(default=0, ge=0)
    parts: int = Field(default=1, ge=1, le=64)
    history_parts: int = Field(
        default=1,
        ge=1,
        le=64,
        description="The highest `parts` ever registered: a visit may be in any of that many partitions",
    )

    @property
    def visit_partitions(self) -> int:
        """How many visit partitions a history read covers: every one a visit may be in."""
        return max(self.parts, self.history_parts)

    def calendar(self) -> Calendar:
        changes = tuple(ZoneChange(r.time_zone, r.registered_ms) for r in self.zone_history)
        if not changes or changes[-1].zone != self.time_zone:
            changes = (*changes, ZoneChange(self.time_zone, changes[-1].at_ms if changes else 0))
        return calendar_of(changes)

    def with_time_zone(self, zone: str, at_ms: int) -> tuple[ZoneRegistration, ...]:
        """`zone_history` after registering `zone` at `at_ms` (unchanged for the same zone)."""
        calendar = self.calendar().with_zone(zone, at_ms)
        if len(calendar.changes) == 1:
            return ()
        return tuple(ZoneRegistration(time_zone=c.zone, registered_ms=c.at_ms) for c in calendar.changes)


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


ContextDimension = Literal["pages", "referrers", "devices", "countries"]
CONTEXT_DIMENSIONS: tuple[ContextDimension, ...] = ("pages", "referrers", "devices", "countries")
# The value a dimension counts people under once it holds its cap of distinct values; like every
# named value it starts with "(", which no path, domain, device class or country code does.
CONTEXT_OTHER = "(other)"
# Per dimension, value -> live people: what one community's live state answers. Summable: the
# context of a community kept in several parts is the sum of their counters, value by value.
ContextCounts = dict[ContextDimension, dict[str, int]]


class PageContext(Frozen):
    """What one page view says about its person, each dimension's value as the live state keeps
    it (`context.page_context`); `referrer` '' is a referrer from the site itself, which keeps the
    person's (the page of a visit that came from elsewhere still came from there)."""

    page: str
    referrer: str
    device: str
    country: str


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
    # The registration the beacon was judged by (`Community.version`, its calendar); None from
    # tools and tests that know none (the tracker then follows what Redis holds).
    community_version: int | None = None
    calendar: Calendar | None = None
    parts: int | None = None  # the registration's `Community.parts`; None: what Redis holds
    # A page view's live context; None (a heartbeat, tools) keeps the person's.
    context: PageContext | None = None
    # The page view says it is its tab's first (a hint: a split community places the tab at once).
    new_tab: bool = False

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

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


class CalendarBucket(Frozen):
    """A day, ISO week or month of a community's calendar: its name in `time_zone` and the
    instants it starts (inclusive) and ends (exclusive): 23 or 25 hours apart on the days the
    zone moves its clocks, fewer where a change of zone made the community start a new calendar."""

    period: Literal["day", "week", "month"]
    bucket: str = Field(description="2026-11-24, 2026-W48 or 2026-11, in time_zone")
    time_zone: str
    start: str
    end: str

    @staticmethod
    def fields_of(bucket: Bucket) -> dict[str, str]:
        return {
            "period": bucket.period,
            "bucket": bucket.id,
            "time_zone": bucket.zone,
            "start": iso(bucket.start_ms),
            "end": iso(bucket.end_ms),
        }

    @classmethod
    def of(cls, bucket: Bucket) -> CalendarBucket:
        return cls(**cls.fields_of(bucket))


class Peak(CalendarBucket):
    """The highest live count of a bucket and when it was first reached (`reached_at` null: nobody
    came), and, for closed buckets, their unique visitors."""

    count: int
    reached_at: str | None
    unique_visitors: int | None = None

    @classmethod
    def at(cls, bucket: Bucket, count: int, reached_at: str | None, unique_visitors: int | None = None) -> Peak:
        return cls(
            **cls.fields_of(bucket),
            count=count,
            reached_at=reached_at,
            unique_visitors=unique_visitors,
        )


class UniqueVisitors(Frozen):
    """Approximate (HyperLogLog, ~0.8 % standard error) distinct visitors per bucket."""

    daily: int
    weekly: int
    monthly: int
    buckets: list[CalendarBucket] = Field(default_factory=list, description="The day, week and month counted")


class TimelinePoint(Frozen):
    minute: str
    visitors: int


DropReason = Literal["bot", "rate_limited", "duplicate", "invalid", "too_many_people"]
DROP_REASONS: tuple[DropReason, ...] = ("bot", "rate_limited", "duplicate", "invalid", "too_many_people")


class DropCounts(Frozen):
    day: str
    time_zone: str
    start: str
    end: str
    bot: int = 0
    rate_limited: int = 0
    duplicate: int = 0
    invalid: int = 0
    too_many_people: int = 0


class ContextValue(Frozen):
    value: str
    people: int


class ContextTop(Frozen):
    """One dimension of the live context: its `limit` largest values, and the people counted under
    every other one (a value below them, or "(other)": one that found the dimension full). The
    people of `top` and `other` add up to the people live."""

    top: list[ContextValue]
    other: int


class LiveContext(Frozen):
    """Where the people live now are (README, "Live context"): each counted once per dimension,
    with the value of their latest page view."""

    pages: ContextTop = Field(description="Path within the site: no query, no fragment")
    referrers: ContextTop = Field(description="Referrer domain; (direct): none, or one that is not a site")
    devices: ContextTop = Field(description="desktop, mobile, tablet or other")
    countries: ContextTop = Field(description="ISO 3166 country code, when location headers are trusted; else unknown")


def context_top(counts: dict[str, int], limit: int) -> ContextTop:
    """The `limit` largest values (ties by value), everything else as `other`."""
    ranked = sorted(((v, n) for v, n in counts.items() if v != CONTEXT_OTHER and n > 0), key=lambda c: (-c[1], c[0]))
    other = sum(n for _v, n in ranked[limit:]) + max(counts.get(CONTEXT_OTHER, 0), 0)
    return ContextTop(top=[ContextValue(value=v, people=n) for v, n in ranked[:limit]], other=other)


def live_context(counts: ContextCounts, limit: int) -> LiveContext:
    return LiveContext(**{dimension: context_top(counts.get(dimension, {}), limit) for dimension in CONTEXT_DIMENSIONS})


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
    context: LiveContext
    timestamp: str


class CheckpointBucket(Frozen):
    """The figures of one open bucket as cleanup last saw them: its peak, when it was reached, and
    its unique visitors' HyperLogLog as Redis encodes it (the raw string a GET returns)."""

    period: Literal["day", "week", "month"]
    bucket: str
    time_zone: str
    start_ms: int
    end_ms: int
    count: int
    at_ms: int
    sketch: bytes | None = None

    def as_bucket(self) -> Bucket:
        return Bucket(self.period, self.bucket, self.start_ms, self.end_ms, self.time_zone)


class Checkpoint(Frozen):
    """A community's open calendar figures saved to DynamoDB, so a Redis that lost them (a restart,
    a failover to an empty node) resumes from there instead of from zero."""

    community_id: str
    taken_ms: int
    buckets: tuple[CheckpointBucket, ...]


@dataclass(frozen=True, slots=True)
class CleanupResult:
    """What pruning one community did, and what its cleanup still owes it."""

    removed: int
    remaining: int
    index_flag_cleared: bool
    unrolled_peaks: list[Peak]  # closed buckets still in Redis, not yet written to history
    open_bucket_end: int | None  # end of the earliest current bucket holding a peak
    checkpoint: Checkpoint | None = None  # the open figures, when they changed since the last one


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
