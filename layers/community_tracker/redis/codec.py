"""The visitor record as Redis keeps it, read on the Python side.

A person's record is `joined_ms|pages|last_heard_ms|auth(0/1)|community_division|division|user_id`
('' for an unknown division or an anonymous person; the user id is last since it may hold '|'),
then (in records written since the live context) `=page|referrer|device|country`, the values the
person is counted under, then one line per connection key. The Lua side, `lua/community.lua` (`encode` / `decode`),
writes and reads the same layout.
"""

from __future__ import annotations

from community_tracker.models import Visitor
from community_tracker.timeutil import iso


def decode_visitor(record: str) -> Visitor:
    head = record.split("\n", 1)[0]
    joined, pages, last_heard, authenticated, _community_division, division, user_id = head.split("|", 6)
    is_authenticated = authenticated == "1"
    return Visitor(
        user_id=user_id if is_authenticated else None,
        is_authenticated=is_authenticated,
        division_id=division or None,
        joined_at=iso(int(joined)),
        pages_viewed=int(pages),
        last_activity=iso(int(last_heard)),
    )
