"""SnapStart: before the snapshot, what a function's first request would build is built; after a
restore, every cached factory builds again (new Redis connections, secrets read again); both
registered through the runtime's `snapshot_restore_py` when it is there."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

import pytest

import community_tracker.factories as factories


def test_the_hook_is_registered_and_resets_every_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[Callable[[], None]] = []
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_before_snapshot = lambda _hook: None  # type: ignore[attr-defined]
    runtime.register_after_restore = registered.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    builds: list[object] = []

    @factories.cached_factory
    def client() -> object:
        builds.append(object())
        return builds[-1]

    first = client()
    assert client() is first

    # When the layer registers its hook (as it does on import) in a runtime that has the hooks
    assert factories.register_snapstart_hook() is True

    # Then its after-restore hook is registered, and running it builds every factory again
    assert registered == [factories.after_restore]
    registered[0]()
    assert client() is not first
    assert len(builds) == 2


def test_nothing_is_registered_outside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # `import` raises ImportError

    assert factories.register_snapstart_hook() is False


def test_what_is_warmed_before_the_snapshot_is_built_then(monkeypatch: pytest.MonkeyPatch) -> None:
    before: list[Callable[[], None]] = []
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_before_snapshot = before.append  # type: ignore[attr-defined]
    runtime.register_after_restore = lambda _hook: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    monkeypatch.setattr(factories, "_WARM_UPS", [])
    builds: list[object] = []

    @factories.cached_factory
    def resource() -> object:
        builds.append(object())
        return builds[-1]

    # Given a function that warms its resource before the snapshot, in a runtime with the hooks
    factories.warm_before_snapshot(resource)
    assert factories.register_snapstart_hook() is True
    assert builds == []

    # When Lambda runs the before-snapshot hook
    assert before == [factories.before_snapshot]
    before[0]()

    # Then the resource is built, once, and the first request finds it
    assert len(builds) == 1
    assert resource() is builds[0]
