"""The caller of an HTTP request, from its headers, checked against the access rules."""

from __future__ import annotations

from collections.abc import Mapping

from community_tracker.access import authorize_aggregate_read, require_admin_role, require_self_or_admin_role
from community_tracker.errors import TokenRequired
from community_tracker.identity import Principal, get_token_verifier, request_token
from community_tracker.settings import get_settings


def principal_from(headers: Mapping[str, str], body_token: str | None = None) -> Principal | None:
    """The verified caller, from `Authorization: Bearer` or (sendBeacon) the body's `token`.

    No token: anonymous. A token that does not verify, an `Authorization` header that is not a
    well-formed `Bearer <jwt>`, or header and body tokens that differ: `InvalidToken` (401), never
    anonymous.
    """
    token = request_token(headers, body_token)
    if token is None:
        return None
    return get_token_verifier().verify(token)


def require_principal(headers: Mapping[str, str]) -> Principal:
    principal = principal_from(headers)
    if principal is None:
        raise TokenRequired
    return principal


def require_admin(headers: Mapping[str, str]) -> Principal:
    return require_admin_role(require_principal(headers))


def require_aggregate_reader(headers: Mapping[str, str]) -> Principal | None:
    """Counts need a valid token, unless public counts are enabled (a bad token is still 401)."""
    return authorize_aggregate_read(principal_from(headers), public_counts=get_settings().public_counts)


def require_self_or_admin(headers: Mapping[str, str], user_id: str) -> Principal:
    """A user's own data: that user, or an admin."""
    return require_self_or_admin_role(require_principal(headers), user_id)
