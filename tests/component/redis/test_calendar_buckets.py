"""Calendar figures in a community's own time zone (README, "Calendar buckets"), against a real
Redis: days that start at local midnight, a new bucket that starts with everyone live, heartbeats
that make unique visitors, a change of zone that waits for the open bucket to end, and no
calendar key ever without an expiry."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from redis import Redis
from redis.cluster import RedisCluster

from community_tracker.models import Community
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.keys import CommunityKeys
from community_tracker.redis.live_state import VisitorTracker, take_checkpoint, tracker_for
from community_tracker.redis.scripts import RedisClient
from community_tracker.timeutil import PERIODS, UTC_CALENDAR, iso, to_ms, zone_calendar
from tests.builders import MINUTE, SECOND, anonymous, user, visit

TORONTO = "America/Toronto"


def local(zone: str, *parts: int) -> int:
    return to_ms(datetime(*parts, tzinfo=ZoneInfo(zone)))  # type: ignore[arg-type,misc]


def installed(tracker: VisitorTracker, community_id: str, zone: str, *, version: int = 1) -> Community:
    community = Community(
        community_id=community_id,
        slug=community_id,
        name=community_id,
        division_id="quebec",
        time_zone=zone,
        version=version,
    )
    tracker.install_community(community, 0)
    return community


def beacon(tracker: VisitorTracker, community: Community, who: str, now_ms: int, *, heartbeat: bool = False) -> str:
    visitor = user(who, "laval")
    planned = visit(community.community_id, visitor).model_copy(
        update={"community_version": community.version, "calendar": community.calendar()}
    )
    if heartbeat:
        return tracker.update_visitor_activity(planned, now_ms).status
    return tracker.add_visitor(planned, now_ms).status


def test_days_weeks_and_months_are_the_communitys_own(tracker: VisitorTracker, community_id: str) -> None:
    community = installed(tracker, community_id, TORONTO)
    # 23:30 on Sunday 9 March in Toronto is 03:30 UTC on Monday 10 March
    late_sunday = local(TORONTO, 2031, 3, 9, 23, 30)
    beacon(tracker, community, "night-owl", late_sunday)

    peaks = tracker.get_peaks(community_id, late_sunday + MINUTE, community=community)

    assert [(p.period, p.bucket, p.time_zone, p.count) for p in peaks] == [
        ("day", "2031-03-09", TORONTO, 1),
        ("week", "2031-W10", TORONTO, 1),
        ("month", "2031-03", TORONTO, 1),
    ]
    day = peaks[0]
    # 9 March 2031 is the day Toronto moves its clocks forward: 23 hours
    assert (day.start, day.end) == (iso(local(TORONTO, 2031, 3, 9)), iso(local(TORONTO, 2031, 3, 10)))
    assert to_ms(datetime.fromisoformat(day.end)) - to_ms(datetime.fromisoformat(day.start)) == 23 * 60 * MINUTE
    assert tracker.get_drop_counts(community_id, late_sunday, community=community).day == "2031-03-09"


def test_a_new_day_starts_with_everyone_live_on_read_and_on_the_first_beacon(
    tracker: VisitorTracker, community_id: str
) -> None:
    community = installed(tracker, community_id, TORONTO)
    midnight = local(TORONTO, 2031, 3, 6)
    for i in range(3):
        beacon(tracker, community, f"evening-{i}", midnight - 2 * MINUTE + i)

    # Read right after midnight: the three are live, so today's peak is three, not zero
    read = tracker.get_peak_counts(community_id, midnight + MINUTE, community=community)
    assert read.daily == 3
    assert tracker.get_peaks(community_id, midnight + MINUTE, community=community)[0].reached_at == iso(midnight)

    # On another community, the first beacon after midnight is the fourth person
    other = installed(tracker, f"{community_id}-b", TORONTO)
    for i in range(3):
        beacon(tracker, other, f"evening-{i}", midnight - 2 * MINUTE + i)
    beacon(tracker, other, "early-bird", midnight + MINUTE)
    assert tracker.get_peak_counts(other.community_id, midnight + MINUTE + 1, community=other).daily == 4


def test_people_who_only_send_heartbeats_after_midnight_are_visitors_of_the_new_day(
    tracker: VisitorTracker, community_id: str
) -> None:
    community = installed(tracker, community_id, "Asia/Kolkata")
    midnight = local("Asia/Kolkata", 2031, 4, 1)  # also a new month
    beacon(tracker, community, "reader", midnight - MINUTE)
    beacon(tracker, community, "second-reader", midnight - MINUTE)
    beacon(tracker, community, "leaver", midnight - 4 * MINUTE)  # stale at 00:01, never seen after

    for step in (1, 2, 3):
        for reader in ("reader", "second-reader"):
            assert beacon(tracker, community, reader, midnight + step * 30 * SECOND, heartbeat=True) == "counted"
    unique = tracker.get_unique_visitors(community_id, midnight + 3 * MINUTE, community=community)

    # All were live in the new day (the leaver for its first minute): all are its visitors
    assert (unique.daily, unique.monthly) == (3, 3)
    assert [b.bucket for b in unique.buckets] == ["2031-04-01", "2031-W14", "2031-04"]


def test_a_change_of_zone_waits_for_the_open_bucket_to_end(tracker: VisitorTracker, community_id: str) -> None:
    community = installed(tracker, community_id, "UTC")
    registered = local("UTC", 2031, 3, 5, 15)
    beacon(tracker, community, "before", registered - MINUTE)
    moved = community.model_copy(
        update={"time_zone": TORONTO, "zone_history": community.with_time_zone(TORONTO, registered), "version": 2}
    )
    assert tracker.install_community(moved, registered)

    # The UTC day that was open goes on counting, under its own bounds
    beacon(tracker, moved, "after", registered + MINUTE)
    day = tracker.get_peaks(community_id, registered + 2 * MINUTE, community=moved)[0]
    assert (day.bucket, day.time_zone, day.count) == ("2031-03-05", "UTC", 2)
    assert (day.start, day.end) == (iso(local("UTC", 2031, 3, 5)), iso(local("UTC", 2031, 3, 6)))

    # After midnight UTC: the rest of Toronto's 5 March, then Toronto's days
    stub = tracker.get_peaks(community_id, local("UTC", 2031, 3, 6, 1), community=moved)[0]
    assert (stub.bucket, stub.time_zone) == ("2031-03-05", TORONTO)
    assert (stub.start, stub.end) == (iso(local("UTC", 2031, 3, 6)), iso(local(TORONTO, 2031, 3, 6)))
    assert stub.count == 0  # "before" and "after" went stale long before
    following = tracker.get_peaks(community_id, local(TORONTO, 2031, 3, 6, 9), community=moved)[0]
    assert (following.bucket, following.time_zone) == ("2031-03-06", TORONTO)

    # A function that kept the old registration is told, before anything is written
    stale_read = tracker_for(tracker.client)
    assert stale_read.get_peaks(community_id, local(TORONTO, 2031, 3, 6, 9))[0].time_zone == TORONTO


def test_a_recreated_sketch_and_a_rolled_up_peak_that_expired_keep_expiries(
    tracker: VisitorTracker, redis_client: RedisClient, community_id: str
) -> None:
    keys = CommunityKeys(community_id)
    now = local("UTC", 2031, 3, 5, 12)
    day = UTC_CALENDAR.bucket("day", now)
    tracker.add_visitor(visit(community_id, anonymous("first")), now)
    # Memory pressure evicts the day's sketch (volatile-ttl takes the keys that expire soonest)
    redis_client.delete(keys.unique(day))
    tracker.add_visitor(visit(community_id, anonymous("second")), now + SECOND)
    assert redis_client.ttl(keys.unique(day)) > 0

    # A rollup marked after its peak key expired creates no key
    index = CleanupIndex(redis_client)
    tracker.add_visitor(visit(community_id, anonymous("third")), now + DAY_AND_A_BIT)
    [result] = index.cleanup_communities([community_id], now + DAY_AND_A_BIT)
    [closed] = [p for p in result.unrolled_peaks if p.period == "day"]
    redis_client.delete(keys.peak(day))
    index.mark_peak_rolled(community_id, closed)
    assert redis_client.exists(keys.peak(day)) == 0
    assert _without_expiry(redis_client, keys) == []


DAY_AND_A_BIT = 24 * 60 * MINUTE + MINUTE


def _without_expiry(client: RedisClient, keys: CommunityKeys) -> list[str]:
    if isinstance(client, RedisCluster):
        found = list(client.scan_iter(match=f"{keys.tag}*", target_nodes=RedisCluster.ALL_NODES))
    else:
        found = list(client.scan_iter(match=f"{keys.tag}*")) if isinstance(client, Redis) else []
    return [k for k in found if not keys.is_live_state(k) and client.ttl(k) < 0]


def test_a_checkpoint_restores_peaks_and_sketches_into_an_empty_redis(
    tracker: VisitorTracker, redis_client: RedisClient, community_id: str
) -> None:
    community = installed(tracker, community_id, "Pacific/Chatham")
    now = local("Pacific/Chatham", 2031, 3, 5, 12)
    for i in range(40):
        beacon(tracker, community, f"p{i}", now + i)
    calendar = community.calendar()
    buckets = [calendar.bucket(period, now) for period in PERIODS]
    checkpoint = take_checkpoint(redis_client, CommunityKeys(community_id), buckets, now + MINUTE)
    assert [(b.bucket, b.count) for b in checkpoint.buckets] == [("2031-03-05", 40), ("2031-W10", 40), ("2031-03", 40)]

    # The same community in a Redis that lost everything (here: under another id, same calendar)
    twin = community.model_copy(update={"community_id": f"{community_id}-twin"})
    assert tracker.install_community(twin, now + 2 * MINUTE, checkpoint)
    beacon(tracker, twin, "p0", now + 3 * MINUTE)  # already counted before the loss
    beacon(tracker, twin, "newcomer", now + 3 * MINUTE)

    unique = tracker.get_unique_visitors(twin.community_id, now + 4 * MINUTE, community=twin)
    peaks = tracker.get_peak_counts(twin.community_id, now + 4 * MINUTE, community=twin)
    assert (unique.daily, unique.weekly, unique.monthly) == (41, 41, 41)
    assert (peaks.daily, peaks.weekly, peaks.monthly) == (40, 40, 40)
    # A registration Redis holds already is never overwritten by a checkpoint
    assert not tracker.install_community(twin, now + 5 * MINUTE, checkpoint)


def test_zone_calendar_of_a_registered_community() -> None:
    assert Community(community_id="c", slug="c", name="c", time_zone=TORONTO).calendar() is zone_calendar(TORONTO)
