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
    connection: str | None = None,
    client_key: str | None = None,
    alt_key: str | None = None,
) -> Visit:
    """A beacon; without `connection`, the person's one connection (`c:<person key>`)."""
    return Visit(
        community_id=community_id,
        community_division=community_division,
        visitor=visitor,
        event_id=event_id,
        connection_key=connection,
        client_key=client_key,
        alt_key=alt_key,
    )


def tab(name: str) -> str:
    """The connection key of one tab."""
    return f"c:tab-{name}"


def browser_of(anonymous_visitor: VisitorIdentity) -> str:
    """The connection a browser without tab ids uses: its anonymous person's own, which a login
    from that browser moves to the user."""
    return f"c:{anonymous_visitor.key}"
