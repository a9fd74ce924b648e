"""Figure 2: page views per second through the whole `track_visit` Lambda handler, in-process.

API Gateway v2 events in; Powertools routing and validation, the JWT check, the community lookup
(cached), the tracker's script on the benchmark's Redis, and for the authenticated share the
`community_visit` event written to DynamoDB (moto, in-process). Compared with the tracker alone
(figure 1, one process): the difference is what the layers around the tracker cost. The same
traffic without its logged-in visitors shows which part of that is the JWT check and DynamoDB.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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
from community_tracker.models import Community
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


def run(redis_url: str, tracker_rate: float) -> tuple[list[Figure], float]:
    """The figures, and the handler's rate (figure 6 compares the HTTP path with it)."""
    with environment(function_environment(redis_url)), mock_aws(), lambda_stdout():
        create_visits_table(boto3.client("dynamodb", region_name="us-east-1"), get_settings().table_name)
        # Imported here: the handler module reads its settings when first imported.
        from track_visit.handler import lambda_handler

        mixed = population("h", COMMUNITIES, VISITORS)
        register(mixed)
        # The same traffic without its logged-in visitors: no token to verify, no DynamoDB write.
        anonymous = Population(mixed.communities, [v for v in mixed.visitors if v.identity.user_id is None])
        batches = 0

        def measure(people: Population, count: int) -> float:
            nonlocal batches
            batches += 1
            events = [event(b) for b in beacons(people, count, f"h{batches}")]
            started = time.perf_counter()
            for prepared in events:
                answer = lambda_handler(prepared, LocalContext(function_name="TrackVisitFunction"))
                if answer["statusCode"] != 200 or "X-Beacon-Duplicate" in (answer.get("headers") or {}):
                    raise RuntimeError(f"a beacon was not counted: {answer}")
            return count / (time.perf_counter() - started)

        traffic = {"mixed": mixed, "anonymous": anonymous}
        counts = {}
        for name, people in traffic.items():
            warm = max(measure(people, WARMUP_BEACONS), measure(people, WARMUP_BEACONS))
            counts[name] = max(WARMUP_BEACONS, int(warm * RUN_SECONDS))
        progress(f"handler: warm-up done, {counts} beacons per measurement")
        samples = interleaved(
            ROUNDS, {name: partial(measure, people, counts[name]) for name, people in traffic.items()}
        )
    rates = {name: median(values) for name, values in samples.items()}
    for name, values in samples.items():
        progress(f"handler: {name} {rates[name]:,.0f}/s (samples {', '.join(f'{v:,.0f}' for v in values)})")
    return [
        figure(
            "ingest: track_visit handler in-process vs tracker alone, 1 process",
            rates["mixed"],
            "visits/s",
            tracker_rate,
            of="tracker alone",
        ),
        figure(
            "ingest: same, anonymous beacons only (no JWT, no DynamoDB)",
            rates["anonymous"],
            "visits/s",
            tracker_rate,
            of="tracker alone",
        ),
    ], rates["mixed"]
