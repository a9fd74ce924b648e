"""The traffic every ingest and read figure replays: many communities, many visitors, a mix of
anonymous and authenticated ones, home divisions known or not, some visits cross-division.

Deterministic (seeded), so two runs replay the same traffic.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from community_tracker.models import Visit, VisitorIdentity, anonymous_visitor_key, authenticated_visitor_key

DIVISIONS = ("montreal", "quebec", "laval", "gatineau", "sherbrooke", "levis", "saguenay", "trois-rivieres")
AUTHENTICATED_SHARE = 0.3  # logged-in visitors among all visitors
KNOWN_DIVISION_SHARE = 0.85  # visitors whose home division is known (a token claim, or location)


@dataclass(frozen=True)
class Community:
    community_id: str
    division_id: str


@dataclass(frozen=True)
class Visitor:
    identity: VisitorIdentity
    client_key: str  # keyed hash of the client's IP, for the per-client rate limit
    source_ip: str
    browser_id: str  # what the page keeps in sessionStorage (the handler hashes it)


@dataclass(frozen=True)
class Population:
    communities: list[Community]
    visitors: list[Visitor]


def population(name: str, communities: int, visitors: int, *, seed: int = 7) -> Population:
    """`name` keeps the keys of one figure (or one worker process) apart from every other's."""
    rng = random.Random(f"{name}:{seed}")
    return Population(
        communities=[Community(f"{name}-c{i:05d}", rng.choice(DIVISIONS)) for i in range(communities)],
        visitors=[_visitor(rng, name, i) for i in range(visitors)],
    )


def _visitor(rng: random.Random, name: str, index: int) -> Visitor:
    division = rng.choice(DIVISIONS) if rng.random() < KNOWN_DIVISION_SHARE else None
    if rng.random() < AUTHENTICATED_SHARE:
        user_id = f"{name}-user-{index:06d}"
        identity = VisitorIdentity(
            key=authenticated_visitor_key(user_id), user_id=user_id, division_id=division, is_authenticated=True
        )
    else:
        identity = VisitorIdentity(
            key=anonymous_visitor_key(f"{rng.getrandbits(128):032x}"),
            user_id=None,
            division_id=division,
            is_authenticated=False,
        )
    ip = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
    return Visitor(identity, f"{rng.getrandbits(64):016x}", ip, f"tab-{rng.getrandbits(64):016x}")


def visits(people: Population, count: int, *, batch: str, seed: int = 11) -> list[Visit]:
    """`count` page views by random visitors to random communities, each with its own event id
    (`batch` makes them unique across calls, so no beacon is ever a duplicate)."""
    rng = random.Random(f"{batch}:{seed}")
    chosen = []
    for i in range(count):
        community = rng.choice(people.communities)
        visitor = rng.choice(people.visitors)
        chosen.append(_page_view(community, visitor, f"e{batch}x{i:09d}"))
    return chosen


def arrivals(community: Community, people: Sequence[Visitor], *, batch: str) -> list[Visit]:
    """One page view of `community` by each of `people`: that many live visitors."""
    return [_page_view(community, visitor, f"e{batch}x{i:09d}") for i, visitor in enumerate(people)]


def _page_view(community: Community, visitor: Visitor, event_id: str) -> Visit:
    return Visit(
        community_id=community.community_id,
        community_division=community.division_id,
        visitor=visitor.identity,
        event_id=event_id,
        client_key=visitor.client_key,
    )
