"""The rules of a beacon (README, "Beacon API"): what a page view, a heartbeat and a leave do.

Knows nothing of API Gateway, Redis or DynamoDB: the route parses the request into a
`BeaconRequest`, `screen` decides whether there is anything to record, and the `record_*`
functions return one of `Counted | Dropped | Explained`, which the route turns into its answer.
Redis holds the live state; DynamoDB the permanent history of authenticated page views, which is
what a 2xx promises.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, replace
from typing import Literal, Protocol
from urllib.parse import urlsplit

from community_tracker import agents
from community_tracker.errors import LiveStateUnavailable
from community_tracker.identity import BeaconIdentity
from community_tracker.models import (
    AddVisitorResult,
    Community,
    DropReason,
    Frozen,
    PageContext,
    Visit,
    VisitEvent,
    VisitMetadata,
    VisitOutcome,
    is_cross_division,
)
from community_tracker.timeutil import iso

RATE_WINDOW_SECONDS = 60


class LiveState(Protocol):
    """What the beacon rules need of the live state (`redis.live_state.VisitorTracker`)."""

    def add_visitor(self, visit: Visit, now_ms: int) -> VisitOutcome: ...
    def update_visitor_activity(self, visit: Visit, now_ms: int) -> VisitOutcome: ...
    def remove_visitor(self, community_id: str, connection: str, now_ms: int) -> int: ...
    def record_drop(
        self, community_id: str, reason: DropReason, now_ms: int, community: Community | None = None
    ) -> None: ...
    def event_seen(self, community_id: str, event_id: str, now_ms: int) -> bool: ...


class VisitHistory(Protocol):
    """The permanent history of authenticated page views (`aws.stores.DynamoVisitStore`)."""

    def put_visit(self, event: VisitEvent, *, parts: int = 1) -> bool: ...


def bot_reason(user_agent: str) -> str | None:
    """Why a User-Agent is not counted (a bot or an AI agent, `agents.classify`), or None for a person."""
    return agents.automated_reason(user_agent)


def without_query(url: str | None) -> str | None:
    """A URL without query string or fragment: those may carry session ids or tokens, and the
    history keeps only what the page was."""
    if not url:
        return None
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl()[:2048]


@dataclass(frozen=True, slots=True)
class Beacon:
    """One parsed beacon: who, where, and what the browser said about the page."""

    community: Community
    identity: BeaconIdentity
    client_key: str
    event_id: str | None = None
    url: str | None = None
    referrer: str | None = None
    context: PageContext | None = None  # a page view's live context (`context.page_context`)
    new_tab: bool = False  # the page view says it is its tab's first

    def visit(self) -> Visit:
        # Every field was checked on its way into the beacon (the route's parameters and body,
        # the registry, the identity): not validated again here.
        return Visit.model_construct(
            community_id=self.community.community_id,
            community_division=self.community.division_id,
            visitor=self.identity.visitor,
            event_id=self.event_id,
            connection_key=self.identity.connection_key,
            alt_key=self.identity.alt_key,
            client_key=self.client_key,
            community_version=self.community.version,
            calendar=self.community.calendar(),
            parts=self.community.parts,
            context=self.context,
            new_tab=self.new_tab,
        )


@dataclass(frozen=True, slots=True)
class Counted:
    """The beacon was recorded (or was a retry of one that was)."""

    result: AddVisitorResult
    duplicate: bool = False
    active: bool = True  # heartbeats: False when the visitor was no longer live
    event_id: str | None = None  # page views: theirs, or the one made for them
    event_id_generated: bool = False


@dataclass(frozen=True, slots=True)
class Dropped:
    """The beacon was accepted but not counted, or refused for its rate."""

    reason: Literal["bot", "rate_limited", "too_many_people", "live_state_unavailable"]
    message: str
    retry_after_seconds: int | None = None
    history_recorded: bool = False


class Explained(Frozen):
    """`?debug=1`: what the beacon would do; nothing was written or counted (also the answer)."""

    would_count: bool
    reason: str | None
    visitor: Literal["authenticated", "anonymous"]
    visitor_division: str | None
    community_division: str | None
    is_cross_division: bool
    merges_anonymous_entry: bool


BeaconResult = Counted | Dropped | Explained


def screen(
    beacon: Beacon,
    *,
    user_agent: str,
    live: LiveState,
    now_ms: int,
    debug: bool,
    automation: agents.AutomationLog | None = None,
) -> Beacon | Dropped | Explained:
    """The beacon to record, or why there is nothing to record: obvious automation is dropped
    (and counted as a "bot" drop and under its class in `automation`, unless it is only a
    `?debug=1` question), `?debug=1` explains."""
    reason = bot_reason(user_agent)
    if debug:
        community_id = beacon.community.community_id
        if reason is None and beacon.event_id and live.event_seen(community_id, beacon.event_id, now_ms):
            reason = "a retry of a beacon already counted (duplicate event_id)"
        return explain(beacon, not_counted_because=reason)
    if reason is None:
        return beacon
    with contextlib.suppress(LiveStateUnavailable):  # a drop counter is not worth a failed answer
        live.record_drop(beacon.community.community_id, "bot", now_ms, beacon.community)
    agents.record_automated(automation, beacon.community.community_id, beacon.client_key, user_agent, now_ms)
    return Dropped(reason="bot", message=reason)


def explain(beacon: Beacon, *, not_counted_because: str | None) -> Explained:
    visitor = beacon.identity.visitor
    community_division = beacon.community.division_id
    return Explained(
        would_count=not_counted_because is None,
        reason=not_counted_because,
        visitor="authenticated" if visitor.is_authenticated else "anonymous",
        visitor_division=visitor.division_id,
        community_division=community_division,
        is_cross_division=is_cross_division(visitor.division_id, community_division),
        merges_anonymous_entry=beacon.identity.merges_anonymous,
    )


def _rate_limited(now_ms: int) -> Dropped:
    return Dropped(
        reason="rate_limited",
        message="too many beacons from this client, slow down",
        retry_after_seconds=RATE_WINDOW_SECONDS - (now_ms // 1000) % RATE_WINDOW_SECONDS,
    )


def _counted(outcome: VisitOutcome, now_ms: int) -> Counted | Dropped:
    if outcome.status == "rate_limited":
        return _rate_limited(now_ms)
    if outcome.status == "too_many_people":
        return Dropped(reason="too_many_people", message="too many new anonymous visitors from this client")
    return Counted(
        result=outcome.result, duplicate=outcome.status == "duplicate", active=outcome.status != "not_present"
    )


def new_event_id() -> str:
    return uuid.uuid4().hex


def record_page_view(beacon: Beacon, *, live: LiveState, visits: VisitHistory, now_ms: int) -> Counted | Dropped:
    """Live state first (it dedups and rate-limits), then the permanent event for a user.

    Every page view has an event id (made here when the page sent none, and said so in the
    answer), so a script that runs twice — a client's retry, or the Redis client retrying after a
    timeout — counts once. The history is idempotent by event id alone (`VisitHistory.put_visit`),
    whatever the time of the retry. If Redis is down, an authenticated visit is still written; an
    anonymous one has nothing left to keep.
    """
    generated = beacon.event_id is None
    if generated:
        beacon = replace(beacon, event_id=new_event_id())
    try:
        outcome: VisitOutcome | None = live.add_visitor(beacon.visit(), now_ms)
    except LiveStateUnavailable:
        if not beacon.identity.visitor.is_authenticated:
            raise
        outcome = None
    if outcome is not None and outcome.status in ("rate_limited", "too_many_people"):
        return _counted(outcome, now_ms)
    user_id = beacon.identity.visitor.user_id
    if user_id is not None:
        _keep_in_history(beacon, user_id, outcome.recorded_at_ms if outcome is not None else now_ms, visits)
    if outcome is None:
        return Dropped(reason="live_state_unavailable", message="live state unavailable", history_recorded=True)
    counted = _counted(outcome, now_ms)
    if isinstance(counted, Counted):
        return replace(counted, event_id=beacon.event_id, event_id_generated=generated)
    return counted


def _keep_in_history(beacon: Beacon, user_id: str, recorded_at_ms: int, visits: VisitHistory) -> None:
    community = beacon.community
    visitor_division = beacon.identity.visitor.division_id
    event = VisitEvent(
        event_id=beacon.event_id or new_event_id(),
        user_id=user_id,
        timestamp=iso(recorded_at_ms),
        metadata=VisitMetadata(
            community_id=community.community_id,
            community_slug=community.slug,
            visitor_division_id=visitor_division,
            community_division_id=community.division_id,
            is_cross_division=is_cross_division(visitor_division, community.division_id),
            is_authenticated=True,
            url=without_query(beacon.url),
            referrer=without_query(beacon.referrer),
        ),
    )
    # HistoryUnavailable (503) reaches the route: nothing claims it is kept.
    visits.put_visit(event, parts=community.parts)


def record_heartbeat(beacon: Beacon, *, live: LiveState, now_ms: int) -> Counted | Dropped:
    """The visitor is still here; `active=False` tells the page to send a page view instead."""
    return _counted(live.update_visitor_activity(beacon.visit(), now_ms), now_ms)


def record_leave(beacon: Beacon, *, live: LiveState, now_ms: int) -> int:
    """The tab was hidden for good (pagehide): its connection leaves after the grace, unless the
    next page of the visit arrives first. Returns the live count afterwards."""
    return live.remove_visitor(beacon.community.community_id, beacon.visit().connection, now_ms)
