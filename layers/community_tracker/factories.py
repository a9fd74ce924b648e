"""Cached factories: each builds one process-wide object (settings, clients, stores) on first use.

Nothing is built at import time; tests change the environment and call `reset_factories()`, which
forgets every factory registered here, so no hand-kept list can miss one.

With Lambda SnapStart, an execution environment is restored from a snapshot of another's init:
`reset_factories()` runs after each restore (`register_snapstart_hook`), so Redis connections (and
their TLS sessions and cluster slot maps), cached secrets and JWKS are opened and read again by
the restored environment, and the random generator is seeded again, instead of being shared by
every environment restored from one snapshot. Before the snapshot, each function builds what its
first request would (`warm_before_snapshot`): what that loads once per process (botocore's
service models, most of a DynamoDB resource's cost) is then in the snapshot, and the rebuild
after the restore reuses it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar, cast

Factory = TypeVar("Factory", bound=Callable[..., Any])
_CACHE_CLEARS: list[Callable[[], None]] = []
_WARM_UPS: list[Callable[[], object]] = []


def cached_factory(factory: Factory) -> Factory:
    """Memoizes `factory` per argument tuple and registers it with `reset_factories`."""
    cached = lru_cache(maxsize=None)(factory)
    _CACHE_CLEARS.append(cached.cache_clear)
    return cast(Factory, cached)


def reset_factories() -> None:
    """Forgets every cached object: the next call builds from the current environment."""
    for cache_clear in _CACHE_CLEARS:
        cache_clear()


def warm_before_snapshot(*factories: Callable[[], object]) -> None:
    """Factories to build before SnapStart takes the snapshot (nothing is built elsewhere)."""
    _WARM_UPS.extend(factories)


def before_snapshot() -> None:
    """What a function does once its init is over, before Lambda snapshots it. No connection is
    opened here: the factories only build clients, which connect on first use."""
    for factory in _WARM_UPS:
        factory()


def after_restore() -> None:
    """What a restored SnapStart environment does before its first request."""
    random.seed()  # from os.urandom: restored environments must not share the snapshot's state
    reset_factories()


def register_snapstart_hook() -> bool:
    """Registers `before_snapshot` and `after_restore` with the Lambda runtime's SnapStart hooks.
    The module exists only in Lambda's Python runtime (3.12 and later): elsewhere there is nothing
    to register."""
    try:
        from snapshot_restore_py import (  # type: ignore[import-not-found]
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    return True


register_snapstart_hook()
