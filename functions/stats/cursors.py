"""Pagination cursors of the stats API, read in one place: a cursor this API did not hand out is a
400 (`InvalidCursor`) whatever its size or content, never a 422 or a 5xx from a store.

A community history cursor is signed (README, "Visit history (DynamoDB)"):
`h1.<payload>.<signature>`, the payload base64url JSON `{"a": the sort key of the page's last
visit, "d": the partitions done, as a bit mask}`, the signature HMAC-SHA256 over
`h1.<community id>.<payload>` with a key derived from the share key. So an altered cursor, or one
of another community, is refused before any read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from community_tracker.aws.secrets import rotating_secret
from community_tracker.aws.stores import VISIT_PREFIX, HistoryPosition, decode_cursor, encode_cursor
from community_tracker.errors import InvalidCursor
from community_tracker.factories import cached_factory
from community_tracker.settings import get_settings

# No `max_length` on the parameter: an oversized cursor is a forged one, refused as such (400).
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
MAX_CURSOR_CHARS = 2048  # DynamoDB keys of this table encode to far less
# A live visitor list is paged by offset; it never reaches a billion, and the offsets handed out
# are written without leading zeros and are never 0.
_OFFSET = re.compile(r"[1-9][0-9]{0,8}")
_FORGED = "the cursor is not one this API handed out"


def _bounded(cursor: str) -> str:
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor(_FORGED)
    return cursor


def visitor_offset(cursor: str | None) -> int:
    """Where a page of the live visitor list starts (0 without a cursor)."""
    if cursor is None:
        return 0
    start = decode_cursor(_bounded(cursor), {"offset"})
    offset = start["offset"] if start is not None else ""
    if not _OFFSET.fullmatch(offset):
        raise InvalidCursor(_FORGED)
    return int(offset)


def visitor_cursor(next_offset: str | None) -> str | None:
    """The opaque cursor of the next page of the live visitor list, or None on the last page."""
    return encode_cursor({"offset": next_offset}) if next_offset else None


def history_cursor(cursor: str | None) -> str | None:
    """A user's visit-history or export cursor, checked for size here; the store checks its keys."""
    return None if cursor is None else _bounded(cursor)


_HISTORY_VERSION = "h1"
# Derived, so a cursor's signature can never be taken for a share link's (or the reverse).
_HISTORY_KEY_LABEL = b"community-tracker visit-history cursor v1"
_MAX_PARTITIONS = 64
_MAX_SORT_KEY_CHARS = 512


@cached_factory
def _share_keys() -> Callable[[], tuple[str, ...]]:
    settings = get_settings()
    return rotating_secret(settings.share_key, settings.share_key_param, settings.secret_max_age_seconds)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signature(share_key: str, community_id: str, payload: str) -> str:
    key = hmac.new(share_key.encode(), _HISTORY_KEY_LABEL, hashlib.sha256).digest()
    signed = f"{_HISTORY_VERSION}.{community_id}.{payload}".encode()
    return _b64(hmac.new(key, signed, hashlib.sha256).digest())


def community_history_cursor(position: HistoryPosition | None, community_id: str) -> str | None:
    """The signed cursor of the next page of a community's history, or None on the last page."""
    if position is None:
        return None
    done = sum(1 << partition for partition in position.done)
    payload = _b64(json.dumps({"a": position.after, "d": done}, separators=(",", ":")).encode())
    return f"{_HISTORY_VERSION}.{payload}.{_signature(_share_keys()()[0], community_id, payload)}"


def community_history_position(cursor: str | None, community_id: str) -> HistoryPosition | None:
    """Where the page `cursor` asks for starts: a cursor this API signed for this community
    (with the share key or, during a rotation, the previous one), else `InvalidCursor`."""
    if cursor is None:
        return None
    parts = _bounded(cursor).split(".")
    if len(parts) != 3 or parts[0] != _HISTORY_VERSION:
        raise InvalidCursor(_FORGED)
    payload, signature = parts[1], parts[2]
    if not any(hmac.compare_digest(_signature(key, community_id, payload), signature) for key in _share_keys()()):
        raise InvalidCursor(_FORGED)
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidCursor(_FORGED) from error
    after, done = (fields.get("a"), fields.get("d")) if isinstance(fields, dict) else (None, None)
    if (
        not isinstance(after, str)
        or not after.startswith(VISIT_PREFIX)
        or len(after) > _MAX_SORT_KEY_CHARS
        or not isinstance(done, int)
        or isinstance(done, bool)
        or not 0 <= done < 1 << _MAX_PARTITIONS
    ):
        raise InvalidCursor(_FORGED)
    return HistoryPosition(after=after, done=frozenset(k for k in range(_MAX_PARTITIONS) if done >> k & 1))
