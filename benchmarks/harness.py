"""What every figure shares: the result row, timing helpers, round-trip counting, the Redis server.

Each figure is a ratio against a baseline measured in the same run on the same Redis, because
absolute numbers on a small shared machine move from one minute to the next; ratios move less
(RESULTS.md says how much).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from redis import Redis
from redis.connection import AbstractConnection

from community_tracker.factories import reset_factories
from community_tracker.redis.client import create_redis_client
from community_tracker.redis.live_state import VisitorTracker, tracker_for
from community_tracker.settings import Settings
from infra.redis_servers import RedisProcess, start_redis

_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One line on stderr, so stdout carries only the table."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def wall_ms() -> int:
    """The tracker's `now_ms`: the real clock, since calendar keys expire at absolute times."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Figure:
    """One row of the table and of latest.json."""

    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str | None
    met: bool | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def figure(
    name: str,
    value: float,
    unit: str,
    baseline: float,
    *,
    of: str = "baseline",
    at_least: float | None = None,
    at_most: float | None = None,
) -> Figure:
    """A figure as a ratio `value / baseline`, with an optional target on that ratio."""
    ratio = value / baseline
    target: str | None = None
    met: bool | None = None
    if at_least is not None:
        target, met = f">= {at_least:g}x {of}", ratio >= at_least
    elif at_most is not None:
        target, met = f"<= {at_most:g}x {of}", ratio <= at_most
    return Figure(name, round(value, 3), unit, round(baseline, 3), round(ratio, 3), target, met)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: every value reported was observed)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def interleaved(rounds: int, contenders: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Runs every contender once per round, rotating the order, and collects what each returns.

    Interleaving spreads the machine's slow and fast moments over all contenders instead of
    letting one of them take a whole slow stretch.
    """
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(contenders[name]())
    return samples


def seconds_per_call(call: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls


class RoundTrips:
    """Counts round trips to Redis: every request a connection writes (a command, or a whole
    pipeline) goes through `send_packed_command` once, including redis-py's health-check PINGs."""

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def counting(self) -> Iterator[RoundTrips]:
        original: Callable[..., None] = AbstractConnection.send_packed_command

        def counted(connection: AbstractConnection, command: Any, check_health: bool = True) -> None:
            self.count += 1
            original(connection, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
        try:
            yield self
        finally:
            AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def round_trips(call: Callable[[], object]) -> int:
    counter = RoundTrips()
    with counter.counting():
        call()
    return counter.count


@contextmanager
def lambda_stdout() -> Iterator[None]:
    """Handlers print one EMF metrics line per invocation, which Lambda ships to CloudWatch Logs:
    here it goes to /dev/null (written all the same, so its cost is measured), keeping stdout for
    the table. Powertools' warning for an invocation without metrics is silenced, as in the tests."""
    with open(os.devnull, "w") as null, redirect_stdout(null), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
        yield


def server_microseconds(client: Redis, call: Callable[[], object], command: str = "evalsha") -> float:
    """Mean time redis-server itself spent per `command` during `call` (INFO commandstats), which
    tells the server's share of a figure from the client's and the machine's."""
    client.config_resetstat()
    call()
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return float(stats.get("usec_per_call", 0.0))


# The functions' 1 s read timeout is a limit for a network; on this VM, busy, one pipeline of the
# set-up (5 000 page views) or of a cleanup pass (200 communities) can take longer than that.
SOCKET_TIMEOUT_SECONDS = 30.0


def product_client(url: str) -> Redis:
    """A single-node client built as the functions build theirs (retries, hiredis), but for its
    read timeout (SOCKET_TIMEOUT_SECONDS)."""
    client = create_redis_client(Settings(redis_url=url, redis_socket_timeout_seconds=SOCKET_TIMEOUT_SECONDS))
    assert isinstance(client, Redis)
    return client


def product_tracker(client: Redis) -> VisitorTracker:
    """A tracker with the functions' default settings (window, dedup, rate limit, index shards),
    as `get_tracker()` builds it, on a client of the benchmark's own."""
    settings = Settings()
    return tracker_for(
        client,
        window_seconds=settings.active_window_seconds,
        dedup_seconds=settings.dedup_seconds,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        index_shards=settings.index_shards,
    )


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ (and the layer's factories rebuilt from them), then the previous
    environment back, so one figure's settings never leak into the next."""
    saved = dict(os.environ)
    os.environ.update(values)
    reset_factories()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_factories()


METRICS_ON = {"POWERTOOLS_METRICS_DISABLED": "false"}


def function_environment(redis_url: str) -> dict[str, str]:
    """What the functions get: logs at WARNING, tracing off (as anywhere outside Lambda), metrics on
    as in AWS (see `lambda_stdout`), fake AWS credentials so nothing can reach a real account, and
    the read timeout of `product_client`."""
    return {
        **METRICS_ON,
        "VT_REDIS_URL": redis_url,
        "VT_REDIS_CLUSTER": "false",
        "VT_REDIS_SOCKET_TIMEOUT_SECONDS": str(SOCKET_TIMEOUT_SECONDS),
        "VT_TABLE_NAME": "bench-visits",
        "VT_USE_LOCALSTACK": "false",
        "POWERTOOLS_SERVICE_NAME": "community-visitor-tracker-bench",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }


@contextmanager
def redis_server() -> Iterator[RedisProcess]:
    """A redis-server of our own on a free loopback port, stopped by its own pid at the end."""
    with tempfile.TemporaryDirectory(prefix="vt-bench-redis-") as directory:
        server = start_redis(Path(directory))
        progress(f"redis-server pid {server.process.pid} on port {server.port}")
        try:
            yield server
        finally:
            server.stop()
            progress(f"redis-server pid {server.process.pid} stopped")
