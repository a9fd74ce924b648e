"""A community split into parts (README, "One community in N parts") on a real Redis, one node and
the 3-master cluster: a login or logout moving a tab between people of different parts, and a change
of the number of parts on a live community, answer what the same community in one part answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from community_tracker.errors import LiveStateUnavailable
from community_tracker.models import Community, Visit, VisitorIdentity
from community_tracker.redis.keys import CommunityKeys, part_of, parts_keys, stored_key
from community_tracker.redis.live_state import VisitorTracker, tracker_for
from community_tracker.redis.scripts import RedisClient
from tests.builders import MINUTE, SECOND, T0, anonymous, tab, user, visit

PARTS = 4


def registered(tracker: VisitorTracker, parts: int, *, division: str = "quebec") -> Community:
    community_id = f"split-{uuid.uuid4().hex[:12]}"
    community = Community(
        community_id=community_id, slug=community_id, name="split", division_id=division, version=1, parts=parts
    )
    assert tracker.install_community(community, T0 - MINUTE)
    return community


def answers(tracker: VisitorTracker, community: Community, now_ms: int) -> dict[str, Any]:
    """Everything a reader sees of a community, but its id and its timeline (a split community's
    sums its parts' highest count of each minute: README, "One community in N parts")."""
    summary = tracker.get_summary(community.community_id, now_ms, timeline_minutes=5, community=community)
    page = tracker.get_visitor_list(community.community_id, now_ms, limit=100)
    return {
        "summary": summary.model_dump(exclude={"community_id", "peak_details", "timeline"}),
        "visitors": [v.model_dump() for v in page.visitors],
        "total": page.total_visitors,
    }


def in_other_parts(first: VisitorIdentity, candidates: Callable[[int], VisitorIdentity]) -> VisitorIdentity:
    """The first candidate whose part (of PARTS) is not `first`'s."""
    home = part_of(stored_key(first.key), PARTS)
    return next(c for c in map(candidates, range(100)) if part_of(stored_key(c.key), PARTS) != home)


Step = Callable[[Community], object]


def side_by_side(tracker: VisitorTracker) -> tuple[Community, Community, Callable[[Step], None]]:
    """A community in one part and one in PARTS, and what does a step on both."""
    whole, split = registered(tracker, 1), registered(tracker, PARTS)

    def both(step: Step) -> None:
        step(whole)
        step(split)

    return whole, split, both


@pytest.fixture
def tracker(redis_client: RedisClient) -> VisitorTracker:
    return tracker_for(redis_client, window_seconds=300, dedup_seconds=600)


def test_a_login_and_a_logout_across_parts_are_one_person(tracker: VisitorTracker) -> None:
    browser = anonymous("split-browser", "montreal")
    account = in_other_parts(browser, lambda i: user(f"split-user-{i}", "laval"))
    whole, split, both = side_by_side(tracker)
    # Given an anonymous browser with two tabs, three pages
    both(lambda c: tracker.add_visitor(visit(c.community_id, browser, c.division_id, connection=tab("a")), T0))
    both(lambda c: tracker.add_visitor(visit(c.community_id, browser, c.division_id, connection=tab("a")), T0 + 1))
    both(lambda c: tracker.add_visitor(visit(c.community_id, browser, c.division_id, connection=tab("b")), T0 + 2))
    # When one tab signs in: the browser keeps its other tab, so two people
    login = T0 + 10 * SECOND
    both(lambda c: tracker.add_visitor(visit(c.community_id, account, c.division_id, connection=tab("a")), login))
    assert answers(tracker, split, login) == answers(tracker, whole, login)
    assert answers(tracker, split, login)["total"] == 2
    # and then the other (a heartbeat: identify reached it): the browser folds into the user
    both(
        lambda c: tracker.update_visitor_activity(
            visit(c.community_id, account, c.division_id, connection=tab("b")), login + 1
        )
    )
    assert answers(tracker, split, login + 1) == answers(tracker, whole, login + 1)
    only = answers(tracker, split, login + 1)
    assert only["total"] == 1
    assert only["visitors"][0]["user_id"] == account.user_id
    assert only["visitors"][0]["pages_viewed"] == 4
    # When both tabs sign out, one after the other: one anonymous person again
    logout = login + MINUTE
    both(lambda c: tracker.add_visitor(visit(c.community_id, browser, c.division_id, connection=tab("a")), logout))
    both(lambda c: tracker.add_visitor(visit(c.community_id, browser, c.division_id, connection=tab("b")), logout + 1))
    assert answers(tracker, split, logout + 1) == answers(tracker, whole, logout + 1)
    assert answers(tracker, split, logout + 1)["total"] == 1
    # and a leave of a tab that moved parts is found where it went
    both(lambda c: tracker.remove_visitor(c.community_id, tab("a"), logout + 2))
    both(lambda c: tracker.remove_visitor(c.community_id, tab("b"), logout + 2))
    later = logout + 20 * SECOND
    assert answers(tracker, split, later) == answers(tracker, whole, later)
    assert answers(tracker, split, later)["total"] == 0


def test_a_batch_of_page_views_is_what_one_page_view_after_another_is(tracker: VisitorTracker) -> None:
    one_by_one, batched = registered(tracker, PARTS), registered(tracker, PARTS)
    browser = anonymous("batch-browser", "montreal")
    account = in_other_parts(browser, lambda i: user(f"batch-user-{i}", "laval"))
    yesterday = anonymous("batch-yesterday", "laval")
    today = in_other_parts(yesterday, lambda i: anonymous(f"batch-today-{i}", "laval"))
    newcomers = [anonymous(f"batch-new-{i}", ["quebec", None][i % 2]) for i in range(8)]

    def batch(c: Community) -> list[Visit]:
        return [
            *(visit(c.community_id, p, c.division_id, connection=tab(f"new-{i}")) for i, p in enumerate(newcomers)),
            visit(c.community_id, newcomers[0], c.division_id, connection=tab("new-0")),
            visit(c.community_id, account, c.division_id, connection=tab("x")),
            visit(c.community_id, account, c.division_id, connection=tab("y")),
            visit(c.community_id, newcomers[1], c.division_id, connection=tab("x")),
            visit(c.community_id, today, c.division_id, connection=tab("z"), alt_key=yesterday.key),
            visit(c.community_id, newcomers[2], c.division_id, connection=tab("new-2b")),
        ]

    # Given two split communities, each with a browser on two tabs and a person live under
    # yesterday's key
    for c in (one_by_one, batched):
        for name in ("x", "w"):
            tracker.add_visitor(visit(c.community_id, browser, c.division_id, connection=tab(name)), T0)
        tracker.add_visitor(visit(c.community_id, yesterday, c.division_id, connection=tab("z")), T0)
    # When the same page views come one after the other to one, in one batch to the other: new
    # tabs, a second page in a tab, the browser's tab signing in and then moving to a newcomer
    # (across parts), a person under today's key, another tab of a newcomer
    now = T0 + SECOND
    expected = [tracker.add_visitor(v, now).status for v in batch(one_by_one)]
    # Then each is counted as it was, and every reader sees the same
    assert [outcome.status for outcome in tracker.add_visitors(batch(batched), now)] == expected
    assert answers(tracker, batched, now) == answers(tracker, one_by_one, now)
    assert answers(tracker, batched, now)["total"] == len(newcomers) + 3


@pytest.mark.parametrize("changes", [(1, 4), (4, 3), (4, 1), (1, 7, 2)], ids=lambda c: "-".join(map(str, c)))
def test_a_change_of_parts_on_a_live_community_loses_nobody_and_counts_nobody_twice(
    tracker: VisitorTracker, changes: tuple[int, ...]
) -> None:
    # Given a live community: people with one or two tabs (one left), in several divisions
    whole, community = registered(tracker, 1), registered(tracker, changes[0])
    people = [user(f"mover-{i}", ["quebec", "laval", None][i % 3]) for i in range(12)]
    people += [anonymous(f"mover-browser-{i}", ["montreal", None][i % 2]) for i in range(12)]
    for c in (whole, community):
        for i, person in enumerate(people):
            at = T0 + i * SECOND
            tracker.add_visitor(visit(c.community_id, person, c.division_id, connection=tab(f"m{i}")), at)
            if i % 4 == 0:
                tracker.add_visitor(visit(c.community_id, person, c.division_id, connection=tab(f"n{i}")), at + 1)
            if i % 8 == 0:
                tracker.remove_visitor(c.community_id, tab(f"n{i}"), at + 2)
    now = T0 + MINUTE
    before = answers(tracker, whole, now)
    assert answers(tracker, community, now) == before
    assert before["total"] == len(people)

    # When the number of parts changes (a new registration), each time
    # (a part's keys depend on the number of parts: every part of every number the community had)
    every_part = {keys.tag: keys for n in changes for keys in parts_keys(community.community_id, n)}.values()
    for parts in changes[1:]:
        community = community.model_copy(update={"parts": parts, "version": community.version + 1})
        assert tracker.install_community(community, now)
        # Then every reader sees what it saw, and everyone is in their part under the new number
        assert answers(tracker, community, now) == before
        for person in people:
            member = stored_key(person.key)
            holders = [keys.tag for keys in every_part if tracker.client.hexists(keys.visitors, member)]
            assert holders == [CommunityKeys(community.community_id, part_of(member, parts), parts).tag]
        # and a part the new number does not name keeps no live state nor registration behind
        named = {keys.tag for keys in parts_keys(community.community_id, parts)}
        for keys in every_part:
            if keys.tag not in named:
                assert tracker.client.exists(*keys.state, keys.groups, keys.meta) == 0, keys.tag

    # And the next beacons, leaves included, go on as in one part
    later = now + 30 * SECOND
    for c in (whole, community):
        for i, person in enumerate(people):
            outcome = tracker.update_visitor_activity(
                visit(c.community_id, person, c.division_id, connection=tab(f"m{i}")), later
            )
            assert outcome.status == "counted"
        tracker.remove_visitor(c.community_id, tab("n4"), later + 1)
    assert answers(tracker, community, later + SECOND) == answers(tracker, whole, later + SECOND)


def test_a_left_tab_of_a_person_folded_away_counts_until_its_grace_ends_in_any_part(tracker: VisitorTracker) -> None:
    # Given a browser with one tab open and one just left (in its grace), and a user of another part
    browser = anonymous("orphan-browser", "montreal")
    account = in_other_parts(browser, lambda i: user(f"orphan-user-{i}", "laval"))
    stranger = in_other_parts(account, lambda i: user(f"orphan-stranger-{i}", None))
    whole, split, both = side_by_side(tracker)
    both(lambda c: tracker.add_visitor(visit(c.community_id, browser, c.division_id, connection=tab("open")), T0))
    both(lambda c: tracker.add_visitor(visit(c.community_id, browser, c.division_id, connection=tab("left")), T0 + 1))
    both(lambda c: tracker.remove_visitor(c.community_id, tab("left"), T0 + 2))
    # When the open tab signs in: the browser folds into the user, its left tab still in its grace
    login = T0 + SECOND
    both(lambda c: tracker.add_visitor(visit(c.community_id, account, c.division_id, connection=tab("open")), login))
    assert answers(tracker, split, login) == answers(tracker, whole, login)
    # and a heartbeat of someone not live arrives from the left tab: it changes nothing
    for c in (whole, split):
        outcome = tracker.update_visitor_activity(
            visit(c.community_id, stranger, c.division_id, connection=tab("left")), login + 1
        )
        assert outcome.status == "not_present"
    # Then the left tab is still a connection, in one part as in the other, until its grace ends
    assert answers(tracker, split, login + 2) == answers(tracker, whole, login + 2)
    assert answers(tracker, split, login + 2)["summary"]["stats"]["connections"] == 2
    # and a page view from it later counts it once
    both(
        lambda c: tracker.add_visitor(visit(c.community_id, stranger, c.division_id, connection=tab("left")), login + 3)
    )
    assert answers(tracker, split, login + 3) == answers(tracker, whole, login + 3)
    after_grace = T0 + 20 * SECOND
    assert answers(tracker, split, after_grace) == answers(tracker, whole, after_grace)


@pytest.mark.parametrize("changes", [(4, 3), (4, 1)], ids=lambda c: "-".join(map(str, c)))
def test_people_who_arrived_since_the_last_read_stay_unique_visitors_across_a_change_of_parts(
    tracker: VisitorTracker, changes: tuple[int, int]
) -> None:
    # Given people arriving in a community of 4 parts, and no read since (none merged its parts)
    community = registered(tracker, changes[0])
    people = [user(f"unique-{i}", "laval") for i in range(12)]
    for i, person in enumerate(people):
        tracker.add_visitor(visit(community.community_id, person, "quebec", connection=tab(f"u{i}")), T0 + i)

    # When the number of parts changes
    community = community.model_copy(update={"parts": changes[1], "version": community.version + 1})
    assert tracker.install_community(community, T0 + MINUTE)

    # Then each is still one of the day's, week's and month's unique visitors
    summary = tracker.get_summary(community.community_id, T0 + MINUTE, community=community)
    unique = summary.unique_visitors
    assert (unique.daily, unique.weekly, unique.monthly) == (12, 12, 12)


def test_a_page_view_that_says_its_tab_is_new_asks_the_tab_directory_at_once(
    tracker: VisitorTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a split community, and the round trips its tracker makes (a pipeline is one)
    community = registered(tracker, PARTS)
    trips: list[str] = []
    scripts = tracker._scripts
    for method in ("call", "call_each"):
        original = getattr(scripts, method)

        def counted(*args: Any, _original: Any = original, _method: str = method, **kwargs: Any) -> Any:
            trips.append(_method)
            return _original(*args, **kwargs)

        monkeypatch.setattr(scripts, method, counted)
    person = user("new-tab-walker", "laval")

    # When a new tab's first page view says so, and another's does not
    hinted = visit(community.community_id, person, "quebec", connection=tab("hinted"))
    tracker.add_visitor(hinted.model_copy(update={"new_tab": True}), T0)
    with_hint, trips[:] = list(trips), []
    tracker.add_visitor(visit(community.community_id, person, "quebec", connection=tab("plain")), T0 + 1)

    # Then the hinted one took two round trips (the directory beside the record, then the record
    # again), the other three (the record's "gather", the directory, the record)
    assert with_hint == ["call_each", "call"]
    assert trips == ["call", "call", "call"]
    assert tracker.get_summary(community.community_id, T0 + 2, community=community).stats.connections == 2


def test_a_change_of_parts_that_failed_half_way_is_finished_by_the_next_install(
    tracker: VisitorTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a live community of 4 parts, and one of 1 with the same people
    whole, community = registered(tracker, 1), registered(tracker, 4)
    people = [user(f"halfway-{i}", ["quebec", "laval"][i % 2]) for i in range(16)]
    for c in (whole, community):
        for i, person in enumerate(people):
            tracker.add_visitor(visit(c.community_id, person, c.division_id, connection=tab(f"h{i}")), T0 + i)
    now = T0 + MINUTE
    before = answers(tracker, whole, now)

    # When a change to 3 parts fails after its first move (Redis went away in the admin call,
    # between two moves: a failure inside one, between its evict.lua and its adopt.lua, loses
    # that move's people until their next beacon, README "One community in N parts")
    moves: list[int] = []
    evict = tracker._evict

    def fails_after_one(*args: Any, **kwargs: Any) -> Any:
        moves.append(1)
        if len(moves) > 1:
            raise LiveStateUnavailable("injected: Redis went away half-way")
        return evict(*args, **kwargs)

    monkeypatch.setattr(tracker, "_evict", fails_after_one)
    community = community.model_copy(update={"parts": 3, "version": community.version + 1})
    with pytest.raises(LiveStateUnavailable):
        tracker.install_community(community, now)
    assert len(moves) == 2  # the failure reached the moves
    monkeypatch.setattr(tracker, "_evict", evict)

    # and the registration is installed again: the same one (Redis holds it already), then the
    # admin's call made again (a new version, the same number of parts)
    assert not tracker.install_community(community, now)
    community = community.model_copy(update={"version": community.version + 1})
    assert tracker.install_community(community, now)

    # Then everyone is in their part under 3, the old parts are retired, and readers see all
    for person in people:
        member = stored_key(person.key)
        holders = [
            keys.tag
            for n in (3, 4)
            for keys in parts_keys(community.community_id, n)
            if tracker.client.hexists(keys.visitors, member)
        ]
        assert set(holders) == {CommunityKeys(community.community_id, part_of(member, 3), 3).tag}
    assert answers(tracker, community, now) == before
    assert not tracker.client.hexists(CommunityKeys(community.community_id).meta, "moving_from")
