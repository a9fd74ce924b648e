"""Figure 3: every stats read on one community with 100 000 live visitors, and 10 000 stale ones.

Time per read and round trips per read, against one PING (a round trip that does nothing). A read
prunes nothing (the stale are the beacons' and cleanup's) and discounts the stale by group: the
first summary after 10 000 went stale at once (a quiet spell) is compared with a warm one
(nobody stale), in redis-server's own time and in wall time, each the median of several quiet
spells (cleanup runs between them, then 10 000 more go stale).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

from redis import Redis

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
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.live_state import VisitorTracker

LIVE = 100_000
STALE = 10_000
QUIET_SPELLS = 5
FIRST_READ_TARGET = 3.0  # x a warm read
SEED_BATCH = 5_000  # page views per pipeline while seeding
WARMUP_CALLS = 20
CALLS = 30  # per read and round
ROUNDS = 7
SUMMARY_ROUND_TRIPS = 1
SUMMARY_PINGS = 3


def _seed(tracker: VisitorTracker, planned: Sequence[Visit], now_ms: int) -> None:
    for start in range(0, len(planned), SEED_BATCH):
        tracker.add_visitors(planned[start : start + SEED_BATCH], now_ms)


class _QuietSpells:
    """The first summary after each quiet spell and a warm one before it: server and wall time."""

    def __init__(self) -> None:
        self.first_server: list[float] = []
        self.warm_server: list[float] = []
        self.first_wall: list[float] = []
        self.warm_wall: list[float] = []
        self.trips = 0

    def read(self, client: Redis, call: Callable[[], object]) -> tuple[float, float]:
        """(redis-server us, wall seconds) of one read."""
        client.config_resetstat()
        with RoundTrips().counting() as trips:
            started = time.perf_counter()
            call()
            wall = time.perf_counter() - started
        self.trips = trips.count
        return float(client.info("commandstats")["cmdstat_evalsha"]["usec"]), wall

    def add(self, warm: tuple[float, float], first: tuple[float, float]) -> None:
        self.warm_server.append(warm[0])
        self.first_server.append(first[0])
        self.warm_wall.append(warm[1])
        self.first_wall.append(first[1])


def run(redis_url: str) -> list[Figure]:
    client = product_client(redis_url)
    tracker = product_tracker(client)
    people = population("reads", 1, LIVE)
    community = people.communities[0]
    community_id = community.community_id

    # Real scores, no clock tricks in Redis: the stale visitors arrive now, the live ones one window
    # and a second later (a time in the future, so calendar keys still expire after the real now).
    # The live ones are recorded first, because every write prunes what is older than its window.
    stale_at = wall_ms()
    live_at = stale_at + tracker.window_ms + 1000
    _seed(tracker, arrivals(community, people.visitors[:LIVE], batch="rl"), live_at)
    progress(f"reads: {LIVE:,} live visitors seeded in one community")

    def now() -> int:
        """The clock of the reads: it started at `live_at` when the real one was at `stale_at`."""
        return live_at + wall_ms() - stale_at

    # Warm-up on another community, so the first read below finds its script loaded (a script's
    # first call on a node costs a NOSCRIPT answer and a SCRIPT LOAD, once per node and script).
    tracker.get_summary(f"{community_id}-warm-up", now())
    cleanup = CleanupIndex(client, window_seconds=tracker.window_ms // 1000)
    spells = _QuietSpells()
    for spell in range(QUIET_SPELLS):
        cleanup.cleanup_stale_visitors(community_id, now())  # the previous spell's stale ones
        warm = spells.read(client, lambda: tracker.get_summary(community_id, now()))
        # 10 000 more people who stopped at once, long enough ago to be stale now.
        gone = population(f"reads-stale-{spell}", 1, STALE).visitors
        _seed(tracker, arrivals(community, gone, batch=f"rs{spell}"), stale_at)
        first = spells.read(client, lambda: tracker.get_summary(community_id, now()))
        spells.add(warm, first)
        stats = tracker.get_visitor_stats(community_id, now())
        if stats.total_visitors != LIVE:
            raise RuntimeError(f"expected {LIVE} live visitors, found {stats.total_visitors}")
    cleanup.cleanup_stale_visitors(community_id, now())
    first_trips = spells.trips
    progress(
        "reads: summary after a quiet spell: redis-server "
        + ", ".join(f"{f:.0f}" for f in spells.first_server)
        + " us, warm "
        + ", ".join(f"{w:.0f}" for w in spells.warm_server)
        + f" us; wall {', '.join(f'{f * 1e6:.0f}' for f in spells.first_wall)} us, warm "
        + ", ".join(f"{w * 1e6:.0f}" for w in spells.warm_wall)
        + " us"
    )

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
            f"read: summary, first after {STALE:,} went stale vs a warm one, redis-server time "
            f"({first_trips} round trip{'' if first_trips == 1 else 's'})",
            median(spells.first_server),
            "us",
            median(spells.warm_server),
            of="warm read",
            at_most=FIRST_READ_TARGET,
        ),
        figure(
            f"read: summary, first after {STALE:,} went stale vs a warm one, wall time",
            median(spells.first_wall) * 1e6,
            "us",
            median(spells.warm_wall) * 1e6,
            of="warm read",
            at_most=FIRST_READ_TARGET,
        ),
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
