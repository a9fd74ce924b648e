"""The live context's edges against a real Redis, one node and the cluster (README, "Live
context"): what a read does beyond its batch of stale people, and records from before the context."""

from __future__ import annotations

from typing import cast

from community_tracker.models import CONTEXT_DIMENSIONS, PageContext
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.keys import CommunityKeys
from community_tracker.redis.live_state import VisitorTracker
from tests.builders import MINUTE, SECOND, T0, anonymous, visit

WINDOW = 5 * MINUTE
STALE_BATCH = 1000  # community.lua, CONTEXT_STALE_BATCH


def on(path: str) -> PageContext:
    return PageContext(page=path, referrer="news.example", device="mobile", country="CA")


def test_a_read_discounts_a_thousand_stale_people_and_cleanup_the_rest(
    tracker: VisitorTracker, cleanup_index: CleanupIndex, community_id: str
) -> None:
    # Given more people than a read's batch, who all go stale with no beacon or cleanup since
    for i in range(STALE_BATCH + 3):
        person = visit(community_id, anonymous(f"s{i}")).model_copy(update={"context": on(f"/p{i % 2}")})
        assert tracker.add_visitor(person, T0 + i).status == "counted"
    quiet = T0 + STALE_BATCH + WINDOW + 10 * SECOND

    # Then a read discounts the first thousand by their records; the three beyond still count
    total, counts = tracker.get_context_counts(community_id, quiet)
    assert total == 0
    assert {d: sum(values.values()) for d, values in counts.items()} == dict.fromkeys(CONTEXT_DIMENSIONS, 3)
    # Until cleanup prunes them: nothing is left anywhere
    cleanup_index.cleanup_stale_visitors(community_id, quiet)
    assert tracker.get_context_counts(community_id, quiet) == (0, {d: {} for d in CONTEXT_DIMENSIONS})
    keys = CommunityKeys(community_id)
    assert [tracker.client.exists(keys.context(d)) for d in CONTEXT_DIMENSIONS] == [0, 0, 0, 0]


def test_a_record_from_before_the_context_counts_from_its_next_page_view(
    tracker: VisitorTracker, cleanup_index: CleanupIndex, community_id: str
) -> None:
    keys = CommunityKeys(community_id)
    person = visit(community_id, anonymous("old"))
    tracker.add_visitor(person.model_copy(update={"context": on("/a")}), T0)
    # Given a person as a release before the live context kept them: no context line, no counts
    member, record = next(iter(cast(dict[str, str], tracker.client.hgetall(keys.visitors)).items()))
    head, context_line, *connections = record.split("\n")
    assert context_line == "=/a|news.example|mobile|CA"
    tracker.client.hset(keys.visitors, member, "\n".join([head, *connections]))
    for dimension in CONTEXT_DIMENSIONS:
        tracker.client.delete(keys.context(dimension))

    # Their heartbeats keep them live and counted in no dimension
    assert tracker.update_visitor_activity(person, T0 + 30 * SECOND).status == "counted"
    assert tracker.get_context_counts(community_id, T0 + 31 * SECOND) == (1, {d: {} for d in CONTEXT_DIMENSIONS})

    # Their next page view counts them; going stale takes back exactly that
    tracker.add_visitor(person.model_copy(update={"context": on("/b")}), T0 + MINUTE)
    _total, counts = tracker.get_context_counts(community_id, T0 + MINUTE)
    assert counts["pages"] == {"/b": 1}
    cleanup_index.cleanup_stale_visitors(community_id, T0 + MINUTE + WINDOW)
    assert [tracker.client.exists(keys.context(d)) for d in CONTEXT_DIMENSIONS] == [0, 0, 0, 0]
