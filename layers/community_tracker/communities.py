"""The registered-community lookup every entry point makes before touching the live state."""

from __future__ import annotations

from typing import Protocol

from community_tracker.errors import UnknownCommunity
from community_tracker.models import Community


class CommunityDirectory(Protocol):
    def get(self, community_id: str) -> Community | None: ...


def registered_community(community_id: str, directory: CommunityDirectory) -> Community:
    """The community, or `UnknownCommunity` (404) before Redis is touched: unknown ids never
    create keys."""
    community = directory.get(community_id)
    if community is None:
        raise UnknownCommunity(community_id)
    return community
