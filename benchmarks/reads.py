"""Figure 3: every stats read on one community with 100 000 live visitors and 10 000 stale ones.

Time per read and round trips per read, against one PING (a round trip that does nothing). Every
read first prunes stale visitors, so the first read after they went stale is also a write: it is
reported on its own, and every other number is the steady state after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

from benchmarks.harness import (
    Figure,
    RoundTrips,
    figure,
    interleaved,
    median,
    product_client,
    product_tracker,
    progress,
    round_trips,
    seconds_per_call,
    server_microseconds,
    wall_ms,
)
from benchmarks.workload import arrivals, population
from community_tracker.models import Visit
from community_tracker.redis.live_state import VisitorTracker

LIVE = 100_000
STALE = 10_000
SEED_BATCH = 5_000  # page views per pipeline while seeding
WARMUP_CALLS = 20
CALLS = 30  # per read and round
ROUNDS = 7
SUMMARY_ROUND_TRIPS = 1
SUMMARY_PINGS = 3


def _seed(tracker: VisitorTracker, planned: Sequence[Visit], now_ms: int) -> None:
    for start in range(0, len(planned), SEED_BATCH):
        tracker.add_visitors(planned[start : start + SEED_BATCH], now_ms)


def run(redis_url: str) -> list[Figure]:
    client = product_client(redis_url)
    tracker = product_tracker(client)
    people = population("reads", 1, LIVE + STALE)
    community = people.communities[0]
    community_id = community.community_id

    # Real scores, no clock tricks in Redis: the stale visitors arrive now, the live ones one window
    # and a second later (a time in the future, so calendar keys still expire after the real now).
    # The live ones are recorded first, because every write prunes what is older than its window.
    stale_at = wall_ms()
    live_at = stale_at + tracker.window_ms + 1000
    _seed(tracker, arrivals(community, people.visitors[:LIVE], batch="rl"), live_at)
    _seed(tracker, arrivals(community, people.visitors[LIVE:], batch="rs"), stale_at)
    progress(f"reads: {LIVE:,} live and {STALE:,} stale visitors seeded in one community")

    def now() -> int:
        """The clock of the reads: it started at `live_at` when the real one was at `stale_at`."""
        return live_at + wall_ms() - stale_at

    ping_seconds = median([seconds_per_call(client.ping, CALLS) for _ in range(ROUNDS)])
    # Warm-up on another community, so the first read below finds its script loaded (a script's
    # first call on a node costs a NOSCRIPT answer and a SCRIPT LOAD, once per node and script).
    tracker.get_summary(f"{community_id}-warm-up", now())
    with RoundTrips().counting() as first_trips:
        started = time.perf_counter()
        tracker.get_summary(community_id, now())
        first_seconds = time.perf_counter() - started
    stats = tracker.get_visitor_stats(community_id, now())
    if stats.total_visitors != LIVE:
        raise RuntimeError(f"expected {LIVE} live visitors after the prune, found {stats.total_visitors}")
    progress(f"reads: first summary pruned {STALE:,} stale visitors in {first_seconds * 1000:.1f} ms")

    reads: dict[str, Callable[[], object]] = {
        "visitor_stats": lambda: tracker.get_visitor_stats(community_id, now()),
        "division_breakdown": lambda: tracker.get_division_breakdown(community_id, now()),
        "cross_division_stats": lambda: tracker.get_cross_division_stats(community_id, now()),
        "peak_counts": lambda: tracker.get_peak_counts(community_id, now()),
        "visitor_list (first page of 50)": lambda: tracker.get_visitor_list(community_id, now()),
        "timeline (60 minutes)": lambda: tracker.get_timeline(community_id, now()),
        "summary": lambda: tracker.get_summary(community_id, now()),
        "PING": client.ping,
    }
    for read in reads.values():
        seconds_per_call(read, WARMUP_CALLS)
    trips = {name: round_trips(read) for name, read in reads.items()}
    samples = interleaved(ROUNDS, {name: partial(seconds_per_call, read, CALLS) for name, read in reads.items()})
    seconds = {name: median(values) for name, values in samples.items()}
    summary_server_us = server_microseconds(client, lambda: [reads["summary"]() for _ in range(CALLS)])
    list_server_us = server_microseconds(
        client, lambda: [reads["visitor_list (first page of 50)"]() for _ in range(CALLS)]
    )
    if tracker.get_visitor_stats(community_id, now()).total_visitors != LIVE:
        raise RuntimeError("the live visitors went stale before the reads were measured: the run was too slow")
    client.close()

    ping_us = seconds["PING"] * 1e6
    progress(
        f"reads: PING {ping_us:.1f} us; summary {seconds['summary'] * 1e6:.1f} us, of which redis-server "
        f"{summary_server_us:.1f} us; visitor list: redis-server {list_server_us:.1f} us"
    )
    figures = [
        figure(
            f"read: summary, first after {STALE:,} went stale (prunes them; "
            f"{first_trips.count} round trip{'' if first_trips.count == 1 else 's'})",
            first_seconds * 1e6,
            "us",
            ping_seconds * 1e6,
            of="PING",
        )
    ]
    for name in reads:
        if name == "PING":
            continue
        is_summary = name == "summary"
        figures.append(
            figure(
                f"read: {name}, time per read",
                seconds[name] * 1e6,
                "us",
                ping_us,
                of="PING",
                at_most=SUMMARY_PINGS if is_summary else None,
            )
        )
        figures.append(
            figure(
                f"read: {name}, round trips",
                trips[name],
                "round trips",
                trips["PING"],
                of="PING",
                at_most=SUMMARY_ROUND_TRIPS if is_summary else None,
            )
        )
    return figures
