"""Figure 1: page views recorded per second through `VisitorTracker.add_visitor`.

Compared, in the same run and on the same Redis, with
- the seed's design (seed_baseline.py: about 14 round trips per page view), and
- the ceiling: a no-op `EVALSHA` from the same kind of client, i.e. one round trip doing nothing,
with 1 and with 2 client processes (each its own client; the figure is their total throughput).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection

from benchmarks.harness import (
    Figure,
    figure,
    interleaved,
    median,
    product_client,
    product_tracker,
    progress,
    round_trips,
    server_microseconds,
    wall_ms,
)
from benchmarks.seed_baseline import SeedVisitorTracker
from benchmarks.workload import population, visits

KINDS = ("seed", "tracker", "ceiling")
PROCESSES = (1, 2)
ROUNDS = 9
RUN_SECONDS = 0.8  # per measurement; many short interleaved rounds ride out bursts of other load
WARMUP_PAGE_VIEWS = 600
COMMUNITIES = 500  # per process
VISITORS = 30_000  # per process, 30 % of them logged in


@dataclass(frozen=True)
class IngestResult:
    figures: list[Figure]
    tracker_rate: float  # one process: what figure 2 compares the full handler with


def _worker(index: int, redis_url: str, orders: Connection) -> None:
    """One client process. Per order: prepare the page views (not timed), say ready, wait for
    "go", then record them and answer with its start and end times (a system-wide clock)."""
    client = product_client(redis_url)
    tracker = product_tracker(client)
    seed = SeedVisitorTracker(client)
    noop = client.script_load("return 1")
    people = population(f"w{index}", COMMUNITIES, VISITORS)
    batch = 0
    while (order := orders.recv()) is not None:
        kind, count = order
        batch += 1
        planned = visits(people, count, batch=f"w{index}b{batch}") if kind != "ceiling" else []
        orders.send("ready")
        orders.recv()
        started = time.perf_counter()
        if kind == "tracker":
            for visit in planned:
                tracker.add_visitor(visit, wall_ms())
        elif kind == "seed":
            for visit in planned:
                seed.add_visitor(visit, wall_ms())
        else:
            for _ in range(count):
                client.evalsha(noop, 0)
        orders.send((started, time.perf_counter()))
    client.close()


class _Workers:
    """Two client processes, forked once (before any thread exists in this process) and reused."""

    def __init__(self, redis_url: str) -> None:
        context = multiprocessing.get_context("fork")
        self._ends: list[Connection] = []
        self._processes = []
        for index in range(max(PROCESSES)):
            ours, theirs = context.Pipe()
            process = context.Process(target=_worker, args=(index, redis_url, theirs), daemon=True)
            process.start()
            theirs.close()  # so that a worker that dies is an EOFError here, not a hang
            self._ends.append(ours)
            self._processes.append(process)

    def rate(self, kind: str, processes: int, count: int) -> float:
        """Page views per second of `processes` workers recording `count` each, all at once."""
        ends = self._ends[:processes]
        for end in ends:
            end.send((kind, count))
        for end in ends:
            end.recv()
        for end in ends:
            end.send("go")
        spans: list[tuple[float, float]] = [end.recv() for end in ends]
        return processes * count / (max(stop for _, stop in spans) - min(start for start, _ in spans))

    def close(self) -> None:
        for end in self._ends:
            with contextlib.suppress(OSError):  # already gone: it failed, and said why on stderr
                end.send(None)
        for process in self._processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()


@dataclass(frozen=True)
class _Probe:
    seed_round_trips: float  # per page view
    tracker_round_trips: float
    script_microseconds: float  # redis-server's own time per record.lua call


def _probe(redis_url: str) -> _Probe:
    """Measured, not assumed: round trips per page view of both designs, and the server's time per
    call of the tracker's script."""
    client = product_client(redis_url)
    people = population("probe", COMMUNITIES, VISITORS)
    planned = visits(people, 400, batch="probe")
    seed, tracker = SeedVisitorTracker(client), product_tracker(client)
    # Warm-up, uncounted: loads the scripts, and registers every community in the cleanup index
    # (a community's first visit costs one more round trip, once).
    tracker.add_visitors(visits(people, 4000, batch="probewarm"), wall_ms())
    seed_trips = round_trips(lambda: [seed.add_visitor(v, wall_ms()) for v in planned])
    tracker_trips = round_trips(lambda: [tracker.add_visitor(v, wall_ms()) for v in planned])
    again = visits(people, 2000, batch="probetime")
    script = server_microseconds(client, lambda: [tracker.add_visitor(v, wall_ms()) for v in again])
    client.close()
    return _Probe(seed_trips / len(planned), tracker_trips / len(planned), script)


def run(redis_url: str) -> IngestResult:
    probe = _probe(redis_url)
    progress(
        f"ingest: round trips per page view: seed design {probe.seed_round_trips:.2f}, tracker "
        f"{probe.tracker_round_trips:.2f}; redis-server time per record.lua call {probe.script_microseconds:.1f} us"
    )
    workers = _Workers(redis_url)
    try:
        counts: dict[str, int] = {}
        for kind in KINDS:
            # Warm-up (scripts, connections, caches) of both processes, which also sizes the
            # measurements: from the better of two one-process rates, so that a burst of other load
            # during warm-up cannot make them too short.
            workers.rate(kind, max(PROCESSES), WARMUP_PAGE_VIEWS)
            first = workers.rate(kind, 1, WARMUP_PAGE_VIEWS)
            second = workers.rate(kind, 1, max(WARMUP_PAGE_VIEWS, int(first * RUN_SECONDS / 2)))
            counts[kind] = max(WARMUP_PAGE_VIEWS, int(max(first, second) * RUN_SECONDS))
            progress(f"ingest: warm-up of {kind} done, {counts[kind]} page views per measurement")
        samples = interleaved(
            ROUNDS,
            {
                f"{kind}/{processes}": partial(workers.rate, kind, processes, counts[kind])
                for kind in KINDS
                for processes in PROCESSES
            },
        )
    finally:
        workers.close()
    rates = {name: median(values) for name, values in samples.items()}
    for name, values in samples.items():
        progress(f"ingest: {name} {rates[name]:,.0f}/s (samples {', '.join(f'{v:,.0f}' for v in values)})")
    figures = [
        figure(
            "ingest: round trips per page view, tracker vs seed design",
            probe.tracker_round_trips,
            "round trips",
            probe.seed_round_trips,
            of="seed design",
        )
    ]
    for processes in PROCESSES:
        tracker = rates[f"tracker/{processes}"]
        label = f"{processes} process{'es' if processes > 1 else ''}"
        figures.append(
            figure(
                f"ingest: tracker vs seed design, {label}",
                tracker,
                "visits/s",
                rates[f"seed/{processes}"],
                of="seed design",
                at_least=10,
            )
        )
        figures.append(
            figure(
                f"ingest: tracker vs no-op EVALSHA ceiling, {label}",
                tracker,
                "visits/s",
                rates[f"ceiling/{processes}"],
                of="ceiling",
                at_least=0.75,
            )
        )
    return IngestResult(figures, rates["tracker/1"])
