"""Who may read what: the access rules of the stats API and the WebSocket, in one place."""

from __future__ import annotations

from community_tracker.errors import Forbidden, TokenRequired
from community_tracker.identity import Principal


def authorize_aggregate_read(principal: Principal | None, *, public_counts: bool) -> Principal | None:
    """Aggregate numbers need a verified caller, unless public counts are enabled."""
    if principal is None and not public_counts:
        raise TokenRequired
    return principal


def require_admin_role(principal: Principal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this needs the admin role")
    return principal


def require_self_or_admin_role(principal: Principal, user_id: str) -> Principal:
    """A user's own data: that user, or an admin."""
    if not principal.is_admin and principal.user_id != user_id:
        raise Forbidden("only that user or an admin may see this")
    return principal
