"""Every failure the rules can name, in one place.

Adapters translate their drivers' errors into these (Redis → `LiveStateUnavailable`, DynamoDB →
`HistoryUnavailable` / `DirectoryUnavailable`), so the rules import neither `redis` nor
`botocore`; `http/errors.py` and the WebSocket function map each to its status once.
"""

from __future__ import annotations


class LiveStateUnavailable(Exception):
    """Redis cannot be reached (or refused the write): the live state was not read or updated."""


class CommunityOutdated(Exception):
    """Redis holds another registration of the community than the caller's (a newer one, an older
    one, or none: a new community, a Redis that restarted). Nothing was written; the caller reads
    the directory again, installs what it holds when Redis is behind, and tries again
    (`communities.with_live_community`)."""

    def __init__(self, community_id: str, live_version: int | None) -> None:
        super().__init__(f"community {community_id}: Redis holds registration {live_version}")
        self.community_id = community_id
        self.live_version = live_version


class HistoryUnavailable(Exception):
    """DynamoDB did not take or return visit history after retries: nothing may claim it is kept."""


class DirectoryUnavailable(Exception):
    """The registered communities cannot be read and the community was never seen before."""


class SecretUnavailable(Exception):
    """A secret (signing key, hash key) could not be read from its parameter store."""


class UnknownCommunity(LookupError):
    """The community id is not registered: unknown ids never create keys."""

    def __init__(self, community_id: str) -> None:
        super().__init__(f"community {community_id} is not registered")
        self.community_id = community_id


class InvalidCursor(ValueError):
    """A pagination cursor that this API did not hand out."""


class InvalidToken(Exception):
    """A token was sent but cannot be trusted: the request is refused, never downgraded."""


class IdentityProviderUnavailable(Exception):
    """The JWKS endpoint could not be reached, so no RS256 token can be checked right now."""


class TokenRequired(Exception):
    """The request needs a verified caller and came without a token."""


class Forbidden(Exception):
    """The verified caller may not do this."""


class AlertDeliveryFailed(Exception):
    """EventBridge did not take every alert event: the pass fails and is retried."""


class InvalidShareLink(Exception):
    """A share link that is forged, malformed, expired, revoked or for another community."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PostFailed(Exception):
    """A post to a WebSocket connection failed for another reason than the connection being gone
    (throttled, refused, a server error, a timeout): the pusher tries that connection again at its
    next tick. The message names the reason (`429 LimitExceededException`, `timeout`)."""
