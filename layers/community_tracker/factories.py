"""Cached factories: each builds one process-wide object (settings, clients, stores) on first use.

Nothing is built at import time; tests change the environment and call `reset_factories()`, which
forgets every factory registered here, so no hand-kept list can miss one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar, cast

Factory = TypeVar("Factory", bound=Callable[..., Any])
_CACHE_CLEARS: list[Callable[[], None]] = []


def cached_factory(factory: Factory) -> Factory:
    """Memoizes `factory` per argument tuple and registers it with `reset_factories`."""
    cached = lru_cache(maxsize=None)(factory)
    _CACHE_CLEARS.append(cached.cache_clear)
    return cast(Factory, cached)


def reset_factories() -> None:
    """Forgets every cached object: the next call builds from the current environment."""
    for cache_clear in _CACHE_CLEARS:
        cache_clear()
