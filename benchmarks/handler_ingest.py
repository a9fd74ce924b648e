"""Figure 2: page views through the whole `track_visit` Lambda handler, in-process.

API Gateway v2 events in; Powertools routing and validation, the community lookup (cached), the
tracker's script on the benchmark's Redis, and for the authenticated share the JWT check and the
`community_visit` event written to DynamoDB (moto, in-process).

The anonymous beacon path is compared, in CPU time (this process's) and wall time per beacon, with
the tracker call alone (`get_tracker().add_visitor`) recording the same kind of beacons (the
`Visit` the handler would make of each), interleaved in the same run; and the handler's own time is
measured with the tracker answering at once. The mixed traffic's rate is compared with figure 1.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import boto3
from moto import mock_aws

from benchmarks.harness import (
    Figure,
    environment,
    figure,
    function_environment,
    interleaved,
    lambda_stdout,
    median,
    progress,
    wall_ms,
)
from benchmarks.workload import Population, population
from community_tracker.aws.stores import get_stores
from community_tracker.identity import beacon_identity, get_visitor_hasher
from community_tracker.models import Community, Visit
from community_tracker.redis.live_state import get_tracker
from community_tracker.settings import get_settings
from infra.gateway import LocalContext
from infra.http_api_events import http_api_event
from infra.tables import create_visits_table
from infra.tokens import mint_token

ROUTE = "POST /v1/communities/{community_id}/visits"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
COMMUNITIES = 50
VISITORS = 5_000
ROUNDS = 5
WARMUP_BEACONS = 300
RUN_SECONDS = 1.0
MIXED_BEACONS = 120  # per round, 30 % of them logged in
MIXED_ROUNDS = 3
CPU_TARGET = 3.0  # x the tracker call alone
WALL_TARGET = 2.0


@dataclass(frozen=True)
class Beacon:
    """One page-view beacon as a browser sends it: to which community, its headers and JSON body,
    and from which address."""

    community_id: str
    headers: dict[str, str]
    body: str
    source_ip: str


def register(people: Population) -> None:
    """The communities, as the platform registers them (DynamoDB), so beacons are not refused."""
    store = get_stores().communities
    for community in people.communities:
        store.put(
            Community(
                community_id=community.community_id,
                slug=community.community_id,
                name=community.community_id,
                division_id=community.division_id,
            )
        )


def beacons(people: Population, count: int, batch: str) -> list[Beacon]:
    """`count` page-view beacons: a browser id always, a bearer token for logged-in visitors
    (minted once per user, as a session would reuse it), a fresh event id each."""
    settings = get_settings()
    tokens: dict[str, str] = {}
    planned = []
    for i in range(count):
        # Prime strides: every community and every visitor in turn, evenly and reproducibly.
        community = people.communities[i * 7919 % len(people.communities)]
        visitor = people.visitors[i * 104_729 % len(people.visitors)]
        headers = {"content-type": "application/json", "user-agent": BROWSER, "host": "bench.local"}
        user_id = visitor.identity.user_id
        if user_id is not None:
            if user_id not in tokens:
                tokens[user_id] = mint_token(settings, user_id, division_id=visitor.identity.division_id)
            headers["authorization"] = f"Bearer {tokens[user_id]}"
        body = {
            "event_id": f"e{batch}x{i:09d}",
            "url": f"https://platform.example/communities/{community.community_id}/",
            "referrer": "https://platform.example/",
            "visitor_id": visitor.browser_id,
        }
        planned.append(Beacon(community.community_id, headers, json.dumps(body), visitor.source_ip))
    return planned


def event(beacon: Beacon) -> dict[str, Any]:
    path = f"/v1/communities/{beacon.community_id}/visits"
    return http_api_event(
        "POST",
        path,
        route_key=ROUTE,
        path_parameters={"community_id": beacon.community_id},
        headers=beacon.headers,
        body=beacon.body,
        source_ip=beacon.source_ip,
        now_ms=wall_ms(),
    )


def visit_of(beacon: Beacon, people: Population, now_ms: int) -> Visit:
    """The `Visit` the handler makes of an anonymous beacon (`Beacon.visit()` after parsing), made
    here with the same product functions, so the tracker alone records the same beacons."""
    body = json.loads(beacon.body)
    hasher = get_visitor_hasher()
    settings = get_settings()
    identity = beacon_identity(
        principal=None,
        visitor_id=body.get("visitor_id"),
        connection_id=body.get("connection_id"),
        source_ip=beacon.source_ip,
        user_agent=beacon.headers["user-agent"],
        location=None,
        hasher=hasher,
        now_ms=now_ms,
        window_ms=settings.active_window_seconds * 1000,
    )
    community = next(c for c in people.communities if c.community_id == beacon.community_id)
    return Visit(
        community_id=community.community_id,
        community_division=community.division_id,
        visitor=identity.visitor,
        event_id=body["event_id"],
        connection_key=identity.connection_key,
        alt_key=identity.alt_key,
        client_key=hasher.client_key(beacon.source_ip),
    )


@dataclass
class _Spent:
    """CPU (this process) and wall time per beacon, one sample per round."""

    cpu_us: list[float] = field(default_factory=list)
    wall_us: list[float] = field(default_factory=list)

    def add(self, count: int, cpu: float, wall: float) -> float:
        self.cpu_us.append(cpu / count * 1e6)
        self.wall_us.append(wall / count * 1e6)
        return count / wall


def run(redis_url: str, tracker_rate: float) -> tuple[list[Figure], float]:
    """The figures, and the handler's anonymous rate (figure 6 compares the HTTP path with it)."""
    with environment(function_environment(redis_url)), mock_aws(), lambda_stdout():
        create_visits_table(boto3.client("dynamodb", region_name="us-east-1"), get_settings().table_name)
        # Imported here: the handler module reads its settings when first imported.
        from track_visit.handler import lambda_handler

        mixed = population("h", COMMUNITIES, VISITORS)
        register(mixed)
        # The same traffic without its logged-in visitors: no token to verify, no DynamoDB write.
        anonymous = Population(mixed.communities, [v for v in mixed.visitors if v.identity.user_id is None])
        # The tracker the handler uses (`get_tracker()`: the functions' settings and client).
        tracker = get_tracker()
        batches = 0

        def planned(people: Population, count: int) -> list[Beacon]:
            nonlocal batches
            batches += 1
            return beacons(people, count, f"h{batches}")

        def through_handler(people: Population, count: int, into: _Spent | None = None) -> float:
            events = [event(b) for b in planned(people, count)]
            cpu, started = time.process_time(), time.perf_counter()
            for prepared in events:
                answer = lambda_handler(prepared, LocalContext(function_name="TrackVisitFunction"))
                if answer["statusCode"] != 200 or "X-Beacon-Duplicate" in (answer.get("headers") or {}):
                    raise RuntimeError(f"a beacon was not counted: {answer}")
            cpu, wall = time.process_time() - cpu, time.perf_counter() - started
            return (into or _Spent()).add(count, cpu, wall)

        def tracker_alone(into: _Spent, count: int) -> float:
            visits = [visit_of(b, anonymous, wall_ms()) for b in planned(anonymous, count)]
            cpu, started = time.process_time(), time.perf_counter()
            for visit in visits:
                if tracker.add_visitor(visit, wall_ms()).status != "counted":
                    raise RuntimeError("a beacon was not counted by the tracker")
            return into.add(count, time.process_time() - cpu, time.perf_counter() - started)

        def stubbed_handler(into: _Spent, count: int) -> float:
            """The handler with the tracker answering at once: the handler's own time."""
            setattr(tracker, "add_visitor", lambda _visit, _now_ms: answered)  # noqa: B010 (on the instance)
            try:
                return through_handler(anonymous, count, into)
            finally:
                delattr(tracker, "add_visitor")

        answered = tracker.add_visitor(visit_of(planned(anonymous, 1)[0], anonymous, wall_ms()), wall_ms())
        warm = max(through_handler(anonymous, WARMUP_BEACONS), through_handler(anonymous, WARMUP_BEACONS))
        count = max(WARMUP_BEACONS, int(warm * RUN_SECONDS))
        progress(f"handler: warm-up done, {count} anonymous beacons per measurement")
        spent = {"anonymous": _Spent(), "tracker alone": _Spent(), "own time": _Spent(), "mixed": _Spent()}
        samples = interleaved(
            ROUNDS,
            {
                "anonymous": partial(through_handler, anonymous, count, spent["anonymous"]),
                "tracker alone": partial(tracker_alone, spent["tracker alone"], count),
                "own time": partial(stubbed_handler, spent["own time"], count),
            },
        )
        # Last, since moto keeps every visit in this process (its TransactWriteItems gets slower
        # with each, and the heap it grows would weigh on the figures above): a few rounds only.
        through_handler(mixed, MIXED_BEACONS // 4)
        samples["mixed"] = [through_handler(mixed, MIXED_BEACONS, spent["mixed"]) for _ in range(MIXED_ROUNDS)]
    rates = {name: median(values) for name, values in samples.items()}
    for name, values in samples.items():
        progress(
            f"handler: {name} {rates[name]:,.0f}/s, CPU {median(spent[name].cpu_us):.0f} us, wall "
            f"{median(spent[name].wall_us):.0f} us per beacon (samples {', '.join(f'{v:,.0f}' for v in values)})"
        )
    cpu = {name: median(s.cpu_us) for name, s in spent.items()}
    wall = {name: median(s.wall_us) for name, s in spent.items()}
    return [
        figure(
            "handler: anonymous beacon in-process vs the tracker call alone, CPU per beacon",
            cpu["anonymous"],
            "us",
            cpu["tracker alone"],
            of="tracker alone",
            at_most=CPU_TARGET,
        ),
        figure(
            "handler: anonymous beacon in-process vs the tracker call alone, wall time per beacon",
            wall["anonymous"],
            "us",
            wall["tracker alone"],
            of="tracker alone",
            at_most=WALL_TARGET,
        ),
        figure(
            "handler: its own time (the tracker answering at once), CPU per beacon",
            cpu["own time"],
            "us",
            cpu["tracker alone"],
            of="tracker alone",
        ),
        figure(
            "ingest: track_visit handler in-process, 30 % logged in (JWT, DynamoDB on moto), vs tracker alone",
            rates["mixed"],
            "visits/s",
            tracker_rate,
            of="tracker alone",
        ),
    ], rates["anonymous"]
