"""The registered-community lookup every entry point makes before touching the live state, and how a
registration reaches Redis.

A community's registration (division, time zone, version) lives in the directory (DynamoDB), and
each function keeps what it read for a while. Redis holds the one its scripts check: the admin
route installs a new registration at once (moving the live visitors of a division move with
it), and every script that keeps calendar figures or divisions is told the version the caller
read. A caller that kept an older one, or one Redis does not hold yet (a new community, a Redis
that restarted), is told so before anything is written (`CommunityOutdated`): it reads the
directory again, installs what it holds if Redis is behind, and tries again
(`with_live_community`). So no function counts against an old division or calendar once Redis
has the new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from community_tracker.errors import CommunityOutdated, DirectoryUnavailable, LiveStateUnavailable, UnknownCommunity
from community_tracker.models import Checkpoint, Community, default_time_zone
from community_tracker.observability import logger

T = TypeVar("T")
REGISTRATION_ATTEMPTS = 3


class CommunityDirectory(Protocol):
    def get(self, community_id: str) -> Community | None: ...


class FreshDirectory(CommunityDirectory, Protocol):
    def fresh(self, community_id: str) -> Community | None: ...
    def replace(self, community: Community, previous: Community | None) -> bool: ...


class LiveRegistrations(Protocol):
    """Where the live state keeps registrations (`redis.live_state.VisitorTracker`)."""

    def install_community(
        self, community: Community, now_ms: int, checkpoint: Checkpoint | None = None, *, force: bool = False
    ) -> bool: ...


class Checkpoints(Protocol):
    """The open calendar figures cleanup saved (`aws.stores.DynamoCheckpointStore`)."""

    def load_checkpoint(self, community_id: str) -> Checkpoint | None: ...


def registered_community(community_id: str, directory: CommunityDirectory) -> Community:
    """The community, or `UnknownCommunity` (404) before Redis is touched: unknown ids never
    create keys."""
    community = directory.get(community_id)
    if community is None:
        raise UnknownCommunity(community_id)
    return community


def register_community(
    community_id: str,
    *,
    slug: str,
    name: str,
    division_id: str | None,
    time_zone: str | None,
    parts: int | None = None,
    directory: FreshDirectory,
    live: LiveRegistrations,
    now_ms: int,
) -> Community:
    """Registers or updates a community: a new version in the directory (written only over the
    version it read, so two admins at once never lose one), then installed in Redis. A new zone
    is added to its calendar at `now_ms` (in effect at the end of each open bucket); no zone keeps
    the one it has, or gives a new community the default; likewise no `parts` keeps the one it
    has (1 for a new community), and `history_parts` only ever goes up."""
    for _attempt in range(REGISTRATION_ATTEMPTS):
        existing = directory.fresh(community_id)
        zone = time_zone or (existing.time_zone if existing is not None else default_time_zone())
        split = parts or (existing.parts if existing is not None else 1)
        community = Community(
            community_id=community_id,
            slug=slug,
            name=name,
            division_id=division_id,
            time_zone=zone,
            zone_history=existing.with_time_zone(zone, now_ms) if existing is not None else (),
            version=existing.version + 1 if existing is not None else 1,
            parts=split,
            history_parts=max(split, existing.visit_partitions) if existing is not None else split,
        )
        if directory.replace(community, existing):
            break
    else:
        raise DirectoryUnavailable(f"community {community_id}: registrations keep crossing, try again")
    try:
        live.install_community(community, now_ms)
    except LiveStateUnavailable:
        # Stored; each function installs it when Redis is back and tells it it is behind.
        logger.warning("community registered, not installed in the live state", extra={"community": community_id})
    return community


def current_community(
    community_id: str,
    outdated: CommunityOutdated,
    *,
    directory: FreshDirectory,
    live: LiveRegistrations,
    now_ms: int,
    checkpoints: Checkpoints | None = None,
) -> Community:
    """What the directory holds now, installed in Redis if Redis holds another one or none; when
    it holds none (a restart, a failover to an empty node, a new community), with the open
    figures of the community's last checkpoint."""
    fresh = directory.fresh(community_id)
    if fresh is None:
        raise UnknownCommunity(community_id)
    if outdated.live_version is None:
        checkpoint = checkpoints.load_checkpoint(community_id) if checkpoints is not None else None
        live.install_community(fresh, now_ms, checkpoint)
    elif fresh.version != outdated.live_version:
        # Newer: Redis is behind. Older: the directory was reset (an emulator restarted empty and
        # seeded again), and what it holds now is the community's registration.
        live.install_community(fresh, now_ms, force=fresh.version < outdated.live_version)
    return fresh


def with_live_community(
    community: Community,
    action: Callable[[Community], T],
    *,
    directory: FreshDirectory,
    live: LiveRegistrations,
    now_ms: int,
    checkpoints: Checkpoints | None = None,
) -> T:
    """`action(community)`, or, when Redis holds another registration, `action` of the current
    one (read again, installed if need be). Twice told: the live state is unavailable."""
    try:
        return action(community)
    except CommunityOutdated as outdated:
        fresh = current_community(
            community.community_id, outdated, directory=directory, live=live, now_ms=now_ms, checkpoints=checkpoints
        )
    try:
        return action(fresh)
    except CommunityOutdated as again:
        raise LiveStateUnavailable(str(again)) from again
