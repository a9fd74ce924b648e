"""Figure 7: live push fan-out, one pusher tick to 5,000 subscribers.

The management API is `infra.fake_management_api` in a process of its own (so it does not compete
for this one's GIL), answering each `POST /@connections/{id}` after 30 ms, about what API Gateway
takes over a network. Each tick is the real one (`LivePusher.tick` on the benchmark's Redis, ten
communities of 500 subscribers, with the pusher function's poster and `VT_LIVE_POST_CONCURRENCY` at
its default), in two cases:

- one message per subscriber (5,000 posts): a visitor signs in, so only the counts message changes
  (authenticated +1, anonymous -1; no division known before or after);
- both messages (10,000 posts): a visitor arrives, which moves the counts and the divisions.

The baseline is the serial way, what the pusher did before: one boto3 `post_to_connection` after
another. At 30 ms a post it would take minutes, so it is timed on `SERIAL_SAMPLE` posts in the same
run and scaled to each tick's posts (each serial post waits its 30 ms: the time is linear in posts).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore.config import Config

from benchmarks.harness import Figure, environment, function_environment, median, progress, wall_ms
from benchmarks.workload import Population, arrivals, population
from community_tracker.aws.connections import management_api_poster
from community_tracker.live import LivePusher
from community_tracker.models import Visit, VisitorIdentity, anonymous_visitor_key, authenticated_visitor_key
from community_tracker.redis.live_state import VisitorTracker, get_tracker
from community_tracker.redis.subscriptions import get_subscriptions
from community_tracker.settings import get_settings
from infra.processes import stop_process

SUBSCRIBERS = 5_000
COMMUNITIES = 10
DELAY_MS = 30
ROUNDS = 5
SERIAL_SAMPLE = 100
TARGET_SECONDS = 1.0


@contextmanager
def fake_management_api() -> Iterator[str]:
    """The fake in a process of its own, stopped by its own pid; yields its endpoint."""
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.fake_management_api", "--delay-ms", str(DELAY_MS), "--lean"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("ENDPOINT "):
            raise RuntimeError(f"the fake management API did not start: {line!r}")
        progress(f"fake management API pid {process.pid}, {DELAY_MS} ms a post")
        yield line.split()[1]
    finally:
        stop_process(process)


def _serial_seconds_per_post(endpoint: str) -> float:
    """The old way: a boto3 client (the functions' retry settings), one post after another."""
    client = boto3.client(
        "apigatewaymanagementapi",
        region_name="us-east-1",
        endpoint_url=endpoint,
        config=Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=2, read_timeout=3),
    )
    data = b'{"type":"visitor_count_changed","community_id":"bench-0","total":501,"authenticated":0,"anonymous":501}'
    client.post_to_connection(ConnectionId="warm-up", Data=data)
    started = time.perf_counter()
    for n in range(SERIAL_SAMPLE):
        client.post_to_connection(ConnectionId=f"serial-{n:06d}", Data=data)
    return (time.perf_counter() - started) / SERIAL_SAMPLE


def _signed_in(people: Population, round_index: int) -> tuple[list[Visit], list[Visit]]:
    """An anonymous visitor of no known division in each community, then the same visitor signed in
    on the same tab (the tab moves to a user of no known division, into whom the anonymous person
    is folded): the second changes only the counts message."""
    before, after = [], []
    for community in people.communities:
        anonymous = VisitorIdentity(
            key=anonymous_visitor_key(f"fanout-{community.community_id}-{round_index}"),
            user_id=None,
            division_id=None,
            is_authenticated=False,
        )
        user_id = f"fanout-user-{round_index}"
        user = VisitorIdentity(
            key=authenticated_visitor_key(user_id), user_id=user_id, division_id=None, is_authenticated=True
        )
        tab = f"c:fanout-tab-{community.community_id}-{round_index}"
        before.append(
            Visit(
                community_id=community.community_id, community_division="quebec", visitor=anonymous, connection_key=tab
            )
        )
        after.append(
            Visit(community_id=community.community_id, community_division="quebec", visitor=user, connection_key=tab)
        )
    return before, after


def _timed_ticks(
    pusher: LivePusher, tracker: VisitorTracker, changes: list[list[Visit]], prepare: list[list[Visit]], posts: int
) -> list[float]:
    """One tick after each change (the first opens the connections and is not counted)."""
    seconds = []
    for round_index, visits in enumerate(changes):
        for visit in prepare[round_index] if prepare else []:
            tracker.add_visitor(visit, wall_ms())
        if prepare:
            pusher.tick(wall_ms())
        for visit in visits:
            tracker.add_visitor(visit, wall_ms())
        started = time.perf_counter()
        report = pusher.tick(wall_ms())
        elapsed = time.perf_counter() - started
        if report.messages != posts or report.failed:
            raise RuntimeError(f"the tick did not post {posts} messages: {report}")
        if round_index:
            seconds.append(elapsed)
    return seconds


def run(redis_url: str) -> list[Figure]:
    with (
        fake_management_api() as endpoint,
        environment({**function_environment(redis_url), "VT_WEBSOCKET_ENDPOINT": endpoint}),
    ):
        registry, tracker = get_subscriptions(), get_tracker()
        people = population("fanout", COMMUNITIES, ROUNDS + 1)
        now = wall_ms()
        for n in range(SUBSCRIBERS):
            registry.subscribe(f"conn-{n:06d}AbCdEf=", people.communities[n % COMMUNITIES].community_id, now)
        poster = management_api_poster(get_settings())
        pusher = LivePusher(tracker, registry, poster)
        pusher.tick(wall_ms())  # everything once: from here on only changes are posted
        arrivals_by_round = [
            [arrivals(c, [people.visitors[r]], batch=f"r{r}")[0] for c in people.communities] for r in range(ROUNDS + 1)
        ]
        both = _timed_ticks(pusher, tracker, arrivals_by_round, [], 2 * SUBSCRIBERS)
        sign_ins = [_signed_in(people, r) for r in range(ROUNDS + 1)]
        one = _timed_ticks(
            pusher, tracker, [after for _, after in sign_ins], [before for before, _ in sign_ins], SUBSCRIBERS
        )
        poster.close()
        per_post = _serial_seconds_per_post(endpoint)
        concurrency = get_settings().live_post_concurrency
    progress(f"one message each: {', '.join(f'{s:.3f}' for s in one)} s; both: {', '.join(f'{s:.3f}' for s in both)} s")
    progress(f"serial: {per_post * 1000:.2f} ms a post")
    figures = []
    for messages, seconds, target in ((1, one, TARGET_SECONDS), (2, both, None)):
        posts = messages * SUBSCRIBERS
        tick, serial = median(seconds), per_post * posts
        kind = "one message each" if messages == 1 else "both messages each"
        figures.append(
            Figure(
                f"live push: one tick to {SUBSCRIBERS:,} subscribers, {kind} ({posts:,} posts of {DELAY_MS} ms, "
                f"{concurrency} in flight) vs serial",
                round(tick, 3),
                "s",
                round(serial, 1),
                round(tick / serial, 5),
                None if target is None else f"<= {target:g} s",
                None if target is None else tick <= target,
            )
        )
    return figures
