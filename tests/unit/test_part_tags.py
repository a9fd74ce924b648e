"""Where a split community's parts live (`keys.part_tag`, README "One community in N parts"): part 0
keeps the community's plain tag, every tag stays what it was (it names keys already in Redis), and
the N parts fall evenly on the masters of a cluster that hands out its slots in equal ranges."""

from __future__ import annotations

import bisect

import pytest
from redis.crc import key_slot

from community_tracker.redis.keys import CommunityKeys, part_tag, parts_keys

# The first slot of each master, as `redis-cli --cluster create` hands them out to three (the
# test cluster's layout: 0-5460, 5461-10922, 10923-16383).
THREE_MASTERS = [0, 5461, 10923]
COMMUNITIES = [f"community-{i}" for i in range(20)] + ["quebec-city", "bench-split"]


def masters_of(community_id: str, parts: int) -> list[int]:
    """How many of the community's parts each of the three masters holds."""
    held = [0, 0, 0]
    for keys in parts_keys(community_id, parts):
        held[bisect.bisect_right(THREE_MASTERS, key_slot(keys.tag.encode())) - 1] += 1
    return held


def test_part_0_keeps_the_plain_tag_whatever_the_number_of_parts() -> None:
    for parts in (1, 2, 6, 64):
        assert part_tag("quebec-city", 0, parts) == "{c:quebec-city}"
    assert CommunityKeys("quebec-city").live == "{c:quebec-city}:live"


def test_tags_are_stable() -> None:
    # Given tags computed before (their keys may be in Redis now)
    # Then the same community, part and number of parts names them again, in any process
    assert part_tag("quebec-city", 1, 2) == "{c:quebec-city#1.367}"
    assert part_tag("quebec-city", 3, 8) == "{c:quebec-city#3.1264}"
    assert part_tag("quebec-city", 5, 6) == "{c:quebec-city#5.166}"
    part_tag.cache_clear()
    assert part_tag("quebec-city", 3, 8) == "{c:quebec-city#3.1264}"


def test_a_part_the_community_does_not_have_has_no_tag() -> None:
    with pytest.raises(ValueError, match="part 4 of a community in 4 parts"):
        part_tag("quebec-city", 4, 4)


@pytest.mark.parametrize("parts", [2, 3, 4, 6, 8, 64])
def test_parts_spread_evenly_over_three_masters(parts: int) -> None:
    for community_id in COMMUNITIES:
        held = masters_of(community_id, parts)
        # Then each master holds N / 3 parts when 3 divides N, and otherwise at most one more than another
        assert max(held) - min(held) <= (0 if parts % 3 == 0 else 1), (community_id, held)
        # and every part has a slot of its own, in its own N-th of the slots
        slots = [key_slot(keys.tag.encode()) for keys in parts_keys(community_id, parts)]
        assert len({slot * parts // 16384 for slot in slots}) == parts
