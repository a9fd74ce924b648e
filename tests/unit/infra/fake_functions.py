"""Lambda handlers for the gateway tests: one that answers, one that fails."""

from __future__ import annotations

import json
import os
from typing import Any


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
