"""Faults: Redis killed and restarted under a stream of beacons, DynamoDB throttling and errors,
a cleanup pass killed half-way. Afterwards nothing accepted is missing, nothing is duplicated, and
the live counts are exact again; the functions reconnect by themselves."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries.standard import ExponentialBackoff

from community_tracker.aws.stores import get_stores
from community_tracker.cleanup import run_cleanup_pass
from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.keys import CommunityKeys
from community_tracker.redis.live_state import get_tracker, tracker_for
from community_tracker.settings import get_settings
from infra.redis_servers import RedisProcess, start_redis
from infra.tokens import mint_token
from tests.builders import MINUTE, T0, anonymous, visit
from tests.helpers import DYNAMODB_ERROR_TYPE, aws_error, beacon

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def system(emulated_aws: str, own_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Community]:
    """The beacon function against the emulator and a Redis of its own (which the test may kill)."""
    monkeypatch.setenv("VT_REDIS_URL", own_redis.url)
    monkeypatch.setenv("VT_REDIS_SOCKET_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("VT_RATE_LIMIT_PER_MINUTE", "0")
    reset_factories()
    community = Community(community_id="faulty", slug="faulty", name="Faulty", division_id="quebec")
    get_stores().communities.put(community)
    yield community
    reset_factories()


def bearer(user_id: str) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(get_settings(), user_id, division_id='laval')}"}


def stored_event_ids(community_id: str) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        page = get_stores().visits.community_visits(community_id, limit=100, after=after)
        ids += [visit.event_id for visit in page.visits]
        after = page.next
        if after is None:
            return ids


def test_redis_killed_and_restarted_under_a_stream_of_beacons(system: Community, own_redis: RedisProcess) -> None:
    accepted_events: set[str] = set()
    answers: list[int] = []

    def send_one(i: int, now_ms: int) -> int:
        """One beacon; a client retries a 503 once the outage is over (same event id)."""
        authenticated = i % 2 == 0
        body = {"url": "https://x/", "event_id": f"evt-fault-{i:06d}", "visitor_id": f"tab-fault-{i:06d}"}
        answer = beacon(system.community_id, body, headers=bearer(f"u{i}") if authenticated else {}, now_ms=now_ms)
        answers.append(answer.status)
        if authenticated and answer.status in {200, 202}:
            accepted_events.add(body["event_id"])
        return answer.status

    for i in range(0, 20):
        assert send_one(i, T0 + i) == 200
    own_redis.process.kill()  # the cache node dies mid-stream
    own_redis.process.wait()
    during = [send_one(i, T0 + i) for i in range(20, 40)]
    restarted = start_redis(own_redis.directory, port=own_redis.port)  # back, empty, scripts gone
    try:
        after = [send_one(i, T0 + i) for i in range(40, 60)]
        # The anonymous beacons refused during the outage are sent again by their clients
        retried = [send_one(i, T0 + 100 + i) for i in range(21, 40, 2)]
        # Users whose visits were only stored in the history view another page
        repeated = [send_one(i + 1000, T0 + 200 + i) for i in range(20, 40, 2)]
        stats = get_tracker().get_visitor_stats(system.community_id, T0 + 300)
    finally:
        restarted.stop()

    assert set(during) == {202, 503}  # users kept in the history, anonymous refused; never 500
    assert all(status == 202 for status in during[0::2])
    assert all(status == 503 for status in during[1::2])
    assert set(after) == {200}  # reconnected by itself, NOSCRIPT recovered
    assert set(retried) == {200}
    assert set(repeated) == {200}
    assert 500 not in answers
    # Every accepted authenticated event is in DynamoDB exactly once (retries included)
    stored = stored_event_ids(system.community_id)
    assert sorted(stored) == sorted(accepted_events)
    # Live counts are exact again: everyone seen since Redis came back, once
    assert (stats.total_visitors, stats.authenticated_visitors, stats.anonymous_visitors) == (40, 20, 20)


def test_live_counts_after_a_redis_restart_are_exactly_the_visitors_since(
    system: Community, own_redis: RedisProcess
) -> None:
    for i in range(10):
        beacon(
            system.community_id, {"url": "https://x/", "visitor_id": f"tab-before-{i:05d}"}, headers={}, now_ms=T0 + i
        )
    own_redis.process.kill()
    own_redis.process.wait()
    restarted = start_redis(own_redis.directory, port=own_redis.port)
    try:
        for i in range(7):
            headers = bearer(f"back-{i}") if i < 3 else {}
            beacon(
                system.community_id,
                {"url": "https://x/", "visitor_id": f"tab-after-{i:05d}"},
                headers=headers,
                now_ms=T0 + 50 + i,
            )
        stats = get_tracker().get_visitor_stats(system.community_id, T0 + 100)
    finally:
        restarted.stop()

    assert (stats.total_visitors, stats.authenticated_visitors, stats.anonymous_visitors) == (7, 3, 4)


class FlakyDynamoDB:
    """Answers PutItem with throttling or a 500 for a share of the calls (before they reach the
    emulator): botocore's retries see real error responses."""

    def __init__(self, failure_rate: float, seed: int = 7) -> None:
        self.failure_rate = failure_rate
        self.random = random.Random(seed)
        self.injected = 0

    def __call__(self, **_kwargs: Any) -> AWSResponse | None:
        if self.random.random() >= self.failure_rate:
            return None
        self.injected += 1
        if self.random.random() < 0.5:
            kind, status = "ProvisionedThroughputExceededException", 400
        else:
            kind, status = "InternalServerError", 500
        return aws_error(status, kind, json_type=DYNAMODB_ERROR_TYPE)


def test_dynamodb_throttling_and_errors_lose_nothing_and_duplicate_nothing(
    system: Community, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's own retries run as configured; only their sleeps (up to seconds for throttling)
    # are skipped, to keep the test quick.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda _self, _context: 0)
    flaky = FlakyDynamoDB(failure_rate=0.45)
    client = get_stores().visits._table.meta.client
    # botocore's stubs type event handlers as returning None; before-send handlers may answer.
    client.meta.events.register("before-send.dynamodb.TransactWriteItems", flaky)  # type: ignore[arg-type]
    pending = {f"evt-flaky-{i:05d}": f"flaky-user-{i}" for i in range(40)}
    attempts = 0
    try:
        # Clients retry until the answer is a 2xx, as a retrying beacon queue would
        while pending and attempts < 20:
            attempts += 1
            for event_id, user_id in list(pending.items()):
                answer = beacon(
                    system.community_id, {"url": "https://x/", "event_id": event_id}, headers=bearer(user_id), now_ms=T0
                )
                assert answer.status in {200, 503}, answer.body
                if answer.status == 200:
                    del pending[event_id]
    finally:
        client.meta.events.unregister("before-send.dynamodb.TransactWriteItems", flaky)  # type: ignore[arg-type]

    assert flaky.injected > 0
    assert pending == {}
    stored = stored_event_ids(system.community_id)
    assert len(stored) == len(set(stored)) == 40
    assert get_tracker().get_visitor_stats(system.community_id, T0).authenticated_visitors == 40


CLEANUP_SCRIPT = """
import sys, time
from community_tracker.cleanup import run_cleanup_pass
from community_tracker.redis.cleanup_index import get_cleanup_index

class Peaks:
    def put_rollup(self, community_id, peak):
        pass

index = get_cleanup_index()
cleanup_communities = index.cleanup_communities

def slowly(community_ids, now_ms):  # a slow pass, so that it can be killed half-way
    time.sleep(0.05)
    return cleanup_communities(community_ids, now_ms)

index.cleanup_communities = slowly
print("started", flush=True)
run_cleanup_pass(index, Peaks(), now_ms=int(sys.argv[1]), time_left_ms=lambda: 600_000, batch_size=20)
print("finished", flush=True)
"""


def test_a_cleanup_pass_killed_half_way_leaves_nothing_wrong(own_redis: RedisProcess) -> None:
    client = own_redis.client()
    tracker = tracker_for(client)
    communities = [f"killed-{i:04d}" for i in range(400)]
    for community in communities:
        tracker.add_visitors([visit(community, anonymous(f"stale-{j}", "laval")) for j in range(20)], T0)
        tracker.add_visitor(visit(community, anonymous("fresh", "montreal")), T0 + 4 * MINUTE)
    now = T0 + 5 * MINUTE + 1  # a day later would add rollups; stale removal is what matters here

    process = subprocess.Popen(
        [sys.executable, "-c", CLEANUP_SCRIPT, str(now)],
        cwd=ROOT,
        env={**os.environ, "VT_REDIS_URL": own_redis.url},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill it once it has cleaned some, not all
        cleaned = sum(1 for c in communities if client.hlen(CommunityKeys(c).visitors) == 1)
        if cleaned >= 20:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partly = sum(1 for c in communities if client.hlen(CommunityKeys(c).visitors) == 1)
    assert 0 < partly < len(communities), "the pass should have been killed half-way"

    # Every community is exact at any moment: cleaned ones and not-yet-cleaned ones alike
    for community in communities:
        keys = CommunityKeys(community)
        live = client.zcard(keys.live)
        assert int(client.hget(keys.counts, "anon") or 0) == live
        assert sum(int(n) for n in client.hvals(keys.divisions)) == live

    # The next pass, once the dead pass's claims have fallen due, finishes the job
    class Peaks:
        def put_rollup(self, community_id: str, peak: object) -> None:
            return None

    result = run_cleanup_pass(CleanupIndex(client), Peaks(), now_ms=now + MINUTE, time_left_ms=lambda: 600_000)
    assert result.completed
    for community in communities:
        keys = CommunityKeys(community)
        assert client.zrange(keys.live, 0, -1) == [anonymous("fresh").key]
        assert client.hgetall(keys.divisions) == {"montreal": "1"}
        counts = client.hgetall(keys.counts)
        assert counts.pop("indexed")  # when it was last registered for cleanup
        assert counts == {"anon": "1", "cross": "1"}
