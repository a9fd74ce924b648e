"""Figure 4: stale visitors removed per second by the scheduled cleanup pass, with exact counts.

10 000 communities of 100 visitors, half of them stale. Compared with the floor: a bare
`ZREMRANGEBYSCORE` on the same live sets, pipelined in batches of the same size as the pass's
claims. The floor only drops members; the pass also takes back each one's contribution to every
derived count (auth/anon, divisions, pairs) and removes its record, atomically per community.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from redis import Redis

from benchmarks.harness import (
    Figure,
    figure,
    interleaved,
    median,
    product_client,
    product_tracker,
    progress,
    server_microseconds,
    wall_ms,
)
from benchmarks.workload import arrivals, population
from community_tracker.cleanup import run_cleanup_pass
from community_tracker.models import Peak
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.keys import CommunityKeys, index_key, index_shard
from community_tracker.redis.live_state import VisitorTracker
from community_tracker.settings import Settings

COMMUNITIES = 10_000
VISITORS = 100  # per community, half of them stale
ROUNDS = 5
RESTORE_CHUNK = 500  # communities per pipeline while restoring


class _NoPeakHistory:
    """The clones have no peak keys; the source's buckets are open unless a run crosses midnight
    UTC, in which case its closed day is rolled up once: nothing to store here either way."""

    def put_rollup(self, community_id: str, peak: Peak) -> None:  # noqa: ARG002 (the store's signature)
        return None


class _Communities:
    """One community seeded through the tracker, copied byte for byte (DUMP/RESTORE) to the others,
    and restored to that state before every measurement."""

    def __init__(self, client: Redis, raw: Redis, tracker: VisitorTracker) -> None:
        self._raw = raw
        self._tracker = tracker
        people = population("clean", COMMUNITIES, VISITORS)
        self.ids = [c.community_id for c in people.communities]
        source = people.communities[0]
        half = VISITORS // 2
        # Real scores: half arrive now, half one window and a second later (the future, so calendar
        # keys still expire after the real now). The later ones are recorded first, since every
        # write prunes what is older than its window.
        self.stale_at = wall_ms()
        self.live_at = self.stale_at + tracker.window_ms + 1000
        tracker.add_visitors(arrivals(source, people.visitors[:half], batch="cl"), self.live_at)
        tracker.add_visitors(arrivals(source, people.visitors[half:], batch="cs"), self.stale_at)
        # The live state and what the scripts derive from its tag (each group's sorted set and the
        # set of groups), by the part of their name after the tag.
        keys = CommunityKeys(source.community_id)
        groups = [keys.group(g) for g in cast(set[str], client.smembers(keys.groups))]
        self._suffixes = [key[len(keys.tag) :] for key in [*keys.state, keys.groups, *groups]]
        self._dumps = [raw.dump(keys.tag + suffix) for suffix in self._suffixes]
        self._client = client

    def now(self) -> int:
        """The cleanup's clock: it started at `live_at` when the real one was at `stale_at`."""
        return self.live_at + wall_ms() - self.stale_at

    def restore(self) -> None:
        """Every community back to 50 live and 50 stale visitors, due for cleanup now."""
        for start in range(0, len(self.ids), RESTORE_CHUNK):
            pipe = self._raw.pipeline(transaction=False)
            for community_id in self.ids[start : start + RESTORE_CHUNK]:
                tag = CommunityKeys(community_id).tag
                for suffix, dumped in zip(self._suffixes, self._dumps, strict=True):
                    if dumped is not None:
                        pipe.restore(tag + suffix, 0, dumped, replace=True)
                pipe.zadd(index_key(index_shard(community_id, Settings().index_shards)), {community_id: 0})
            pipe.execute()

    def check_exact(self) -> None:
        """Every community has exactly its live half left, and its derived counts say the same."""
        half = VISITORS // 2
        pipe = self._client.pipeline(transaction=False)
        for community_id in self.ids:
            keys = CommunityKeys(community_id)
            pipe.zcard(keys.live)
            pipe.hlen(keys.visitors)
            pipe.hmget(keys.counts, "auth", "anon")
        answers = pipe.execute()
        for i, community_id in enumerate(self.ids):
            live, records, (auth, anon) = answers[3 * i : 3 * i + 3]
            if not live == records == int(auth or 0) + int(anon or 0) == half:
                raise RuntimeError(f"{community_id}: {live} live, {records} records, {auth}+{anon} counted")


def _bare_removal(client: Redis, ids: Sequence[str], cutoff_ms: int, batch: int) -> int:
    removed = 0
    for start in range(0, len(ids), batch):
        pipe = client.pipeline(transaction=False)
        for community_id in ids[start : start + batch]:
            pipe.zremrangebyscore(CommunityKeys(community_id).live, "-inf", cutoff_ms)
        removed += sum(pipe.execute())
    return removed


def run(redis_url: str) -> list[Figure]:
    client = product_client(redis_url)
    raw = Redis.from_url(redis_url)  # DUMP payloads are bytes
    tracker = product_tracker(client)
    batch = Settings().cleanup_batch_size
    communities = _Communities(client, raw, tracker)
    expected = COMMUNITIES * VISITORS // 2

    def cleanup() -> float:
        communities.restore()
        started = time.perf_counter()
        report = run_cleanup_pass(
            CleanupIndex(client, window_seconds=tracker.window_ms // 1000),
            _NoPeakHistory(),
            now_ms=communities.now(),
            time_left_ms=lambda: 600_000,
            batch_size=batch,
        )
        elapsed = time.perf_counter() - started
        if not (report.completed and report.communities_scanned == COMMUNITIES and report.stale_removed == expected):
            raise RuntimeError(f"cleanup pass was not exact: {report}")
        communities.check_exact()
        return report.stale_removed / elapsed

    def floor() -> float:
        communities.restore()
        started = time.perf_counter()
        removed = _bare_removal(client, communities.ids, communities.now() - tracker.window_ms, batch)
        elapsed = time.perf_counter() - started
        if removed != expected:
            raise RuntimeError(f"ZREMRANGEBYSCORE removed {removed}, expected {expected}")
        return removed / elapsed

    # Warm-up (scripts loaded, index keys created, code paths hot), which also says how much of
    # each is redis-server's own time.
    prune_us = server_microseconds(client, cleanup)
    zrem_us = server_microseconds(client, floor, "zremrangebyscore")
    progress(
        f"cleanup: redis-server time per community: prune.lua {prune_us:.1f} us, ZREMRANGEBYSCORE {zrem_us:.1f} us"
    )
    progress(f"cleanup: warm-up done ({COMMUNITIES:,} communities x {VISITORS} visitors, half stale)")
    samples = interleaved(ROUNDS, {"cleanup": cleanup, "floor": floor})
    if communities.now() - communities.live_at >= tracker.window_ms:
        raise RuntimeError("the live half went stale during the figure: the run was too slow")
    for name, values in samples.items():
        progress(f"cleanup: {name} {median(values):,.0f} removed/s (samples {', '.join(f'{v:,.0f}' for v in values)})")
    client.close()
    raw.close()
    return [
        figure(
            f"cleanup: stale visitors removed ({COMMUNITIES:,} communities x {VISITORS}, half stale)",
            median(samples["cleanup"]),
            "visitors/s",
            median(samples["floor"]),
            of="bare ZREMRANGEBYSCORE",
            at_least=0.25,
        )
    ]
