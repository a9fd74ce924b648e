"""The tracker against a real Redis, once on a single node and once on a 3-master cluster."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from redis import Redis
from redis.cluster import RedisCluster
from redis.connection import Connection

from community_tracker.models import CrossDivisionPair, DivisionCount, VisitorIdentity
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.keys import CommunityKeys, index_key, index_shard
from community_tracker.redis.live_state import VisitorTracker, tracker_for
from community_tracker.timeutil import iso, to_ms
from infra.redis_servers import RedisProcess
from tests.builders import MINUTE, SECOND, T0, anonymous, browser_of, user, visit

HOUR = 60 * MINUTE

WINDOW = 5 * MINUTE


def test_add_visitor_answers_the_seed_shape(tracker: VisitorTracker, community_id: str) -> None:
    # Given a community in the "quebec" division
    # When a Montreal user views one of its pages
    outcome = tracker.add_visitor(visit(community_id, user("u1", "montreal")), T0)

    # Then the answer is the seed's add_visitor shape, field for field
    assert outcome.status == "counted"
    assert outcome.result.model_dump() == {
        "current_count": 1,
        "is_cross_division": True,
        "visitor_division": "montreal",
        "community_division": "quebec",
        "timestamp": iso(T0),
    }
    assert outcome.result.timestamp.endswith("Z")


def test_counts_split_and_percentages(tracker: VisitorTracker, community_id: str) -> None:
    tracker.add_visitor(visit(community_id, user("u1")), T0)
    tracker.add_visitor(visit(community_id, anonymous("s1")), T0 + 1)
    tracker.add_visitor(visit(community_id, anonymous("s2")), T0 + 2)

    stats = tracker.get_visitor_stats(community_id, T0 + 3)

    assert stats.model_dump() == {
        "total_visitors": 3,
        "authenticated_visitors": 1,
        "anonymous_visitors": 2,
        "authenticated_percentage": 33.33,
        "anonymous_percentage": 66.67,
        "present_now": 3,
        "connections": 3,
    }
    assert tracker.get_authenticated_visitor_count(community_id, T0 + 3) == 1
    assert tracker.get_anonymous_visitor_count(community_id, T0 + 3) == 2


def test_empty_community_reads_zero_everywhere(tracker: VisitorTracker, community_id: str) -> None:
    stats = tracker.get_visitor_stats(community_id, T0)
    cross = tracker.get_cross_division_stats(community_id, T0)

    assert stats.authenticated_percentage == 0.0
    assert stats.anonymous_percentage == 0.0
    assert stats.total_visitors == 0
    assert cross.cross_division_percentage == 0.0
    assert cross.breakdown == []
    assert tracker.get_division_breakdown(community_id, T0) == []
    assert tracker.get_peak_counts(community_id, T0).model_dump() == {"daily": 0, "weekly": 0, "monthly": 0}
    assert tracker.get_visitor_list(community_id, T0).visitors == []


def test_reads_discount_stale_visitors_without_cleanup(tracker: VisitorTracker, community_id: str) -> None:
    # Given one visitor at T0 and one at T0 + 2 minutes, in different divisions
    tracker.add_visitor(visit(community_id, user("early", "montreal")), T0)
    tracker.add_visitor(visit(community_id, anonymous("late", "laval")), T0 + 2 * MINUTE)

    # When exactly five minutes have passed since the first one (no cleanup ran)
    now = T0 + WINDOW

    # Then every read already leaves the first one out, derived counts included
    assert tracker.get_visitor_stats(community_id, now - 1).total_visitors == 2
    assert tracker.get_visitor_stats(community_id, now).total_visitors == 1
    assert tracker.get_division_breakdown(community_id, now) == [DivisionCount(division_id="laval", count=1)]
    cross = tracker.get_cross_division_stats(community_id, now)
    assert cross.cross_division_visits == 1
    assert cross.breakdown == [CrossDivisionPair(from_division="laval", to_division="quebec", count=1)]
    assert not tracker.is_user_visiting(community_id, "early", now)


def test_a_read_prunes_nothing_and_still_answers_exactly(tracker: VisitorTracker, community_id: str) -> None:
    # Given 10 people who went stale together (no beacon since) and 4 live ones
    stale = [visit(community_id, user(f"gone-{i}", ["montreal", "laval"][i % 2])) for i in range(10)]
    live = [visit(community_id, anonymous(f"here-{i}", "laval")) for i in range(4)]
    tracker.add_visitors(stale, T0)
    tracker.add_visitors(live, T0 + 3 * MINUTE)
    now = T0 + WINDOW + SECOND
    keys = CommunityKeys(community_id)

    # When it is read
    summary = tracker.get_summary(community_id, now)
    page = tracker.get_visitor_list(community_id, now + 1)

    # Then nothing was pruned (that is the next beacon's or cleanup's), and both answers leave all
    # 10 out
    assert tracker.client.zcard(keys.live) == 14
    assert summary.stats.total_visitors == 4
    assert (summary.stats.authenticated_visitors, summary.stats.anonymous_visitors) == (0, 4)
    assert summary.stats.connections == 4
    assert summary.divisions == [DivisionCount(division_id="laval", count=4)]
    assert summary.cross_division.breakdown == [CrossDivisionPair(from_division="laval", to_division="quebec", count=4)]
    assert page.total_visitors == 4
    assert len(page.visitors) == 4
    assert {v.is_authenticated for v in page.visitors} == {False}
    # And cleanup takes them
    assert CleanupIndex(tracker.client).cleanup_stale_visitors(community_id, now + 2).removed == 10
    assert tracker.client.zcard(keys.live) == 4


def test_heartbeat_keeps_a_visitor_live_without_counting_a_page(tracker: VisitorTracker, community_id: str) -> None:
    tracker.add_visitor(visit(community_id, user("u1")), T0)

    outcome = tracker.update_visitor_activity(visit(community_id, user("u1")), T0 + 4 * MINUTE)

    assert outcome.status == "counted"
    [visitor] = tracker.get_visitor_list(community_id, T0 + 8 * MINUTE).visitors
    assert visitor.pages_viewed == 1
    assert visitor.joined_at == iso(T0)
    assert visitor.last_activity == iso(T0 + 4 * MINUTE)


def test_activity_with_page_increment(tracker: VisitorTracker, community_id: str) -> None:
    tracker.add_visitor(visit(community_id, anonymous("s1")), T0)
    tracker.update_visitor_activity(visit(community_id, anonymous("s1")), T0 + 1, increment_pages=True)

    [visitor] = tracker.get_visitor_list(community_id, T0 + 2).visitors
    assert visitor.pages_viewed == 2


def test_heartbeat_of_an_absent_visitor_changes_nothing(tracker: VisitorTracker, community_id: str) -> None:
    tracker.add_visitor(visit(community_id, user("gone")), T0)

    outcome = tracker.update_visitor_activity(visit(community_id, user("gone")), T0 + WINDOW)

    assert outcome.status == "not_present"
    assert outcome.result.current_count == 0
    assert tracker.get_visitor_stats(community_id, T0 + WINDOW).total_visitors == 0


def test_divisions_and_cross_division_pairs(tracker: VisitorTracker, community_id: str) -> None:
    for i, division in enumerate(["montreal", "montreal", "laval", "quebec", None]):
        tracker.add_visitor(visit(community_id, user(f"u{i}", division)), T0 + i)
    tracker.add_visitor(visit(community_id, anonymous("s1", "montreal")), T0 + 10)

    now = T0 + 11
    assert tracker.get_division_breakdown(community_id, now) == [
        DivisionCount(division_id="montreal", count=3),
        DivisionCount(division_id="laval", count=1),
        DivisionCount(division_id="quebec", count=1),
        DivisionCount(division_id=None, count=1),
    ]
    cross = tracker.get_cross_division_stats(community_id, now)
    assert cross.model_dump() == {
        "total_visitors": 6,
        "cross_division_visits": 4,
        "cross_division_percentage": 66.67,
        "breakdown": [
            {"from_division": "montreal", "to_division": "quebec", "count": 3},
            {"from_division": "laval", "to_division": "quebec", "count": 1},
        ],
    }


def test_unknown_community_division_is_never_cross(tracker: VisitorTracker, community_id: str) -> None:
    outcome = tracker.add_visitor(visit(community_id, user("u1", "montreal"), community_division=None), T0)

    assert outcome.result.is_cross_division is False
    assert outcome.result.community_division is None
    assert tracker.get_cross_division_stats(community_id, T0).cross_division_visits == 0


def test_a_visitor_changing_division_moves_its_counts(tracker: VisitorTracker, community_id: str) -> None:
    tracker.add_visitor(visit(community_id, user("u1", "montreal")), T0)
    tracker.add_visitor(visit(community_id, user("u1", "quebec")), T0 + 1)

    assert tracker.get_division_breakdown(community_id, T0 + 2) == [DivisionCount(division_id="quebec", count=1)]
    assert tracker.get_cross_division_stats(community_id, T0 + 2).cross_division_visits == 0


def test_peaks_per_day_week_and_month(tracker: VisitorTracker, community_id: str) -> None:
    # Given three visitors on Wednesday 2031-03-05 who then leave
    for i in range(3):
        tracker.add_visitor(visit(community_id, anonymous(f"s{i}")), T0 + i)
    for i in range(3):
        tracker.remove_visitor(community_id, browser_of(anonymous(f"s{i}")), T0 + 10 + i)

    # Then the peaks stay at 3, with the time the third one arrived
    assert tracker.get_peak_counts(community_id, T0 + 20).model_dump() == {
        "daily": 3,
        "weekly": 3,
        "monthly": 3,
    }
    assert {p.period: p.reached_at for p in tracker.get_peaks(community_id, T0 + 20)} == {
        "day": iso(T0 + 2),
        "week": iso(T0 + 2),
        "month": iso(T0 + 2),
    }

    # When a single visitor comes on Thursday, same ISO week and month
    thursday = to_ms(datetime(2031, 3, 6, 9, 0, tzinfo=UTC))
    tracker.add_visitor(visit(community_id, anonymous("s9")), thursday)

    # Then the daily peak starts over while the weekly and monthly ones are kept
    peaks = tracker.get_peak_counts(community_id, thursday + 1)
    assert peaks.model_dump() == {"daily": 1, "weekly": 3, "monthly": 3}

    # And on the next Monday (a new ISO week), only the monthly peak remains
    monday = to_ms(datetime(2031, 3, 10, 9, 0, tzinfo=UTC))
    assert tracker.get_peak_counts(community_id, monday).model_dump() == {
        "daily": 0,
        "weekly": 0,
        "monthly": 3,
    }


def test_duplicate_event_id_changes_nothing(tracker: VisitorTracker, community_id: str) -> None:
    first = tracker.add_visitor(visit(community_id, user("u1", "laval"), event_id="evt-0001-aaaa"), T0)
    retry = tracker.add_visitor(visit(community_id, user("u1", "laval"), event_id="evt-0001-aaaa"), T0 + 1)

    assert first.status == "counted"
    assert retry.status == "duplicate"
    assert retry.recorded_at_ms == first.recorded_at_ms == T0  # the retry maps to the same record
    assert retry.result.current_count == 1
    [visitor] = tracker.get_visitor_list(community_id, T0 + 2).visitors
    assert visitor.pages_viewed == 1
    assert tracker.get_drop_counts(community_id, T0 + 2).duplicate == 1


def test_rate_limit_per_client(redis_client: Redis | RedisCluster, community_id: str) -> None:
    tracker = tracker_for(redis_client, rate_limit_per_minute=3)
    minute_start = T0 - T0 % MINUTE
    statuses = [
        tracker.add_visitor(visit(community_id, anonymous(f"s{i}"), client_key="client-a"), minute_start + i).status
        for i in range(4)
    ]
    other_client = tracker.add_visitor(visit(community_id, anonymous("x"), client_key="client-b"), minute_start + 5)
    next_minute = tracker.add_visitor(
        visit(community_id, anonymous("s4"), client_key="client-a"), minute_start + MINUTE
    )

    assert statuses == ["counted", "counted", "counted", "rate_limited"]
    assert other_client.status == "counted"
    assert next_minute.status == "counted"
    assert tracker.get_visitor_stats(community_id, minute_start + MINUTE).total_visitors == 5
    assert tracker.get_drop_counts(community_id, minute_start + MINUTE).rate_limited == 1


def test_heartbeats_write_no_dedup_marker_and_no_client_counter(
    redis_client: Redis | RedisCluster, community_id: str
) -> None:
    """A repeated heartbeat changes nothing a first one did not, so it needs no dedup marker;
    the per-client limit is for page views (which make people and connections)."""
    tracker = tracker_for(redis_client, rate_limit_per_minute=1)
    minute_start = T0 - T0 % MINUTE
    visitor = visit(community_id, anonymous("hb"), event_id="evt-hb-0001", client_key="client-hb")
    assert tracker.add_visitor(visitor, minute_start).status == "counted"

    beats = [
        tracker.update_visitor_activity(
            visit(community_id, anonymous("hb"), event_id="evt-hb-0002", client_key="client-hb"), minute_start + i
        )
        for i in range(1, 4)
    ]

    assert [b.status for b in beats] == ["counted"] * 3
    assert not tracker.event_seen(community_id, "evt-hb-0002", minute_start + 4)
    assert tracker.event_seen(community_id, "evt-hb-0001", minute_start + 4)
    keys = CommunityKeys(community_id)
    assert redis_client.hgetall(keys.rates(minute_start // MINUTE)) == {"client-hb": "1"}


def test_per_connection_limit_counts_in_the_connection_entry(
    redis_client: Redis | RedisCluster, community_id: str
) -> None:
    tracker = tracker_for(redis_client, connection_rate_limit_per_minute=3)
    minute_start = T0 - T0 % MINUTE
    person = anonymous("chatty")
    statuses = [tracker.add_visitor(visit(community_id, person), minute_start).status]
    statuses += [tracker.update_visitor_activity(visit(community_id, person), minute_start + i).status for i in (1, 2)]
    # Leaving and coming back does not reset the count.
    tracker.remove_visitor(community_id, browser_of(person), minute_start + 3)
    statuses.append(tracker.update_visitor_activity(visit(community_id, person), minute_start + 4).status)
    statuses.append(tracker.add_visitor(visit(community_id, person), minute_start + 5).status)
    next_minute = tracker.add_visitor(visit(community_id, person), minute_start + MINUTE)

    assert statuses == ["counted", "counted", "counted", "rate_limited", "rate_limited"]
    assert next_minute.status == "counted"
    assert tracker.get_drop_counts(community_id, minute_start + MINUTE).rate_limited == 2
    assert [k for node in _keys_of(redis_client, f"{CommunityKeys(community_id).tag}:crate:*") for k in node] == []


def test_a_heartbeat_is_counted_in_a_new_day_once(tracker: VisitorTracker, community_id: str) -> None:
    """A person live across midnight is in the new day's peak and unique visitors from its first
    beacon, a heartbeat (the day opens with everyone live at its start); their next heartbeats,
    on the heartbeat script's path, leave the calendar keys as they are."""
    midnight = to_ms(datetime(2031, 3, 6, tzinfo=UTC))
    tracker.add_visitor(visit(community_id, user("owl")), midnight - MINUTE)
    tracker.add_visitor(visit(community_id, user("lark")), midnight - MINUTE)
    tracker.remove_visitor(community_id, browser_of(user("lark")), midnight - 30 * SECOND)

    tracker.update_visitor_activity(visit(community_id, user("owl")), midnight + SECOND)
    peak_key = CommunityKeys(community_id).peak_key("day", "2031-03-06@UTC")
    first = tracker.client.hgetall(peak_key)
    tracker.update_visitor_activity(visit(community_id, user("owl")), midnight + 30 * SECOND)

    assert first == {"count": "1", "at": str(midnight), "opened": "1"}
    assert tracker.client.hgetall(peak_key) == first
    assert tracker.get_unique_visitors(community_id, midnight + MINUTE).daily == 1
    assert tracker.get_peak_counts(community_id, midnight + MINUTE).daily == 1


def test_login_merges_the_anonymous_entry(tracker: VisitorTracker, community_id: str) -> None:
    # Given an anonymous browser that viewed two pages
    tracker.add_visitor(visit(community_id, anonymous("browser-1")), T0)
    tracker.add_visitor(visit(community_id, anonymous("browser-1")), T0 + MINUTE)

    # When the same browser logs in and views a page with its token and its anonymous id
    outcome = tracker.add_visitor(
        visit(community_id, user("u1", "montreal"), connection=browser_of(anonymous("browser-1"))), T0 + 2 * MINUTE
    )

    # Then one authenticated visitor remains, with the anonymous history folded in
    assert outcome.result.current_count == 1
    stats = tracker.get_visitor_stats(community_id, T0 + 2 * MINUTE)
    assert (stats.authenticated_visitors, stats.anonymous_visitors) == (1, 0)
    [visitor] = tracker.get_visitor_list(community_id, T0 + 2 * MINUTE).visitors
    assert visitor.user_id == "u1"
    assert visitor.pages_viewed == 3
    assert visitor.joined_at == iso(T0)


def test_remove_visitor(tracker: VisitorTracker, community_id: str) -> None:
    leaver = f"leaver-{community_id}"  # the per-user set is global: one user per test
    tracker.add_visitor(visit(community_id, user(leaver, "laval")), T0)
    tracker.add_visitor(visit(community_id, anonymous("s1")), T0 + 1)

    # The leave takes effect after the grace (the next page of the same visit would cancel it)
    assert tracker.remove_visitor(community_id, browser_of(user(leaver)), T0 + 2) == 2
    assert tracker.remove_visitor(community_id, browser_of(user("nobody")), T0 + 3) == 2
    after_grace = T0 + 2 + tracker.grace_ms

    assert tracker.get_visitor_stats(community_id, after_grace).total_visitors == 1
    assert tracker.get_cross_division_stats(community_id, after_grace).cross_division_visits == 0
    assert not tracker.is_user_visiting(community_id, leaver, after_grace)
    assert tracker.get_user_communities(leaver, after_grace) == []


def test_visitor_list_most_recent_first_and_paginated(tracker: VisitorTracker, community_id: str) -> None:
    for i in range(5):
        tracker.add_visitor(visit(community_id, user(f"u{i}")), T0 + i * SECOND)
    tracker.update_visitor_activity(visit(community_id, user("u0")), T0 + 10 * SECOND)

    first = tracker.get_visitor_list(community_id, T0 + 11 * SECOND, limit=3)
    second = tracker.get_visitor_list(community_id, T0 + 11 * SECOND, offset=3, limit=3)

    assert [v.user_id for v in first.visitors] == ["u0", "u4", "u3"]
    assert first.next_cursor == "3"
    assert [v.user_id for v in second.visitors] == ["u2", "u1"]
    assert second.next_cursor is None
    assert first.total_visitors == 5


def test_anonymous_visitors_are_listed_without_any_id(tracker: VisitorTracker, community_id: str) -> None:
    tracker.add_visitor(visit(community_id, anonymous("secret-session-id", "laval")), T0)

    [visitor] = tracker.get_visitor_list(community_id, T0).visitors

    assert visitor.model_dump() == {
        "user_id": None,
        "is_authenticated": False,
        "division_id": "laval",
        "joined_at": iso(T0),
        "pages_viewed": 1,
        "last_activity": iso(T0),
    }


def test_communities_a_user_is_visiting(tracker: VisitorTracker, community_id: str) -> None:
    roamer = f"roamer-{community_id}"
    communities = [f"{community_id}-{i}" for i in range(3)]
    for i, community in enumerate(communities):
        tracker.add_visitor(visit(community, user(roamer)), T0 + i * MINUTE)

    # The first one goes stale at T0 + 5 min; the last was visited most recently
    assert tracker.get_user_communities(roamer, T0 + WINDOW) == [communities[2], communities[1]]
    assert tracker.is_user_visiting(communities[1], roamer, T0 + WINDOW)


def test_unique_visitors_per_bucket(tracker: VisitorTracker, community_id: str) -> None:
    for i in range(20):
        tracker.add_visitor(visit(community_id, anonymous(f"s{i % 10}")), T0 + i)

    unique = tracker.get_unique_visitors(community_id, T0 + 100)

    assert (unique.daily, unique.weekly, unique.monthly) == (10, 10, 10)
    assert [(b.period, b.bucket, b.time_zone) for b in unique.buckets] == [
        ("day", "2031-03-05", "UTC"),
        ("week", "2031-W10", "UTC"),
        ("month", "2031-03", "UTC"),
    ]


def test_timeline_keeps_the_highest_count_of_each_minute(tracker: VisitorTracker, community_id: str) -> None:
    minute_start = T0 - T0 % MINUTE
    tracker.add_visitor(visit(community_id, anonymous("a")), minute_start)
    tracker.add_visitor(visit(community_id, anonymous("b")), minute_start + SECOND)
    tracker.remove_visitor(community_id, browser_of(anonymous("b")), minute_start + 2 * SECOND)
    tracker.add_visitor(visit(community_id, anonymous("c")), minute_start + 2 * MINUTE)

    timeline = tracker.get_timeline(community_id, minute_start + 2 * MINUTE, minutes=4)

    assert [(p.minute, p.visitors) for p in timeline] == [
        (iso(minute_start - MINUTE), 0),
        (iso(minute_start), 2),
        (iso(minute_start + MINUTE), 0),
        (iso(minute_start + 2 * MINUTE), 2),
    ]


def test_cross_division_history_counts_page_views_per_day(tracker: VisitorTracker, community_id: str) -> None:
    for i in range(3):
        tracker.add_visitor(visit(community_id, user("u1", "laval")), T0 + i)
    tracker.update_visitor_activity(visit(community_id, user("u1", "laval")), T0 + 10)
    tracker.add_visitor(visit(community_id, user("u2", "montreal")), T0 + 11)

    days, history = tracker.get_cross_division_history(community_id, "2031-03-05")

    assert [(d.bucket, d.start, d.end) for d in days] == [("2031-03-05", iso(T0 - 12 * HOUR), iso(T0 + 12 * HOUR))]
    assert history == [
        CrossDivisionPair(from_division="laval", to_division="quebec", count=3),
        CrossDivisionPair(from_division="montreal", to_division="quebec", count=1),
    ]


def test_summary_carries_every_aggregate(tracker: VisitorTracker, community_id: str) -> None:
    tracker.add_visitor(visit(community_id, user("u1", "laval")), T0)
    tracker.add_visitor(visit(community_id, anonymous("s1")), T0 + SECOND)

    summary = tracker.get_summary(community_id, T0 + 2 * SECOND, timeline_minutes=5)

    assert summary.stats == tracker.get_visitor_stats(community_id, T0 + 2 * SECOND)
    assert summary.divisions == tracker.get_division_breakdown(community_id, T0 + 2 * SECOND)
    assert summary.cross_division == tracker.get_cross_division_stats(community_id, T0 + 2 * SECOND)
    assert summary.peaks == tracker.get_peak_counts(community_id, T0 + 2 * SECOND)
    assert summary.unique_visitors.daily == 2
    assert len(summary.timeline) == 5
    assert summary.timeline[-1].visitors == 2


def test_cleanup_removes_stale_visitors_and_keeps_counts_exact(
    tracker: VisitorTracker, cleanup_index: CleanupIndex, community_id: str
) -> None:
    tracker.add_visitor(visit(community_id, user("old", "laval")), T0)
    tracker.add_visitor(visit(community_id, anonymous("new", "montreal")), T0 + 3 * MINUTE)

    result = cleanup_index.cleanup_stale_visitors(community_id, T0 + WINDOW)

    assert (result.removed, result.remaining, result.index_flag_cleared) == (1, 1, False)
    keys = CommunityKeys(community_id)
    client = tracker.client
    assert client.hgetall(keys.divisions) == {"montreal": "1"}
    assert client.hgetall(keys.pairs) == {"montreal>quebec": "1"}
    assert client.hgetall(keys.counts) == {"anon": "1", "cross": "1", "indexed": str(T0 + 3 * MINUTE)}
    assert client.hkeys(keys.visitors) == [anonymous("new").key]

    # A second pass at the same time finds nothing more to remove (no double decrement)
    assert cleanup_index.cleanup_stale_visitors(community_id, T0 + WINDOW).removed == 0
    emptied = cleanup_index.cleanup_stale_visitors(community_id, T0 + 8 * MINUTE)
    assert (emptied.removed, emptied.remaining, emptied.index_flag_cleared) == (1, 0, True)
    assert client.exists(keys.live, keys.visitors, keys.counts, keys.divisions, keys.pairs) == 0


def test_first_visit_registers_the_community_in_its_index_shard(
    tracker: VisitorTracker, cleanup_index: CleanupIndex, community_id: str
) -> None:
    shard = index_shard(community_id, cleanup_index.index_shards)
    assert community_id not in cleanup_index.indexed_communities(shard)

    tracker.add_visitor(visit(community_id, anonymous("s1")), T0)

    assert cleanup_index.indexed_communities(shard)[community_id] == 0
    assert cleanup_index.is_index_flag_set(community_id)
    assert tracker.client.zscore(index_key(shard), community_id) == 0


def test_noscript_is_recovered(redis_client: Redis | RedisCluster, community_id: str) -> None:
    tracker = tracker_for(redis_client)
    tracker.add_visitor(visit(community_id, user("u1")), T0)

    # The script cache is emptied (a restart, a failover to a node that never saw the script)
    redis_client.script_flush()

    assert tracker.add_visitor(visit(community_id, user("u2")), T0 + 1).result.current_count == 2
    assert tracker.get_visitor_stats(community_id, T0 + 2).total_visitors == 2


@pytest.mark.parametrize("visitor", [anonymous("measured"), user("measured")], ids=["anonymous", "user"])
def test_recording_a_visit_is_one_round_trip(
    redis_server: RedisProcess, community_id: str, visitor: VisitorIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one node, a page view is one EVALSHA; a user's per-user set rides in the same pipeline."""
    tracker = tracker_for(Redis.from_url(redis_server.url, decode_responses=True))
    for i in range(50):
        tracker.add_visitor(visit(community_id, anonymous(f"warm-{i}")), T0 + i)
    sent: list[bytes] = []
    original: Callable[..., None] = Connection.send_packed_command

    def counting(self: Connection, command: bytes | list[bytes], check_health: bool = True) -> None:
        sent.append(b"".join(command) if isinstance(command, list) else command)
        original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    tracker.add_visitor(visit(community_id, visitor), T0 + 100)

    assert len(sent) == 1
    assert sent[0].count(b"EVALSHA") == 1


def test_every_key_but_the_live_state_expires(tracker: VisitorTracker, community_id: str) -> None:
    """Calendar keys get their expiry when created, whatever beacon creates them (here, a
    heartbeat is the first beacon of a new day); only the live state lives until emptied."""
    next_day = to_ms(datetime(2031, 3, 6, 0, 1, tzinfo=UTC))
    night_owl = user(f"ttl-{community_id}", "laval")
    tracker.add_visitor(visit(community_id, night_owl, event_id="evt-ttl-0001"), next_day - 3 * MINUTE)
    assert tracker.update_visitor_activity(visit(community_id, night_owl), next_day).status == "counted"
    tracker.add_visitor(visit(community_id, anonymous("s1", "montreal")), next_day + SECOND)
    tracker.record_drop(community_id, "bot", next_day + 2 * SECOND)

    keys = CommunityKeys(community_id)
    client = tracker.client
    found = [k for node_keys in _keys_of(client, f"{keys.tag}*") for k in node_keys]
    assert len([k for k in found if not keys.is_live_state(k)]) > 0
    without_expiry = [k for k in found if not keys.is_live_state(k) and client.ttl(k) < 0]
    assert without_expiry == []


def _keys_of(client: Redis | RedisCluster, pattern: str) -> list[list[str]]:
    if isinstance(client, RedisCluster):
        return [list(client.scan_iter(match=pattern, target_nodes=RedisCluster.ALL_NODES))]
    return [list(client.scan_iter(match=pattern))]


def test_a_live_connection_s_heartbeat_costs_the_heartbeat_script_only(
    tracker: VisitorTracker, community_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cheap path is taken: a heartbeat inside open buckets runs heartbeat.lua alone; the first
    one after midnight (a day to open) goes on to record.lua, and the next is cheap again."""
    scripts = tracker._scripts
    called: list[str] = []
    call = scripts.call

    def spy(name: str, keys: list[str], args: list[str | int | float]) -> object:
        called.append(name)
        return call(name, keys, args)

    monkeypatch.setattr(scripts, "call", spy)
    midnight = to_ms(datetime(2031, 3, 6, tzinfo=UTC))
    owl = user(f"cheap-{community_id}")
    tracker.add_visitor(visit(community_id, owl), midnight - 2 * MINUTE)
    steps = []
    for at in (midnight - MINUTE, midnight + SECOND, midnight + MINUTE):
        called.clear()
        assert tracker.update_visitor_activity(visit(community_id, owl), at).status == "counted"
        steps.append([name for name in called if name in ("heartbeat", "record")])

    assert steps == [["heartbeat"], ["heartbeat", "record"], ["heartbeat"]]
