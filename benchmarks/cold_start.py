"""Figure 5: cold start, the CPU time (user + system) of a fresh Python process that imports a handler
module and builds its clients, against a fresh process that only imports the same dependencies,
bare. CPU time, not wall time: an init does no I/O but reading cached files, so its wall time is
its CPU time on a CPU of its own, and on this shared machine the wall time also counts the time
other work keeps it waiting (the beacon handler's wall time is shown too, without a target).

Both sides get the same interpreter, flags and environment (the local run's, pointing at the
benchmark's Redis, with dummy AWS settings: building clients must not touch the network), and both
run once before timing so their `.pyc` files exist, as in a Lambda artifact with compiled bytecode.
Tracing is off there, as anywhere outside Lambda; the beacon handler is also timed with tracing on
(as under `Tracing: Active`, which loads the X-Ray SDK), with no target.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from functools import partial
from typing import NamedTuple

from benchmarks.harness import Figure, figure, function_environment, interleaved, median, progress

RUNS = 7
HANDLERS = ("track_visit.handler", "stats.handler", "cleanup.handler")
BARE_IMPORTS = (
    "from aws_lambda_powertools import Logger, Metrics, Tracer\n"
    "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver\n"
    "import pydantic, redis, boto3, jwt\n"
)
# Every runtime dependency imported, and built as the handlers build them: Powertools' three
# objects (a bare Tracer() loads the X-Ray SDK, even with tracing off) and a DynamoDB resource
# (botocore loads the service model). What the handlers take beyond this is our own code.
DEPENDENCIES_BUILT = BARE_IMPORTS + "Logger(); Metrics(); Tracer()\nboto3.resource('dynamodb')\n"
TARGET = 1.3  # x the bare imports
TRACED = "track_visit.handler, tracing on"
# What Lambda sets when the function has `Tracing: Active` (Powertools then keeps the X-Ray SDK).
TRACING_ON = {"POWERTOOLS_TRACE_DISABLED": "false", "LAMBDA_TASK_ROOT": "/var/task"}


def _handler_code(module: str) -> str:
    return (
        f"import {module}\n"
        "from community_tracker.aws.stores import get_stores\n"
        "from community_tracker.redis.live_state import get_tracker\n"
        "get_tracker()\n"
        "get_stores()\n"
    )


def _environment(redis_url: str) -> dict[str, str]:
    inherited = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return {**inherited, **function_environment(redis_url)}


class _Spent(NamedTuple):
    cpu_s: float
    wall_s: float


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _spent(code: str, env: dict[str, str]) -> _Spent:
    """One fresh interpreter running `code`: its CPU time and the wall time."""
    cpu, started = _children_cpu_s(), time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return _Spent(_children_cpu_s() - cpu, time.perf_counter() - started)


def run(redis_url: str) -> list[Figure]:
    env = _environment(redis_url)
    programs = {
        "bare imports": (BARE_IMPORTS, env),
        "dependencies built": (DEPENDENCIES_BUILT, env),
        **{module: (_handler_code(module), env) for module in HANDLERS},
        TRACED: (_handler_code("track_visit.handler"), {**env, **TRACING_ON}),
    }
    for code, program_env in programs.values():
        _spent(code, program_env)  # writes any missing .pyc, and warms the page cache
    walls: dict[str, list[float]] = {name: [] for name in programs}

    def cpu_s(name: str, code: str, program_env: dict[str, str]) -> float:
        spent = _spent(code, program_env)
        walls[name].append(spent.wall_s)
        return spent.cpu_s

    samples = interleaved(
        RUNS, {name: partial(cpu_s, name, code, program_env) for name, (code, program_env) in programs.items()}
    )
    cpu_ms = {name: median(values) * 1000 for name, values in samples.items()}
    wall_ms = {name: median(values) * 1000 for name, values in walls.items()}
    for name in programs:
        progress(f"cold start: {name} {cpu_ms[name]:.0f} ms CPU, {wall_ms[name]:.0f} ms wall")
    figures = [
        figure(
            f"cold start: import {module} and build its clients, CPU time",
            cpu_ms[module],
            "ms",
            cpu_ms["bare imports"],
            of="bare imports",
            at_most=TARGET,
        )
        for module in HANDLERS
    ]
    figures.append(
        figure(
            "cold start: import track_visit.handler and build its clients, wall time",
            wall_ms["track_visit.handler"],
            "ms",
            wall_ms["bare imports"],
            of="bare imports",
        )
    )
    figures.append(
        figure(
            "cold start: import track_visit.handler and build its clients, tracing on (X-Ray SDK), CPU time",
            cpu_ms[TRACED],
            "ms",
            cpu_ms["bare imports"],
            of="bare imports",
        )
    )
    figures.append(
        figure(
            "cold start: track_visit.handler vs every dependency imported and built (no code of ours), CPU time",
            cpu_ms["track_visit.handler"],
            "ms",
            cpu_ms["dependencies built"],
            of="dependencies built",
        )
    )
    return figures
