"""Small builders for the tests' visits and identities."""

from __future__ import annotations

from datetime import UTC, datetime

from community_tracker.models import (
    Visit,
    VisitorIdentity,
    anonymous_visitor_key,
    authenticated_visitor_key,
)
from community_tracker.timeutil import to_ms

# Test clocks run in the future: Redis expires calendar keys at absolute times (EXPIREAT), so a
# clock in the past would see its own keys vanish at once.
T0 = to_ms(datetime(2031, 3, 5, 12, 0, tzinfo=UTC))
SECOND = 1000
MINUTE = 60 * SECOND


def user(user_id: str, division: str | None = None) -> VisitorIdentity:
    return VisitorIdentity(
        key=authenticated_visitor_key(user_id), user_id=user_id, division_id=division, is_authenticated=True
    )


def anonymous(name: str, division: str | None = None) -> VisitorIdentity:
    return VisitorIdentity(key=anonymous_visitor_key(name), user_id=None, division_id=division, is_authenticated=False)


def visit(
    community_id: str,
    visitor: VisitorIdentity,
    community_division: str | None = "quebec",
    *,
    event_id: str | None = None,
    merge_key: str | None = None,
    client_key: str | None = None,
) -> Visit:
    return Visit(
        community_id=community_id,
        community_division=community_division,
        visitor=visitor,
        event_id=event_id,
        merge_key=merge_key,
        client_key=client_key,
    )
