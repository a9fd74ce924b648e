"""The Redis adapter's one error boundary: every driver error leaves it as `LiveStateUnavailable`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from redis.exceptions import RedisClusterException, RedisError

from community_tracker.errors import LiveStateUnavailable

P = ParamSpec("P")
R = TypeVar("R")

# A cluster that cannot be reached raises RedisClusterException, which is not a RedisError.
DRIVER_ERRORS = (RedisError, RedisClusterException)


def live_state_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Wraps a public adapter method so the rules only ever see the domain's error."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except DRIVER_ERRORS as error:
            raise LiveStateUnavailable(f"live state unavailable ({type(error).__name__})") from error

    return wrapper
