"""The rules of a beacon (design §5, §6): what a page view, a heartbeat and a leave do.

Knows nothing of API Gateway: the function parses the request into a `Beacon` and shapes the
answer from what these functions return. Redis holds the live state; DynamoDB the permanent
history of authenticated page views, which is what a 2xx promises.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError

from community_tracker.identity import BeaconIdentity
from community_tracker.models import Community, Visit, VisitEvent, VisitMetadata, VisitOutcome
from community_tracker.stores import VisitStore
from community_tracker.timeutil import iso
from community_tracker.tracker import VisitorTracker

# Obvious automation only: crawlers announce themselves, headless browsers and HTTP libraries say
# what they are. Anything subtler is left to API Gateway throttling and the per-client rate limit.
_BOT_USER_AGENT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|headless|phantomjs|selenium|puppeteer|playwright|lighthouse"
    r"|python-requests|python-urllib|aiohttp|go-http-client|okhttp|java/|libwww|wget|scrapy|httpclient"
    r"|facebookexternalhit|preview",
    re.IGNORECASE,
)


class LiveStateUnavailable(Exception):
    """Redis cannot be reached and the beacon has no durable part to keep."""


class HistoryUnavailable(Exception):
    """DynamoDB did not take an authenticated visit after retries: nothing may claim it is kept."""


def bot_reason(user_agent: str) -> str | None:
    """Why a User-Agent is not counted, or None for a browser."""
    if not user_agent.strip():
        return "no user agent"
    match = _BOT_USER_AGENT.search(user_agent)
    return f"user agent looks automated ({match.group(0).lower()})" if match else None


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

    def visit(self) -> Visit:
        return Visit(
            community_id=self.community.community_id,
            community_division=self.community.division_id,
            visitor=self.identity.visitor,
            event_id=self.event_id,
            merge_key=self.identity.merge_key,
            client_key=self.client_key,
        )


@dataclass(frozen=True, slots=True)
class PageViewResult:
    outcome: VisitOutcome | None  # None: Redis was unavailable, the live state was not updated
    history_written: bool


def record_page_view(beacon: Beacon, *, tracker: VisitorTracker, visits: VisitStore, now_ms: int) -> PageViewResult:
    """Live state first (it dedups and rate-limits), then the permanent event for a user.

    A retried beacon (same `event_id`) is a duplicate in Redis and carries the time it was first
    recorded, so its DynamoDB key is the same and the conditional write keeps one item. If Redis is
    down, an authenticated visit is still written; an anonymous one has nothing left to keep.
    """
    try:
        outcome: VisitOutcome | None = tracker.add_visitor(beacon.visit(), now_ms)
    except RedisError as error:
        if not beacon.identity.visitor.is_authenticated:
            raise LiveStateUnavailable("live state unavailable") from error
        outcome = None
    user_id = beacon.identity.visitor.user_id
    if user_id is None or (outcome is not None and outcome.status == "rate_limited"):
        return PageViewResult(outcome=outcome, history_written=False)
    community = beacon.community
    visitor_division = beacon.identity.visitor.division_id
    event = VisitEvent(
        event_id=beacon.event_id or uuid.uuid4().hex,
        user_id=user_id,
        timestamp=iso(outcome.recorded_at_ms if outcome is not None else now_ms),
        metadata=VisitMetadata(
            community_id=community.community_id,
            community_slug=community.slug,
            visitor_division_id=visitor_division,
            community_division_id=community.division_id,
            is_cross_division=bool(
                visitor_division and community.division_id and visitor_division != community.division_id
            ),
            is_authenticated=True,
            url=without_query(beacon.url),
            referrer=without_query(beacon.referrer),
        ),
    )
    try:
        visits.put_visit(event)
    except (ClientError, BotoCoreError) as error:
        raise HistoryUnavailable("visit history unavailable") from error
    return PageViewResult(outcome=outcome, history_written=True)


def record_heartbeat(beacon: Beacon, *, tracker: VisitorTracker, now_ms: int) -> VisitOutcome:
    """The visitor is still here; `not_present` tells the page to send a page view instead."""
    try:
        return tracker.update_visitor_activity(beacon.visit(), now_ms)
    except RedisError as error:
        raise LiveStateUnavailable("live state unavailable") from error


def record_leave(beacon: Beacon, *, tracker: VisitorTracker, now_ms: int) -> int:
    """The page was hidden for good (pagehide). Returns the live count afterwards."""
    visitor = beacon.identity.visitor
    try:
        return tracker.remove_visitor(beacon.community.community_id, visitor.key, now_ms, user_id=visitor.user_id)
    except RedisError as error:
        raise LiveStateUnavailable("live state unavailable") from error
