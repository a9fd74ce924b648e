"""Every accepted visit kept exactly once, through retries, timeouts and outages (README,
"Guarantees"). Against the DynamoDB emulator (moto_server: nothing in-process answers before the
injected faults) and real Redis servers the tests kill, stall and restart; on one node and on a
3-master Redis Cluster."""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff
from redis import Redis
from redis.crc import key_slot

from community_tracker.aws.stores import get_stores
from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.redis.keys import CommunityKeys
from community_tracker.redis.live_state import get_tracker
from community_tracker.settings import get_settings
from infra.redis_servers import RedisClusterProcesses, RedisProcess, start_cluster, start_redis
from infra.tokens import mint_token
from tests.builders import SECOND, T0
from tests.helpers import DYNAMODB_ERROR_TYPE, aws_error, beacon

FUNCTION_TIMEOUT_S = 10  # TrackVisitFunction's Timeout in template.yaml


def bearer(user_id: str) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(get_settings(), user_id, division_id='laval')}"}


def stored(community_id: str) -> Counter[str]:
    """Event ids of the community's visit items, with how many items each has."""
    ids: Counter[str] = Counter()
    after = None
    while True:
        page = get_stores().visits.community_visits(community_id, limit=100, after=after)
        ids.update(visit.event_id for visit in page.visits)
        after = page.next
        if after is None:
            return ids


def register(*community_ids: str) -> list[Community]:
    communities = [Community(community_id=c, slug=c, name=c, division_id="quebec") for c in community_ids]
    for community in communities:
        get_stores().communities.put(community)
    return communities


def page_view(community: Community, event_id: str, user: str | None, now_ms: int) -> int:
    body = {"url": "https://x/", "event_id": event_id, "visitor_id": f"b-{event_id}", "connection_id": f"t-{event_id}"}
    return beacon(community.community_id, body, headers=bearer(user) if user else {}, now_ms=now_ms).status


@pytest.fixture
def functions_env(emulated_aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("VT_REDIS_SOCKET_TIMEOUT_SECONDS", "1")  # what the template sets
    monkeypatch.setenv("VT_RATE_LIMIT_PER_MINUTE", "0")
    monkeypatch.setenv("VT_ANONYMOUS_PEOPLE_PER_CLIENT", "0")
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda _self, _context: 0)
    reset_factories()
    yield
    reset_factories()


@pytest.fixture
def single_node(functions_env: None, own_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch) -> RedisProcess:
    monkeypatch.setenv("VT_REDIS_URL", own_redis.url)
    reset_factories()
    return own_redis


@pytest.fixture
def cluster(functions_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisClusterProcesses]:
    own = start_cluster(tmp_path / "cluster")
    monkeypatch.setenv("VT_REDIS_URL", own.url)
    monkeypatch.setenv("VT_REDIS_CLUSTER", "true")
    reset_factories()
    yield own
    reset_factories()
    own.stop()


def restart(node: RedisProcess, *, cluster: bool = False) -> RedisProcess:
    node.process.kill()
    node.process.wait()
    return start_redis(node.directory, port=node.port, cluster=cluster)


# -- a Redis that stops answering --------------------------------------------------------------


def test_a_stalled_redis_answers_inside_the_timeout_and_counts_once(single_node: RedisProcess) -> None:
    [community] = register("stalled")
    # Given Redis busy in a script that never ends (what a stall looks like from a client)
    blocker = Redis.from_url(single_node.url)
    busy = threading.Thread(target=lambda: _swallow(lambda: blocker.eval("while true do end", 0)), daemon=True)
    busy.start()
    time.sleep(0.3)
    try:
        started = time.monotonic()
        anonymous = page_view(community, "evt-stall-anon-01", None, T0)
        user = page_view(community, "evt-stall-user-01", "stalled-user", T0)
        elapsed = time.monotonic() - started
    finally:
        Redis.from_url(single_node.url).script_kill()
        busy.join(timeout=10)

    # Then both answered well inside the function's timeout: the anonymous one 503 (retry it),
    # the user's 202 with the visit stored
    assert (anonymous, user) == (503, 202)
    assert elapsed < FUNCTION_TIMEOUT_S / 2, elapsed
    assert stored(community.community_id) == Counter({"evt-stall-user-01": 1})

    # When Redis is free again it runs what was queued (the client's own retries included), and
    # the page retries its 503: everything is counted once
    assert page_view(community, "evt-stall-anon-01", None, T0 + SECOND) == 200
    assert page_view(community, "evt-stall-user-01", "stalled-user", T0 + SECOND) == 200
    visitors = get_tracker().get_visitor_list(community.community_id, T0 + 2 * SECOND).visitors
    assert sorted(v.pages_viewed for v in visitors) == [1, 1]
    assert stored(community.community_id) == Counter({"evt-stall-user-01": 1})
    # and the community is registered for cleanup, whatever the first try's fate
    shard = zlib.crc32(b"stalled") % get_settings().index_shards
    assert Redis.from_url(single_node.url).zscore(f"{{vt:index:{shard}}}", "stalled") is not None


def _swallow(call: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):  # the busy script ends with an error once it is killed
        call()


# -- retries -----------------------------------------------------------------------------------


def test_a_retry_after_a_redis_restart_is_stored_once(single_node: RedisProcess) -> None:
    [community] = register("restarted")
    assert page_view(community, "evt-restart-0001", "u-restart", T0) == 200

    restarted = restart(single_node)  # the dedup marker is gone with it
    try:
        assert page_view(community, "evt-restart-0001", "u-restart", T0 + 30 * SECOND) == 200
    finally:
        restarted.stop()

    assert stored(community.community_id) == Counter({"evt-restart-0001": 1})


def test_a_retry_past_the_dedup_window_is_stored_once(
    single_node: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VT_DEDUP_SECONDS", "1")
    reset_factories()
    [community] = register("late-retry")
    assert page_view(community, "evt-late-00001", "u-late", T0) == 200
    time.sleep(1.2)  # the Redis marker expires in Redis time

    assert page_view(community, "evt-late-00001", "u-late", T0 + 610 * SECOND) == 200
    assert stored(community.community_id) == Counter({"evt-late-00001": 1})


class DynamoDBDown:
    """Every visit write fails like an outage (after botocore's retries), while installed."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **_kwargs: Any) -> Any:
        self.calls += 1
        return aws_error(500, "InternalServerError", json_type=DYNAMODB_ERROR_TYPE)

    def __enter__(self) -> DynamoDBDown:
        get_stores().visits._table.meta.client.meta.events.register_first(
            "before-send.dynamodb.TransactWriteItems",
            self,
        )
        return self

    def __exit__(self, *_exc: object) -> None:
        get_stores().visits._table.meta.client.meta.events.unregister(
            "before-send.dynamodb.TransactWriteItems",
            self,
        )


def test_dynamodb_failing_after_redis_succeeded_is_retried_to_exactly_once(single_node: RedisProcess) -> None:
    [community] = register("history-down")
    with DynamoDBDown() as down:
        first = page_view(community, "evt-hdown-00001", "u-hdown", T0)
    # The live state took it, the history did not: nobody may be told it is kept
    assert first == 503
    assert down.calls == 2  # the failure reached the code (two attempts), nothing answered for it
    assert stored(community.community_id) == Counter()

    assert page_view(community, "evt-hdown-00001", "u-hdown", T0 + 5 * SECOND) == 200
    assert stored(community.community_id) == Counter({"evt-hdown-00001": 1})
    [person] = get_tracker().get_visitor_list(community.community_id, T0 + 6 * SECOND).visitors
    assert person.pages_viewed == 1  # the retry was not a second page view


def test_redis_failing_before_dynamodb_is_retried_to_exactly_once(single_node: RedisProcess) -> None:
    [community] = register("live-down")
    single_node.process.kill()
    single_node.process.wait()
    first = page_view(community, "evt-ldown-00001", "u-ldown", T0)
    restarted = start_redis(single_node.directory, port=single_node.port)
    try:
        retry = page_view(community, "evt-ldown-00001", "u-ldown", T0 + 5 * SECOND)
        live = get_tracker().get_visitor_stats(community.community_id, T0 + 6 * SECOND).total_visitors
    finally:
        restarted.stop()

    assert (first, retry) == (202, 200)
    assert stored(community.community_id) == Counter({"evt-ldown-00001": 1})
    assert live == 1


# -- the fault report ----------------------------------------------------------------------------


@dataclass
class Report:
    sent: int = 0
    accepted: set[str] = field(default_factory=set)  # 2xx at some try
    answers: Counter[int] = field(default_factory=Counter)

    def line(self, items: Counter[str], expected: set[str]) -> str:
        lost = self.accepted - set(items)
        duplicated = sum(n - 1 for n in items.values())
        missing = expected - set(items)
        return (
            f"sent {self.sent}, accepted {len(self.accepted)}, stored {len(items)}, "
            f"lost {len(lost)}, duplicated {duplicated}, not yet stored {len(missing)}; answers {dict(self.answers)}"
        )


def run_stream(
    communities: list[Community], kill: Callable[[], None], recover: Callable[[], None]
) -> tuple[Report, set[str]]:
    """A bounded stream of authenticated page views: a third before the faults, a third during
    a Redis fault and a DynamoDB outage, a third after; then every page view not answered 2xx
    and a sample of those that were are retried with the same event id, as clients would."""
    report = Report()
    events = [(f"evt-stream-{i:05d}", communities[i % len(communities)], f"u-stream-{i}") for i in range(150)]
    results: dict[str, int] = {}

    def send(index: int, now_ms: int) -> None:
        event_id, community, user = events[index]
        status = page_view(community, event_id, user, now_ms)
        report.sent += 1
        report.answers[status] += 1
        results[event_id] = status
        if 200 <= status < 300:
            report.accepted.add(event_id)

    for i in range(50):
        send(i, T0 + i)
    kill()
    with DynamoDBDown():
        for i in range(50, 75):
            send(i, T0 + i)
    for i in range(75, 100):
        send(i, T0 + i)
    recover()
    for i in range(100, 150):
        send(i, T0 + i)
    for attempt in range(5):
        retry = [i for i, (event_id, _, _) in enumerate(events) if not 200 <= results[event_id] < 300]
        retry += list(range(0, 150, 7)) if attempt == 0 else []  # accepted ones, as timed-out clients would
        for i in retry:
            send(i, T0 + 200 * SECOND + attempt * SECOND + i)
    assert 500 not in report.answers, report.answers
    return report, {event_id for event_id, _, _ in events}


def test_a_stream_through_faults_on_one_node_loses_and_duplicates_nothing(single_node: RedisProcess) -> None:
    communities = register("stream-a", "stream-b", "stream-c")
    node: list[RedisProcess] = [single_node]

    def kill() -> None:
        node[0].process.kill()
        node[0].process.wait()

    def recover() -> None:
        node[0] = start_redis(single_node.directory, port=single_node.port)

    try:
        report, expected = run_stream(communities, kill, recover)
    finally:
        node[0].stop()
    items: Counter[str] = Counter()
    for community in communities:
        items += stored(community.community_id)
    print("\none node:", report.line(items, expected))

    assert report.accepted - set(items) == set()  # 0 lost
    assert max(items.values()) == 1  # 0 duplicated
    assert set(items) == expected  # and every page view stored once its client retried


@pytest.mark.cluster
def test_a_stream_through_faults_on_the_cluster_loses_and_duplicates_nothing(cluster: RedisClusterProcesses) -> None:
    # Communities on every master, so killing one takes some of them down and leaves others up
    names = [f"cl-{i}" for i in range(40)]
    by_node = _communities_by_master(cluster, names)
    communities = register(*(by_node[port][0] for port in sorted(by_node)))
    victim = next(n for n in cluster.nodes if n.port == sorted(by_node)[0])
    restarted: list[RedisProcess] = []

    def kill() -> None:
        victim.process.kill()
        victim.process.wait()

    def recover() -> None:
        restarted.append(start_redis(victim.directory, port=victim.port, cluster=True))
        _wait_for(lambda: all(n.client().cluster("INFO")["cluster_state"] == "ok" for n in _alive(cluster, restarted)))

    try:
        report, expected = run_stream(communities, kill, recover)
    finally:
        for node in restarted:
            node.stop()
    items: Counter[str] = Counter()
    for community in communities:
        items += stored(community.community_id)
    print("\ncluster:", report.line(items, expected))

    assert report.accepted - set(items) == set()
    assert max(items.values()) == 1
    assert set(items) == expected


def _communities_by_master(cluster: RedisClusterProcesses, names: list[str]) -> dict[int, list[str]]:
    slots = cluster.nodes[0].client().cluster("SLOTS")
    owner = {}
    for start, end, primary, *_ in slots:
        owner[(int(start), int(end))] = int(primary[1])
    by_node: dict[int, list[str]] = {}
    for name in names:
        slot = key_slot(CommunityKeys(name).live.encode())
        port = next(p for (start, end), p in owner.items() if start <= slot <= end)
        by_node.setdefault(port, []).append(name)
    assert len(by_node) == len(cluster.nodes)
    return by_node


def _alive(cluster: RedisClusterProcesses, restarted: list[RedisProcess]) -> list[RedisProcess]:
    ports = {n.port for n in restarted}
    return [n for n in cluster.nodes if n.port not in ports and n.process.poll() is None] + restarted


def _wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 (a node still starting)
            pass
        time.sleep(0.2)
    raise AssertionError("the cluster did not recover in time")


# -- failovers and a directory outage -------------------------------------------------------------


def test_a_demoted_node_answers_503_then_serves_again_once_promoted(single_node: RedisProcess, tmp_path: Path) -> None:
    [community] = register("demoted")
    primary = start_redis(tmp_path / "primary")
    node = single_node.client()
    try:
        # Given the node the functions use demoted to a replica by a failover (READONLY)
        node.replicaof("127.0.0.1", primary.port)
        demoted = page_view(community, "evt-demoted-001", None, T0)
        # When it is promoted again (or the endpoint points at the new primary)
        node.replicaof("NO", "ONE")
        promoted = page_view(community, "evt-demoted-002", None, T0 + SECOND)
    finally:
        node.close()
        primary.stop()

    # Then the refusal is the documented 503, and the client recovers by itself
    assert (demoted, promoted) == (503, 200)


def test_a_directory_outage_past_the_cache_keeps_known_communities_counting(
    single_node: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VT_COMMUNITY_CACHE_SECONDS", "0")  # every lookup is past the cache
    reset_factories()
    [known] = register("known-community")
    assert page_view(known, "evt-known-0001", None, T0) == 200  # looked up once, while DynamoDB was up
    client = get_stores().visits._table.meta.client
    calls: list[str] = []

    def down(**_kwargs: Any) -> Any:
        calls.append("GetItem")
        return aws_error(500, "InternalServerError", json_type=DYNAMODB_ERROR_TYPE)

    client.meta.events.register_first("before-send.dynamodb.GetItem", down)
    try:
        started = time.monotonic()
        known_answers = [page_view(known, f"evt-known-{i:04d}", None, T0 + i) for i in range(1, 6)]
        elapsed = time.monotonic() - started
        unseen = beacon("never-seen", {"url": "https://x/"}, now_ms=T0 + 10)
    finally:
        client.meta.events.unregister("before-send.dynamodb.GetItem", down)

    # Then a known community keeps counting (served from the last lookup, not asked again for a
    # back-off), quickly; a community never seen is a 503, not a 404 or a 500
    assert known_answers == [200] * 5
    assert elapsed < 3, elapsed
    assert 0 < len(calls) <= 4  # the failure reached the code, and the back-off spared the rest
    assert unseen.status == 503
    assert unseen.json()["error"]["code"] == "directory_unavailable"


def test_the_same_visit_written_at_once_by_many_is_stored_once_and_none_fails(emulated_aws: str) -> None:
    # Given a page view and its retries arriving at the same time (another process, a second tab)
    from concurrent.futures import ThreadPoolExecutor

    from community_tracker.models import VisitEvent, VisitMetadata

    event = VisitEvent(
        event_id="evt-race-000001",
        user_id="u-race",
        timestamp="2031-03-05T12:00:00.000Z",
        metadata=VisitMetadata(
            community_id="race",
            community_slug="race",
            visitor_division_id=None,
            community_division_id="quebec",
            is_cross_division=False,
            is_authenticated=True,
            url="https://x/",
            referrer=None,
        ),
    )
    store = get_stores().visits
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _i: store.put_visit(event), range(16)))

    # Then exactly one write took it and the others were told it was there; none failed
    assert results.count(True) == 1
    assert stored("race") == Counter({"evt-race-000001": 1})


def test_a_transaction_conflict_with_a_concurrent_retry_is_waited_out(single_node: RedisProcess) -> None:
    # Given DynamoDB cancelling the visit's transaction once for a conflict (another request
    # writing the same guard at that moment), as it does for concurrent transactions on one item
    [community] = register("conflicted")
    client = get_stores().visits._table.meta.client
    conflicts: list[int] = []

    def conflict_once(**_kwargs: Any) -> Any:
        if conflicts:
            return None
        conflicts.append(1)
        return aws_error(
            400,
            "TransactionCanceledException",
            json_type=DYNAMODB_ERROR_TYPE,
            extra={"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]},
        )

    client.meta.events.register_first("before-send.dynamodb.TransactWriteItems", conflict_once)
    try:
        answer = page_view(community, "evt-conflict-01", "u-conflict", T0)
    finally:
        client.meta.events.unregister("before-send.dynamodb.TransactWriteItems", conflict_once)

    # Then the write is tried again and the visit kept: a 200, not a 503
    assert conflicts == [1]
    assert answer == 200
    assert stored(community.community_id) == Counter({"evt-conflict-01": 1})
