"""Request and answer bodies of the beacon routes (the OpenAPI schema comes from these)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from community_tracker.models import AddVisitorResult, DivisionId, EventId, TimeZone

# Random ids the beacon script makes: one per browser (localStorage), one per tab
# (sessionStorage). Only their keyed hashes are ever kept.
VisitorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,128}$")]


# The raw ids and the token are left out of the body's repr (`repr=False`): Powertools formats every
# route's arguments into a debug line on each request (printed with `POWERTOOLS_DEBUG`).
class PresenceBody(BaseModel):
    """What every beacon carries. Unknown fields are ignored: a body can never set a user id or a
    division (those come from the verified token only)."""

    model_config = ConfigDict(extra="ignore")

    event_id: EventId | None = Field(default=None, description="Client-made id; a retried beacon is counted once")
    url: str | None = Field(default=None, max_length=2048)
    referrer: str | None = Field(default=None, max_length=2048)
    visitor_id: VisitorId | None = Field(
        default=None, repr=False, description="The browser's random id (localStorage): the anonymous person"
    )
    connection_id: VisitorId | None = Field(
        default=None, repr=False, description="The tab's random id (sessionStorage): one connection of the person"
    )
    token: str | None = Field(
        default=None,
        max_length=8192,
        repr=False,
        description="For sendBeacon, which cannot send an Authorization header",
    )


class VisitBody(PresenceBody):
    url: str = Field(min_length=1, max_length=2048)
    # Strict: the schema says boolean, so a 0 or "true" is refused (422), not taken for one
    new_tab: StrictBool = Field(
        default=False,
        description="The tab's first page view (the beacon script just made its tab id): a community kept in "
        "parts then asks where the tab lives while it records the page view. Only a hint: any answer stays exact",
    )


class PageViewAnswer(AddVisitorResult):
    """The seed's `add_visitor` shape, and the page view's event id."""

    event_id: str = Field(description="Send it again with a retry of this page view: it is kept once")
    event_id_generated: bool = Field(description="True: the page sent no event id, the server made this one")


class HeartbeatAnswer(BaseModel):
    current_count: int
    active: bool = Field(description="False: the visitor was not live any more; send a page view")
    timestamp: str


class LeaveAnswer(BaseModel):
    current_count: int
    timestamp: str


class NotCounted(BaseModel):
    """A beacon accepted but not (fully) counted: a bot, or the live state unavailable."""

    counted: Literal[False] = False
    reason: str
    history_recorded: bool = False


class CommunityBody(BaseModel):
    slug: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    division_id: DivisionId | None = None
    time_zone: TimeZone | None = Field(
        default=None,
        description="Its days, weeks and months (IANA name); left out: unchanged, or VT_DEFAULT_TIME_ZONE for a "
        "new community. A change takes effect at the end of each open day, week and month",
    )
    parts: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Split a hot community over this many parts: its live state over as many Redis hash slots "
        "(a change moves every live visitor to their new part at once), its visit history over as many "
        "partition keys; left out: unchanged, or 1 for a new community",
    )
