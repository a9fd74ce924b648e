"""People, not tabs, through the beacon function: tabs of one browser are one person, one client
cannot make up people without bound, and a shared NAT of real viewers is not cut off."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from redis import Redis

from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.redis.live_state import get_tracker
from infra.redis_servers import RedisProcess
from tests.builders import MINUTE, SECOND, T0
from tests.helpers import beacon

NAT = "203.0.113.9"  # one public address shared by many browsers


@pytest.fixture
def redis(redis_server: RedisProcess) -> Iterator[Redis]:
    client = redis_server.client()
    yield client
    client.close()


def stats(community: Community, now_ms: int) -> tuple[int, int, int]:
    s = get_tracker().get_visitor_stats(community.community_id, now_ms)
    return s.total_visitors, s.present_now, s.connections


def test_three_tabs_of_one_browser_are_one_person(community: Community) -> None:
    cid = community.community_id
    for tab in ("tab-a-000001", "tab-b-000001", "tab-c-000001"):
        assert beacon(cid, {"url": "https://x/", "visitor_id": "browser-00001", "connection_id": tab}).status == 200

    assert stats(community, T0 + SECOND) == (1, 1, 3)

    # Two tabs close: still one person; the last one closes: gone after the grace
    for tab in ("tab-a-000001", "tab-b-000001"):
        beacon(cid, {"visitor_id": "browser-00001", "connection_id": tab}, kind="leave", now_ms=T0 + 2 * SECOND)
    assert stats(community, T0 + 20 * SECOND) == (1, 1, 1)
    beacon(cid, {"visitor_id": "browser-00001", "connection_id": "tab-c-000001"}, kind="leave", now_ms=T0 + 21 * SECOND)
    assert stats(community, T0 + 21 * SECOND + 14 * SECOND)[0] == 1  # within the grace
    assert stats(community, T0 + 21 * SECOND + 15 * SECOND) == (0, 0, 0)


def test_a_navigation_is_one_continuing_visit(community: Community, redis: Redis) -> None:
    cid = community.community_id
    tab = {"visitor_id": "browser-00002", "connection_id": "tab-nav-00001"}
    for page in range(5):
        now = T0 + page * 10 * SECOND
        assert beacon(cid, {**tab, "url": f"https://x/{page}"}, now_ms=now).status == 200
        assert beacon(cid, tab, kind="leave", now_ms=now + 5 * SECOND).json()["current_count"] == 1

    [person] = get_tracker().get_visitor_list(cid, T0 + 50 * SECOND).visitors
    assert person.pages_viewed == 5
    assert person.joined_at == "2031-03-05T12:00:00.000Z"


def test_one_client_making_up_ids_adds_at_most_the_cap(community: Community, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the cap on new anonymous people one client address may make per window
    monkeypatch.setenv("VT_ANONYMOUS_PEOPLE_PER_CLIENT", "50")
    reset_factories()
    cid = community.community_id

    # When one client sends 200 page views, each with a new made-up browser id (and new User-Agent)
    answers = Counter(
        beacon(
            cid,
            {"url": "https://x/", "visitor_id": f"fake-{i:08d}"},
            headers={"user-agent": f"Mozilla/5.0 (X11; Linux x86_64) Chrome/{100 + i}.0"},
            source_ip="198.51.100.66",
            now_ms=T0 + i,
        ).status
        for i in range(200)
    )

    # Then it adds at most the cap; the rest are accepted, not counted, and counted as drops
    assert answers == Counter({200: 50, 202: 150})
    assert stats(community, T0 + SECOND)[0] == 50
    assert get_tracker().get_drop_counts(cid, T0 + SECOND).too_many_people == 150
    # Another client is not affected
    assert beacon(cid, {"url": "https://x/", "visitor_id": "real-0000001"}, source_ip="198.51.100.67").status == 200


def test_ten_thousand_made_up_ids_add_at_most_the_default_cap(community: Community) -> None:
    """The same, at the scale of the measurement, straight into the tracker (one pipeline)."""
    from community_tracker.models import Visit, VisitorIdentity, anonymous_visitor_key

    tracker = get_tracker()
    visits = [
        Visit(
            community_id=community.community_id,
            community_division=community.division_id,
            visitor=VisitorIdentity(
                key=anonymous_visitor_key(f"fake-{i}"), user_id=None, division_id=None, is_authenticated=False
            ),
            event_id=f"evt-fake-{i:08d}",
            client_key="one-abusive-client",
        )
        for i in range(10_000)
    ]
    outcomes = Counter(o.status for o in tracker.add_visitors(visits, T0))

    # The cap holds first; past the client's rate limit (3,000 a minute) the rest are refused
    assert outcomes == Counter({"counted": 1000, "too_many_people": 2000, "rate_limited": 7000})
    assert stats(community, T0)[0] == 1000


def test_five_hundred_browsers_behind_one_nat_are_not_cut_off(community: Community) -> None:
    # Given 500 real browsers behind one address, each with a page view and two heartbeats
    cid = community.community_id
    statuses: Counter[int] = Counter()
    for round_ms, kind in ((0, "visits"), (30 * SECOND, "heartbeat"), (60 * SECOND, "heartbeat")):
        for i in range(500):
            body = {"visitor_id": f"nat-browser-{i:05d}", "connection_id": f"nat-tab-{i:05d}"}
            if kind == "visits":
                body["url"] = "https://x/"
            answer = beacon(cid, body, kind=kind, source_ip=NAT, now_ms=T0 + round_ms + i)
            statuses[answer.status] += 1
            if kind == "heartbeat":
                assert answer.json()["active"] is True

    # Then every beacon was answered and every one of them is live and present
    assert statuses == Counter({200: 1500})
    assert stats(community, T0 + 61 * SECOND) == (500, 500, 500)


def test_one_connection_is_held_to_its_rate_without_holding_its_neighbours(
    community: Community, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VT_CONNECTION_RATE_LIMIT_PER_MINUTE", "10")
    reset_factories()
    cid = community.community_id
    noisy = {"visitor_id": "noisy-000001", "connection_id": "noisy-tab-01"}
    minute_start = T0 - T0 % MINUTE

    answers = [
        beacon(cid, {**noisy, "url": "https://x/"}, source_ip=NAT, now_ms=minute_start + i).status for i in range(12)
    ]
    neighbour = beacon(
        cid, {"url": "https://x/", "visitor_id": "calm-0000001"}, source_ip=NAT, now_ms=minute_start + 20
    )

    assert answers == [200] * 10 + [429, 429]
    assert neighbour.status == 200
