"""The scheduled cleanup against a real Redis (its own, so the index holds only this test's
communities) and moto DynamoDB."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis

from cleanup.handler import lambda_handler, run_pass
from community_tracker.aws.stores import get_stores
from community_tracker.cleanup import CleanupReport, run_cleanup_pass
from community_tracker.communities import register_community
from community_tracker.factories import reset_factories
from community_tracker.models import Community, Peak
from community_tracker.redis.cleanup_index import CleanupIndex, get_cleanup_index
from community_tracker.redis.keys import CommunityKeys, index_key, index_shard
from community_tracker.redis.live_state import VisitorTracker, get_tracker, tracker_for
from community_tracker.settings import get_settings
from community_tracker.timeutil import DAY_MS, UTC_CALENDAR, iso
from infra.redis_servers import RedisProcess, start_redis
from infra.tokens import mint_token
from tests.builders import MINUTE, SECOND, T0, anonymous, user, visit
from tests.helpers import LambdaContext, beacon, load_event

WINDOW = 5 * MINUTE
EVENT_TIME = T0 + 10 * MINUTE  # the sample event's `time`
TEMPLATE_TIMEOUT_MS = 60_000  # CleanupFunction's Timeout in template.yaml


@pytest.fixture
def cleanup_env(moto_table: str, own_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Redis]:
    monkeypatch.setenv("VT_REDIS_URL", own_redis.url)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "cleanup-test")
    reset_factories()
    client = own_redis.client()
    yield client
    client.close()
    reset_factories()


class RecordingPeaks:
    """A peak history that remembers every write (to count them)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Peak]] = []

    def put_rollup(self, community_id: str, peak: Peak) -> None:
        self.writes.append((community_id, peak))


def deadline(ms: int) -> Any:
    end = time.monotonic() * 1000 + ms
    return lambda: int(end - time.monotonic() * 1000)


def test_scheduled_pass_removes_stale_visitors_and_keeps_counts_exact(cleanup_env: Redis) -> None:
    # Given one community with two stale visitors and one fresh one, at the schedule's time
    tracker = get_tracker()
    tracker.add_visitor(visit("mixed", user("stale-1", "montreal")), EVENT_TIME - 7 * MINUTE)
    tracker.add_visitor(visit("mixed", anonymous("stale-2", "laval")), EVENT_TIME - 6 * MINUTE)
    tracker.add_visitor(visit("mixed", anonymous("fresh", "laval")), EVENT_TIME - 3 * MINUTE)

    # When EventBridge invokes the function
    report = lambda_handler(load_event("scheduled_cleanup"), LambdaContext(remaining_ms=deadline(60_000)))

    # Then the stale ones are gone with everything they counted, and the fresh one stays
    assert report["stale_removed"] == 2
    assert report["communities_scanned"] == 1
    assert report["completed"] is True
    keys = CommunityKeys("mixed")
    assert cleanup_env.zrange(keys.live, 0, -1) == [anonymous("fresh").key]
    assert cleanup_env.hgetall(keys.divisions) == {"laval": "1"}
    assert cleanup_env.hgetall(keys.pairs) == {"laval>quebec": "1"}
    assert cleanup_env.hgetall(keys.counts) == {"anon": "1", "cross": "1", "indexed": str(EVENT_TIME - 3 * MINUTE)}


def test_emptied_community_waits_for_its_rollups_then_leaves_the_index(cleanup_env: Redis) -> None:
    tracker = get_tracker()
    peaks = RecordingPeaks()
    tracker.add_visitor(visit("quiet", anonymous("a")), T0)
    tracker.add_visitor(visit("quiet", anonymous("b")), T0 + 1)
    shard_key = index_key(index_shard("quiet", get_cleanup_index().index_shards))

    # Emptied today: kept in the index until the day bucket closes (midnight)
    run_cleanup_pass(get_cleanup_index(), peaks, now_ms=T0 + WINDOW + 1, time_left_ms=deadline(60_000))
    midnight = T0 - T0 % DAY_MS + DAY_MS
    assert cleanup_env.zscore(shard_key, "quiet") == midnight
    assert peaks.writes == []

    # After midnight: yesterday's peak is written once, and the community waits for the week
    next_day = midnight + MINUTE
    run_cleanup_pass(get_cleanup_index(), peaks, now_ms=next_day, time_left_ms=deadline(60_000))
    run_cleanup_pass(get_cleanup_index(), peaks, now_ms=next_day + MINUTE, time_left_ms=deadline(60_000))
    assert peaks.writes == [("quiet", Peak.at(UTC_CALENDAR.bucket("day", T0), 2, iso(T0 + 1), 2))]
    assert cleanup_env.zscore(shard_key, "quiet") is not None

    # A new visit makes it due at once again
    tracker.add_visitor(visit("quiet", anonymous("c")), next_day + 2 * MINUTE)
    assert cleanup_env.zscore(shard_key, "quiet") == 0


def test_rollups_reach_dynamodb_once(cleanup_env: Redis) -> None:
    tracker = get_tracker()
    tracker.add_visitor(visit("rolled", anonymous("a")), T0)
    next_day = T0 + DAY_MS

    for _ in range(3):
        run_cleanup_pass(get_cleanup_index(), get_stores().peaks, now_ms=next_day, time_left_ms=deadline(60_000))

    history = get_stores().peaks.rollups("rolled", "day", limit=10)
    assert history == [Peak.at(UTC_CALENDAR.bucket("day", T0), 1, iso(T0), 1)]
    assert cleanup_env.hget(CommunityKeys("rolled").peak_key("day", "2031-03-05@UTC"), "rolled") == "1"
    assert cleanup_env.zcard(CommunityKeys("rolled").closed) == 0


def test_a_late_beacon_in_a_rolled_up_day_is_rolled_up_again(cleanup_env: Redis) -> None:
    tracker = get_tracker()
    day = UTC_CALENDAR.bucket("day", T0)
    tracker.add_visitor(visit("late", anonymous("a")), day.end_ms - 2 * MINUTE)
    after_midnight = day.end_ms + MINUTE
    run_cleanup_pass(get_cleanup_index(), get_stores().peaks, now_ms=after_midnight, time_left_ms=deadline(60_000))
    assert [p.count for p in get_stores().peaks.rollups("late", "day", limit=5)] == [1]

    # A beacon stamped in the last second of that day arrives after its rollup: "a" still live
    tracker.add_visitor(visit("late", anonymous("b")), day.end_ms - SECOND)
    run_cleanup_pass(
        get_cleanup_index(), get_stores().peaks, now_ms=after_midnight + MINUTE, time_left_ms=deadline(60_000)
    )

    [rolled] = get_stores().peaks.rollups("late", "day", limit=5)
    assert (rolled.bucket, rolled.count, rolled.reached_at, rolled.unique_visitors) == (
        "2031-03-05",
        2,
        iso(day.end_ms - SECOND),
        2,
    )
    assert cleanup_env.zcard(CommunityKeys("late").closed) == 0


def test_a_rollup_never_lowers_a_stored_peak(cleanup_env: Redis) -> None:
    store = get_stores().peaks
    week = UTC_CALENDAR.bucket("week", T0)
    store.put_rollup("c1", Peak.at(week, 7, iso(T0), 5))
    store.put_rollup("c1", Peak.at(week, 3, iso(T0 + 1), 9))

    assert [(p.count, p.reached_at, p.unique_visitors) for p in store.rollups("c1", "week", limit=5)] == [
        (7, iso(T0), 9)
    ]


def test_a_pass_cut_short_by_the_deadline_is_finished_by_the_next(cleanup_env: Redis) -> None:
    tracker = tracker_for(cleanup_env, index_shards=4)
    index = CleanupIndex(cleanup_env, index_shards=4)
    communities = [f"cut-{i}" for i in range(40)]
    for community in communities:
        tracker.add_visitors([visit(community, anonymous(f"s{j}")) for j in range(3)], T0)
    now = T0 + WINDOW
    budget = iter([10_000, 10_000, 0])  # room for two batches, then the deadline

    first = run_cleanup_pass(
        index, RecordingPeaks(), now_ms=now, time_left_ms=lambda: next(budget, 0), batch_size=5, margin_ms=1
    )
    second = run_cleanup_pass(index, RecordingPeaks(), now_ms=now + 1, time_left_ms=deadline(60_000))

    assert first.completed is False
    assert first.communities_scanned == 10
    assert second.completed is True
    assert first.communities_scanned + second.communities_scanned == 40
    assert first.stale_removed + second.stale_removed == 120
    assert all(cleanup_env.exists(CommunityKeys(c).live) == 0 for c in communities)


def test_two_passes_at_once_never_double_decrement(cleanup_env: Redis) -> None:
    tracker = get_tracker()
    communities = [f"twin-{i}" for i in range(60)]
    for community in communities:
        tracker.add_visitors([visit(community, user(f"u{j}", "laval")) for j in range(4)], T0)
        tracker.add_visitor(visit(community, anonymous("fresh", "montreal")), T0 + 4 * MINUTE)
    now = T0 + WINDOW
    reports: list[CleanupReport] = []

    def one_pass() -> None:
        reports.append(
            run_cleanup_pass(
                get_cleanup_index(), RecordingPeaks(), now_ms=now, time_left_ms=deadline(60_000), batch_size=7
            )
        )

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.stale_removed for r in reports) == 60 * 4
    assert sum(r.communities_scanned for r in reports) == 60  # claims keep the passes apart
    for community in communities:
        keys = CommunityKeys(community)
        assert cleanup_env.hgetall(keys.divisions) == {"montreal": "1"}
        assert cleanup_env.hgetall(keys.counts) == {"anon": "1", "cross": "1", "indexed": str(T0 + 4 * MINUTE)}


def clone_community(redis: Redis, tracker: VisitorTracker, source: str, targets: list[str]) -> None:
    """Copies one community's live state, byte for byte as the tracker wrote it, to many others
    (DUMP/RESTORE), and registers them in the index: the quick way to 10 000 real communities."""
    dumps = [(index, redis.dump(key)) for index, key in enumerate(CommunityKeys(source).state)]
    pipe = redis.pipeline(transaction=False)
    for target in targets:
        target_keys = CommunityKeys(target).state
        for index, dumped in dumps:
            if dumped is not None:
                pipe.restore(target_keys[index], 0, dumped, replace=True)
        pipe.zadd(index_key(index_shard(target, get_cleanup_index().index_shards)), {target: 0})
    pipe.execute()


def test_ten_thousand_communities_of_fifty_in_one_pass(cleanup_env: Redis, own_redis: RedisProcess) -> None:
    """10 000 communities x 50 stale visitors, within the function's timeout (checked as a count:
    the pass must report completion, which it only does when nothing due is left)."""
    tracker = get_tracker()
    tracker.add_visitors([visit("big-00000", anonymous(f"s{j:02d}", "laval")) for j in range(50)], T0)
    clone_community(Redis.from_url(own_redis.url), tracker, "big-00000", [f"big-{i:05d}" for i in range(1, 10_000)])

    report = run_cleanup_pass(
        get_cleanup_index(), RecordingPeaks(), now_ms=T0 + WINDOW, time_left_ms=deadline(TEMPLATE_TIMEOUT_MS)
    )

    assert report.completed is True
    assert report.communities_scanned == 10_000
    assert report.stale_removed == 500_000
    assert report.communities_emptied == 10_000
    assert cleanup_env.keys("{c:big-*}:live") == []
    assert cleanup_env.keys("{c:big-*}:divisions") == []


def test_cli_runs_one_pass(cleanup_env: Redis, capsys: pytest.CaptureFixture[str]) -> None:
    from infra.cli import main

    assert main(["cleanup"]) == 0

    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["completed"] is True


def test_metrics_are_emitted(cleanup_env: Redis, capsys: pytest.CaptureFixture[str]) -> None:
    lambda_handler(load_event("scheduled_cleanup"), LambdaContext())

    out = capsys.readouterr().out
    emitted = {
        metric["Name"]
        for line in out.splitlines()
        if line.startswith("{") and "_aws" in line
        for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    assert {"StaleVisitorsRemoved", "CommunitiesScanned", "Duration"} <= emitted


def test_a_restarted_redis_resumes_the_open_peaks_and_unique_visitors_from_the_checkpoint(
    cleanup_env: Redis, own_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VT_CHECKPOINT_SECONDS", "300")
    reset_factories()
    community = register_community(
        "resumed",
        slug="resumed",
        name="Resumed",
        division_id="quebec",
        time_zone="America/Toronto",
        directory=get_stores().communities,
        live=get_tracker(),
        now_ms=T0,
    )
    url = {"url": "https://platform.example/c/resumed/"}
    for i in range(5):
        assert beacon(community.community_id, url, headers=bearer(f"u{i}"), now_ms=T0 + i).status == 200
    assert run_pass(T0 + 2 * MINUTE, deadline(60_000)).checkpoints_written == 1
    before = stats_of(community, T0 + 3 * MINUTE)

    # Redis restarts empty (no persistence): live state, peaks and sketches are gone
    own_redis.process.kill()
    own_redis.process.wait()
    restarted = start_redis(own_redis.directory, port=own_redis.port)
    try:
        reset_factories()  # the functions' connections, and what they kept, start over
        assert beacon(community.community_id, url, headers=bearer("newcomer"), now_ms=T0 + 4 * MINUTE).status == 200
        after = stats_of(community, T0 + 4 * MINUTE + SECOND)
    finally:
        restarted.stop()

    assert (before["daily"], before["unique_daily"]) == (5, 5)
    # The open day, week and month resume from the checkpoint: the peak is kept, the newcomer adds
    assert (after["daily"], after["weekly"], after["monthly"]) == (5, 5, 5)
    assert (after["unique_daily"], after["unique_weekly"], after["unique_monthly"]) == (6, 6, 6)
    assert after["live"] == 1
    assert after["time_zone"] == "America/Toronto"


def stats_of(community: Community, now_ms: int) -> dict[str, Any]:
    summary = get_tracker().get_summary(community.community_id, now_ms, community=community)
    return {
        "daily": summary.peaks.daily,
        "weekly": summary.peaks.weekly,
        "monthly": summary.peaks.monthly,
        "unique_daily": summary.unique_visitors.daily,
        "unique_weekly": summary.unique_visitors.weekly,
        "unique_monthly": summary.unique_visitors.monthly,
        "live": summary.stats.total_visitors,
        "time_zone": summary.peak_details[0].time_zone,
    }


def bearer(user_id: str) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(get_settings(), user_id, division_id='laval')}"}
