"""The Lua scripts, called by SHA, with `NOSCRIPT` recovered.

Hand-written rather than redis-py's `register_script`: its `Script` re-checks `SCRIPT EXISTS` on
every pipeline execution (an extra round trip), and cluster pipelines refuse `EVALSHA` altogether.
Here the SHA is computed locally, the script is loaded the first time a node answers `NOSCRIPT`
(a new node, a failover, a `SCRIPT FLUSH`), and the call is retried once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

RedisClient = Redis | RedisCluster
Arg = str | int | float

# Scripts that work on one community start with the shared prelude (its keys and helpers).
COMMUNITY_SCRIPTS = ("record", "remove", "prune", "read_state", "list_visitors")
INDEX_SCRIPTS = ("claim_due",)


def _read(name: str) -> str:
    return (files("community_tracker") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def script_source(name: str) -> str:
    body = _read(name)
    return _read("community") + "\n" + body if name in COMMUNITY_SCRIPTS else body


class LuaScripts:
    """Runs the project's scripts on one client (a single node or a cluster)."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._shas = {
            name: hashlib.sha1(script_source(name).encode(), usedforsecurity=False).hexdigest()
            for name in COMMUNITY_SCRIPTS + INDEX_SCRIPTS
        }

    def _load(self, name: str) -> None:
        # On a cluster, SCRIPT LOAD goes to every primary.
        self._client.script_load(script_source(name))

    def call(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """One `EVALSHA`; the cluster client routes it by the keys' shared hash slot."""
        try:
            return self._client.evalsha(self._shas[name], len(keys), *keys, *args)
        except NoScriptError:
            self._load(name)
            return self._client.evalsha(self._shas[name], len(keys), *keys, *args)

    def call_many(self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Arg]]]) -> list[Any]:
        """The same script for many key sets: one pipeline on a single node; one call each on a
        cluster, whose pipelines refuse EVALSHA. Only for scripts that may safely run twice (the
        whole pipeline is replayed after a `NOSCRIPT`)."""
        if not isinstance(self._client, Redis):
            return [self.call(name, keys, args) for keys, args in calls]
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.evalsha(self._shas[name], len(keys), *keys, *args)
            results = pipe.execute(raise_on_error=False)
            if attempt == 1 and any(isinstance(result, NoScriptError) for result in results):
                self._load(name)
                continue
            for result in results:
                if isinstance(result, Exception):
                    raise result
            return results
        raise AssertionError("unreachable: the second attempt returns or raises")
