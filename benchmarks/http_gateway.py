"""Figure 6: beacons per second over HTTP, end to end through the local API gateway.

The gateway (`infra.gateway.serve`) runs in a thread of this process with the local run's
environment (metrics on, as in AWS and figure 2), DynamoDB on a `moto_server` of our own and the
benchmark's Redis. The load comes from another process (so its client code does not compete for
this one's GIL): a fixed number of beacons over keep-alive connections from a few threads. The
gateway runs one invocation at a time, like one Lambda execution environment, so this is one
environment's throughput over HTTP. Compared with the in-process handler of figure 2.

Anonymous beacons only (against the anonymous in-process path): a logged-in page view writes its
visit with `TransactWriteItems`, which moto_server answers more slowly with every item it holds,
past the functions' 1 s DynamoDB read timeout after a few thousand (503s, a figure of moto).
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from benchmarks.handler_ingest import Beacon, beacons, register
from benchmarks.harness import METRICS_ON, Figure, environment, figure, lambda_stdout, median, percentile, progress
from benchmarks.workload import Population, population
from community_tracker.aws.clients import aws_client
from community_tracker.settings import get_settings
from infra.aws_emulator import start_moto_server
from infra.gateway import Invoker, LocalGateway, serve
from infra.local_run import local_environment
from infra.redis_servers import free_port
from infra.tables import create_visits_table

BEACONS = 2_000
CONCURRENCY = 8
ROUNDS = 3
WARMUP_BEACONS = 200
# The per-client rate limit (600 a minute per community) applies: every beacon here comes from
# 127.0.0.1, so the load is spread over enough communities to stay under it, as real clients would.
COMMUNITIES = 16
VISITORS = 2_000


@dataclass(frozen=True)
class LoadResult:
    seconds: float
    latencies: list[float]


def _load(port: int, planned: list[Beacon]) -> LoadResult:
    """`CONCURRENCY` threads, each with one keep-alive connection, share the beacons."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(share: list[Beacon]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for beacon in share:
            started = time.perf_counter()
            connection.request(
                "POST", f"/v1/communities/{beacon.community_id}/visits", body=beacon.body, headers=beacon.headers
            )
            response = connection.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    failures.append(f"{response.status} {body[:200]!r}")
        connection.close()

    threads = [threading.Thread(target=client, args=(planned[i::CONCURRENCY],)) for i in range(CONCURRENCY)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"beacons were not counted over HTTP: {failures[:3]}")
    return LoadResult(time.perf_counter() - started, latencies)


def _load_process(port: int, orders: Connection) -> None:
    while (planned := orders.recv()) is not None:
        orders.send(_load(port, planned))


class _LoadGenerator:
    """A process of its own for the clients, so their code does not compete for the gateway's GIL.
    Spawned, not forked: this process has threads (the gateway) by now."""

    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._orders, theirs = context.Pipe()
        self._process = context.Process(target=_load_process, args=(port, theirs), daemon=True)
        self._process.start()
        theirs.close()  # so that a load process that dies is an EOFError here, not a hang

    def send(self, planned: list[Beacon]) -> LoadResult:
        self._orders.send(planned)
        result: LoadResult = self._orders.recv()
        return result

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already gone: it failed, and said why on stderr
            self._orders.send(None)
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()


def run(redis_url: str, handler_rate: float) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="vt-bench-moto-") as directory:
        emulator = start_moto_server(f"127.0.0.1:{free_port()}", Path(directory) / "moto_server.log")
        progress(f"http: moto_server pid {emulator.process.pid} on {emulator.host}")
        try:
            return _measure(redis_url, emulator.host, handler_rate)
        finally:
            emulator.stop()
            progress(f"http: moto_server pid {emulator.process.pid} stopped")


def _measure(redis_url: str, emulator_host: str, handler_rate: float) -> list[Figure]:
    port = free_port()
    with environment({**local_environment(port, redis_url, emulator_host), **METRICS_ON}), lambda_stdout():
        create_visits_table(aws_client("dynamodb"), get_settings().table_name)
        everyone = population("http", COMMUNITIES, VISITORS)
        register(everyone)
        people = Population(everyone.communities, [v for v in everyone.visitors if v.identity.user_id is None])
        gateway = LocalGateway(Invoker())
        gateway.access_log = False
        server = serve(gateway, "127.0.0.1", port)
        thread = threading.Thread(target=server.serve_forever, name="bench-gateway", daemon=True)
        thread.start()
        load = _LoadGenerator(port)
        try:
            load.send(beacons(people, WARMUP_BEACONS, "hw"))
            progress(f"http: gateway on port {port} warmed up; {ROUNDS} x {BEACONS} beacons, {CONCURRENCY} clients")
            results = [load.send(beacons(people, BEACONS, f"hr{i}")) for i in range(ROUNDS)]
        finally:
            load.close()
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
    rates = [BEACONS / result.seconds for result in results]
    latencies = [latency for result in results for latency in result.latencies]
    rate = median(rates)
    p50, p95 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.95) * 1000
    progress(f"http: {rate:,.0f} beacons/s (rounds {', '.join(f'{r:,.0f}' for r in rates)}), p50 {p50:.1f} ms")
    in_process_ms = 1000 / handler_rate
    return [
        figure(
            f"http: anonymous beacons through the local gateway, {CONCURRENCY} clients",
            rate,
            "beacons/s",
            handler_rate,
            of="in-process handler",
        ),
        figure("http: p50 latency", p50, "ms", in_process_ms, of="in-process handler time"),
        figure("http: p95 latency", p95, "ms", in_process_ms, of="in-process handler time"),
    ]
