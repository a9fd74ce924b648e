"""Request and answer bodies of the beacon routes (the OpenAPI schema comes from these)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from community_tracker.models import DivisionId, EventId

# The browser's random id from sessionStorage; only its keyed hash is ever kept.
VisitorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,128}$")]


class PresenceBody(BaseModel):
    """What every beacon carries. Unknown fields are ignored: a body can never set a user id or a
    division (those come from the verified token only)."""

    model_config = ConfigDict(extra="ignore")

    event_id: EventId | None = Field(default=None, description="Client-made id; a retried beacon is counted once")
    url: str | None = Field(default=None, max_length=2048)
    referrer: str | None = Field(default=None, max_length=2048)
    visitor_id: VisitorId | None = Field(default=None, description="Random id the page keeps in sessionStorage")
    token: str | None = Field(
        default=None, max_length=8192, description="For sendBeacon, which cannot send an Authorization header"
    )


class VisitBody(PresenceBody):
    url: str = Field(min_length=1, max_length=2048)


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


class DebugExplanation(BaseModel):
    """`?debug=1`: what the beacon would do, with nothing written."""

    would_count: bool
    reason: str | None
    visitor: Literal["authenticated", "anonymous"]
    visitor_division: str | None
    community_division: str | None
    is_cross_division: bool
    merges_anonymous_entry: bool


class CommunityBody(BaseModel):
    slug: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    division_id: DivisionId | None = None
