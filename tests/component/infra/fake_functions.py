"""Lambda handlers for the gateway tests: one that answers, some that fail, one that hangs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

HANG_LIMIT_SECONDS = 20.0


def answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Echoes what the function was given, so a test sees the event the gateway built."""
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"event": event, "pid": os.getpid()}),
    }


class HandlerFailure(RuntimeError):
    pass


def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise HandlerFailure("the dependency said no (fake_functions.fail)")


def fail_naming_the_client(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An error whose message carries the client's address, as careless code might write."""
    raise HandlerFailure(f"could not serve {event['requestContext']['http']['sourceIp']}")


def hang(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stands for a hung dependency: waits until the file named by the `release` query parameter
    exists (or HANG_LIMIT_SECONDS, so that no test can hang for ever), then answers."""
    release = Path((event.get("queryStringParameters") or {}).get("release", "/nonexistent"))
    deadline = time.monotonic() + HANG_LIMIT_SECONDS
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"statusCode": 200, "body": "released"}
