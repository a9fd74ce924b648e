"""Figure 5: cold start, the wall time of a fresh Python process that imports a handler module and
builds its clients, against a fresh process that only imports the same dependencies, bare.

Both sides get the same interpreter, flags and environment (the local run's, pointing at the
benchmark's Redis, with dummy AWS settings: building clients must not touch the network), and both
run once before timing so their `.pyc` files exist, as in a Lambda artifact with compiled bytecode.
Tracing is off there, as anywhere outside Lambda; the beacon handler is also timed with tracing on
(as under `Tracing: Active`, which loads the X-Ray SDK), with no target.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from functools import partial

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


def _seconds(code: str, env: dict[str, str]) -> float:
    """One fresh interpreter running `code`, wall time."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - started


def run(redis_url: str) -> list[Figure]:
    env = _environment(redis_url)
    programs = {
        "bare imports": (BARE_IMPORTS, env),
        "dependencies built": (DEPENDENCIES_BUILT, env),
        **{module: (_handler_code(module), env) for module in HANDLERS},
        TRACED: (_handler_code("track_visit.handler"), {**env, **TRACING_ON}),
    }
    for code, program_env in programs.values():
        _seconds(code, program_env)  # writes any missing .pyc, and warms the page cache
    samples = interleaved(
        RUNS, {name: partial(_seconds, code, program_env) for name, (code, program_env) in programs.items()}
    )
    seconds = {name: median(values) for name, values in samples.items()}
    for name, value in seconds.items():
        progress(f"cold start: {name} {value * 1000:.0f} ms")
    bare_ms = seconds["bare imports"] * 1000
    figures = [
        figure(
            f"cold start: import {module} and build its clients",
            seconds[module] * 1000,
            "ms",
            bare_ms,
            of="bare imports",
            at_most=TARGET,
        )
        for module in HANDLERS
    ]
    figures.append(
        figure(
            "cold start: import track_visit.handler and build its clients, tracing on (X-Ray SDK)",
            seconds[TRACED] * 1000,
            "ms",
            bare_ms,
            of="bare imports",
        )
    )
    figures.append(
        figure(
            "cold start: track_visit.handler vs every dependency imported and built (no code of ours)",
            seconds["track_visit.handler"] * 1000,
            "ms",
            seconds["dependencies built"] * 1000,
            of="dependencies built",
        )
    )
    return figures
