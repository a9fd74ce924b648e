"""The visitor record as Redis keeps it, read on the Python side.

A record is `joined_ms|pages|auth(0/1)|community_division|division|user_id` ('' for an unknown
division or an anonymous visitor; the user id is last since it may hold '|'). The Lua side,
`lua/community.lua` (`encode` / `decode`), writes and reads the same layout.
"""

from __future__ import annotations

from community_tracker.models import Visitor
from community_tracker.timeutil import iso


def decode_visitor(record: str, last_activity_ms: int) -> Visitor:
    joined, pages, authenticated, _community_division, division, user_id = record.split("|", 5)
    is_authenticated = authenticated == "1"
    return Visitor(
        user_id=user_id if is_authenticated else None,
        is_authenticated=is_authenticated,
        division_id=division or None,
        joined_at=iso(int(joined)),
        pages_viewed=int(pages),
        last_activity=iso(last_activity_ms),
    )
