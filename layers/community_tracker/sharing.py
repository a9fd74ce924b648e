"""Read-only share links to one community's numbers (README, "Sharing without opening the API").

A share token is `vts1.<payload>.<signature>`: the payload is base64url JSON `{"c": community id,
"l": link id, "e": expiry (epoch seconds)}`, the signature HMAC-SHA256 over `vts1.<payload>` with
the share key (`VT_SHARE_KEY`, or the SSM parameter `VT_SHARE_KEY_PARAM`). A token is accepted
for that community's aggregate reads until it expires, and only while its link is on record and
not revoked (an allow-list in DynamoDB, so deleting a link ends it at once).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Protocol

from pydantic import Field

from community_tracker.errors import InvalidShareLink
from community_tracker.models import Frozen

TOKEN_VERSION = "vts1"  # noqa: S105 (a format tag, not a secret)
LINK_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
MAX_TOKEN_CHARS = 1024
MAX_LIFETIME_SECONDS = 90 * 86_400


class ShareGrant(Frozen):
    community_id: str
    link_id: str
    expires_s: int


class ShareLink(Frozen):
    """A link as kept on record (never its token)."""

    link_id: str
    community_id: str
    created_at: str
    created_by: str
    expires_at: str
    label: str | None = Field(default=None, max_length=200)
    revoked: bool = False


class ShareLinkStore(Protocol):
    def get(self, community_id: str, link_id: str) -> ShareLink | None: ...


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_link_id() -> str:
    return secrets.token_urlsafe(12)


class ShareSigner:
    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def _signature(self, signed: str) -> str:
        return _b64(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())

    def mint(self, grant: ShareGrant) -> str:
        payload = json.dumps({"c": grant.community_id, "l": grant.link_id, "e": grant.expires_s}, separators=(",", ":"))
        signed = f"{TOKEN_VERSION}.{_b64(payload.encode())}"
        return f"{signed}.{self._signature(signed)}"

    def verify(self, token: str, now_s: int) -> ShareGrant:
        """The grant of a token signed with this key and not expired, else `InvalidShareLink`."""
        parts = token.split(".")
        if len(token) > MAX_TOKEN_CHARS or len(parts) != 3 or parts[0] != TOKEN_VERSION:
            raise InvalidShareLink("invalid_share_link", "the share link is not one this API handed out")
        signed = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._signature(signed), parts[2]):
            raise InvalidShareLink("invalid_share_link", "the share link's signature does not verify")
        try:
            claims = json.loads(_unb64(parts[1]))
            grant = ShareGrant(community_id=claims["c"], link_id=claims["l"], expires_s=claims["e"])
        except (binascii.Error, ValueError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise InvalidShareLink("invalid_share_link", "the share link is not one this API handed out") from error
        if grant.expires_s <= now_s:
            raise InvalidShareLink("share_link_expired", "the share link has expired")
        return grant


def authorize_shared_read(
    token: str, community_id: str, *, now_s: int, signer: ShareSigner, links: ShareLinkStore
) -> ShareGrant:
    """A share token that may read this community's aggregates now, else `InvalidShareLink`."""
    grant = signer.verify(token, now_s)
    if grant.community_id != community_id:
        raise InvalidShareLink("share_link_other_community", "the share link is for another community")
    link = links.get(community_id, grant.link_id)
    if link is None or link.revoked:
        raise InvalidShareLink("share_link_revoked", "the share link was revoked")
    return grant
