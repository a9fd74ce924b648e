"""A bounded concurrent load through the local HTTP gateway, checked exactly afterwards.

Several OS processes send beacons over loopback on keep-alive connections: anonymous page views
(each its own `visitor_id`), authenticated ones (some users view two pages, some beacons are exact
retries with the same `event_id`, sent from another process), heartbeats and leaves. Then the
stats API must show exactly what was sent (live count, authenticated / anonymous, per division,
cross-division), the admin history must hold exactly one `community_visit` per distinct
authenticated page view, and no answer may be a 500 (a 503 is sent again, as the beacon script
does, and counted once). Throughput is printed, not asserted.

The size comes from the environment; the default is small. The larger run:

    VT_LOAD_BEACONS=20000 VT_LOAD_PROCESSES=4 .venv/bin/pytest tests/e2e/test_load.py -s

(about a minute here; keep a run under the five-minute live window, or the first visitors expire
before the counts are read.)

The local system is the test's own, with the per-client rate limit and the cap on anonymous
people per client off (`VT_RATE_LIMIT_PER_MINUTE=0`, `VT_ANONYMOUS_PEOPLE_PER_CLIENT=0`): every
process sends from 127.0.0.1, which they would count as one client. Leaves take effect at once
(`VT_LEAVE_GRACE_SECONDS=0`), so the counts can be read as soon as the last answer is in.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest

from infra.redis_servers import free_port
from tests.e2e.conftest import BROWSER_UA, LocalSystem, start_local_system, stop_local_system
from tests.e2e.test_local_run import bearer, register, token

BEACONS = int(os.environ.get("VT_LOAD_BEACONS", "400"))
MAX_ATTEMPTS = 5
PROCESSES = int(os.environ.get("VT_LOAD_PROCESSES", "4"))
SEED = 20261124
USER_DIVISIONS = ["montreal", "quebec", "laval", None]


@dataclass(frozen=True)
class Beacon:
    path: str
    body: bytes
    headers: dict[str, str]
    retry: bool = False  # an exact copy of a beacon sent before (or at the same time)


@dataclass
class Expected:
    """What the community must show once every beacon has been answered."""

    division: str
    live_auth: set[str] = field(default_factory=set)
    live_anon: set[str] = field(default_factory=set)
    divisions: Counter[str | None] = field(default_factory=Counter)
    cross: int = 0
    history: set[tuple[str, str]] = field(default_factory=set)  # (user id, event id)


@dataclass
class WorkerReport:
    statuses: Counter[int]
    duplicates: int
    seconds: float
    unavailable: int  # 503 answers, each sent again


@pytest.fixture(scope="module")
def load_system() -> Iterator[LocalSystem]:
    system = start_local_system(
        free_port(),
        free_port(),
        extra_env={
            "VT_RATE_LIMIT_PER_MINUTE": "0",
            "VT_ANONYMOUS_PEOPLE_PER_CLIENT": "0",
            "VT_LEAVE_GRACE_SECONDS": "0",
        },
    )
    try:
        yield system
    finally:
        stop_local_system(system)


# -- the plan ------------------------------------------------------------------------------------


def page_view(community_id: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Beacon:
    return Beacon(
        f"/v1/communities/{community_id}/visits",
        json.dumps(body).encode(),
        {"Content-Type": "application/json", **(headers or {})},
    )


def plain_beacon(community_id: str, kind: str, body: dict[str, Any]) -> Beacon:
    """As navigator.sendBeacon sends it: text/plain JSON, the token in the body."""
    return Beacon(
        f"/v1/communities/{community_id}/{kind}",
        json.dumps(body).encode(),
        {"Content-Type": "text/plain;charset=UTF-8"},
    )


def plan(communities: dict[str, Expected], beacons: int, processes: int) -> list[list[Beacon]]:
    """Visitors, each with its beacons in order on one process; a retry may go to another."""
    rng = random.Random(SEED)
    sequences: list[list[list[Beacon]]] = [[] for _ in range(processes)]
    stray_retries: list[list[list[Beacon]]] = [[] for _ in range(processes)]
    sent, visitor = 0, 0
    while sent < beacons:
        visitor += 1
        community_id = rng.choice(sorted(communities))
        expected = communities[community_id]
        worker = visitor % processes
        kind = rng.choice(
            ["anon", "anon", "anon_heartbeat", "anon_leave", "user", "user_two", "user_retry", "user_leave"]
        )
        url = {"url": f"https://platform.example/communities/{community_id}/"}
        sequence: list[Beacon] = []
        if kind.startswith("anon"):
            visitor_id = f"tab-load-{visitor:08d}"
            sequence.append(page_view(community_id, {**url, "visitor_id": visitor_id}))
            if kind == "anon_heartbeat":
                sequence.append(plain_beacon(community_id, "heartbeat", {"visitor_id": visitor_id}))
            if kind == "anon_leave":
                sequence.append(plain_beacon(community_id, "leave", {"visitor_id": visitor_id}))
            else:
                expected.live_anon.add(visitor_id)
                expected.divisions[None] += 1
        else:
            user_id = f"load-u{visitor:06d}"
            division = rng.choice(USER_DIVISIONS)
            user_token = token(user_id=user_id, division_id=division)
            views = 2 if kind == "user_two" else 1
            for view in range(views):
                event_id = f"evt-load-{visitor:06d}-{view}"
                body = {**url, "event_id": event_id}
                if rng.random() < 0.5:  # the header, or (sendBeacon) the body
                    beacon = page_view(community_id, body, {"Authorization": f"Bearer {user_token}"})
                else:
                    beacon = plain_beacon(community_id, "visits", {**body, "token": user_token})
                sequence.append(beacon)
                expected.history.add((user_id, event_id))
                if kind == "user_retry":
                    retry = Beacon(beacon.path, beacon.body, beacon.headers, retry=True)
                    if rng.random() < 0.5:
                        sequence.append(retry)
                    else:  # from another process, racing the original
                        stray_retries[(worker + 1) % processes].append([retry])
                        sent += 1
            if kind == "user_leave":
                sequence.append(plain_beacon(community_id, "leave", {"token": user_token}))
            else:
                expected.live_auth.add(user_id)
                expected.divisions[division] += 1
                expected.cross += int(division is not None and division != expected.division)
        sequences[worker].append(sequence)
        sent += len(sequence)
    return [interleave(rng, sequences[w] + stray_retries[w]) for w in range(processes)]


def interleave(rng: random.Random, sequences: list[list[Beacon]]) -> list[Beacon]:
    """One process's beacons: the visitors mixed, each visitor's own beacons still in order."""
    pending = [list(reversed(sequence)) for sequence in sequences if sequence]
    merged: list[Beacon] = []
    while pending:
        index = rng.randrange(len(pending))
        merged.append(pending[index].pop())
        if not pending[index]:
            pending.pop(index)
    return merged


# -- the processes -------------------------------------------------------------------------------


def send_all(port: int, beacons: list[Beacon]) -> WorkerReport:
    """One OS process: one keep-alive connection, every beacon in order."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    statuses: Counter[int] = Counter()
    duplicates = unavailable = 0
    started = time.perf_counter()
    try:
        for beacon in beacons:
            # A 503 (a dependency slower than the timeout budget, as on a busy machine) is sent
            # again, as the beacon script does; the retry of a beacon Redis took is a duplicate.
            for attempt in range(MAX_ATTEMPTS):
                connection.request(
                    "POST", beacon.path, body=beacon.body, headers={"User-Agent": BROWSER_UA, **beacon.headers}
                )
                response = connection.getresponse()
                response.read()
                if response.status != 503 or attempt == MAX_ATTEMPTS - 1:
                    break
                unavailable += 1
                time.sleep(0.2)
            statuses[response.status] += 1
            duplicate = response.getheader("X-Beacon-Duplicate") == "true"
            duplicates += duplicate
    finally:
        connection.close()
    return WorkerReport(statuses, duplicates, time.perf_counter() - started, unavailable)


def worker(port: int, beacons: list[Beacon], ready: Barrier, reports: Queue[WorkerReport]) -> None:
    ready.wait()  # every interpreter is up before the clock starts
    reports.put(send_all(port, beacons))


def run_processes(port: int, plans: list[list[Beacon]]) -> tuple[list[WorkerReport], float]:
    context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
    ready = context.Barrier(len(plans) + 1)
    reports: Queue[WorkerReport] = context.Queue()
    processes = [context.Process(target=worker, args=(port, beacons, ready, reports)) for beacons in plans]
    for process in processes:
        process.start()
    try:
        ready.wait(timeout=120)
        started = time.perf_counter()
        collected = [reports.get(timeout=600) for _ in processes]
        seconds = time.perf_counter() - started
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert all(process.exitcode == 0 for process in processes)
    return collected, seconds


# -- reading the result back ---------------------------------------------------------------------


def history(system: LocalSystem, community_id: str, admin: dict[str, str]) -> list[dict[str, Any]]:
    visits: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = "limit=100" + (f"&cursor={cursor}" if cursor else "")
        answer = system.request("GET", f"/v1/communities/{community_id}/visits?{query}", headers=admin)
        assert answer.status == 200, answer.body
        page = answer.json()
        visits.extend(page["visits"])
        cursor = page["next_cursor"]
        if cursor is None:
            return visits


def test_concurrent_beacons_are_counted_exactly(load_system: LocalSystem) -> None:
    admin = bearer("load-ops", roles=["admin"])
    communities = {
        register(load_system, division="quebec"): Expected("quebec"),
        register(load_system, division="laval"): Expected("laval"),
    }
    plans = plan(communities, BEACONS, PROCESSES)
    sent = sum(len(beacons) for beacons in plans)
    retries = sum(beacon.retry for beacons in plans for beacon in beacons)

    reports, seconds = run_processes(load_system.port, plans)

    statuses = sum((report.statuses for report in reports), Counter[int]())
    print(
        f"\n{sent} beacons from {len(plans)} processes in {seconds:.2f} s: {sent / seconds:.0f} beacons/s "
        f"through the local gateway (per process: {', '.join(f'{r.seconds:.2f} s' for r in reports)}); "
        f"answers {dict(sorted(statuses.items()))}, {sum(r.unavailable for r in reports)} 503s sent again"
    )
    assert not any(status >= 500 for status in statuses), statuses
    assert statuses == Counter({200: sent}), statuses
    # Each planned retry is answered as a duplicate once (it or the beacon it copies); a 503 sent
    # again after Redis took the beacon is one more
    unavailable = sum(report.unavailable for report in reports)
    assert retries <= sum(report.duplicates for report in reports) <= retries + unavailable
    for community_id, expected in communities.items():
        path = f"/v1/communities/{community_id}"
        stats = load_system.request("GET", f"{path}/stats", headers=admin).json()
        divisions = load_system.request("GET", f"{path}/divisions", headers=admin).json()
        cross = load_system.request("GET", f"{path}/cross-division", headers=admin).json()
        visits = history(load_system, community_id, admin)

        print(
            f"{community_id}: {stats['total_visitors']} live ({stats['authenticated_visitors']} authenticated), "
            f"{cross['cross_division_visits']} cross-division, {len(visits)} community_visit items"
        )
        assert stats["total_visitors"] == len(expected.live_auth) + len(expected.live_anon)
        assert stats["authenticated_visitors"] == len(expected.live_auth)
        assert stats["anonymous_visitors"] == len(expected.live_anon)
        assert {d["division_id"]: d["count"] for d in divisions["divisions"] if d["count"]} == {
            division: count for division, count in expected.divisions.items() if count
        }
        assert cross["cross_division_visits"] == expected.cross
        assert len(visits) == len(expected.history)
        assert {(v["user_id"], v["event_id"]) for v in visits} == expected.history
