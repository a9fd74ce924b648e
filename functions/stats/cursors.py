"""Pagination cursors of the stats API, read in one place: a cursor this API did not hand out is a
400 (`InvalidCursor`) whatever its size or content, never a 422 or a 5xx from a store."""

from __future__ import annotations

import re
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from community_tracker.aws.stores import decode_cursor, encode_cursor
from community_tracker.errors import InvalidCursor

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
    """A visit-history cursor, checked for size here; the store checks its keys."""
    return None if cursor is None else _bounded(cursor)
