"""The scheduled cleanup pass (README, "Cleanup"): stale visitors out, closed peaks into DynamoDB,
and the open ones' figures checkpointed there (what a Redis restart would otherwise lose).

Walks the active-community index shard by shard, claiming due communities in batches (a claim
moves their due time one interval ahead, so two passes at once never take the same community and a
pass cut short leaves its claims due again). It stops before the Lambda deadline; the next pass
starts from the next shard (a cursor in Redis) and picks up whatever is still due, oldest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from pydantic import BaseModel

from community_tracker.errors import HistoryUnavailable
from community_tracker.models import Checkpoint, CleanupResult, Peak
from community_tracker.timeutil import MINUTE_MS


class PeakHistory(Protocol):
    def put_rollup(self, community_id: str, peak: Peak) -> None: ...


class CheckpointHistory(Protocol):
    def put_checkpoint(self, checkpoint: Checkpoint) -> None: ...


class CleanupStore(Protocol):
    """The live state as cleanup sees it (`redis.cleanup_index.CleanupIndex`)."""

    index_shards: int

    def next_cleanup_shard(self) -> int: ...
    def claim_due_communities(self, shard: int, now_ms: int, limit: int, lease_ms: int) -> list[str]: ...
    def cleanup_communities(self, community_ids: Sequence[str], now_ms: int) -> list[CleanupResult]: ...
    def mark_peak_rolled(self, community_id: str, peak: Peak) -> bool: ...
    def checkpoint_failed(self, community_id: str) -> None: ...
    def schedule_community(self, community_id: str, due_ms: int) -> None: ...
    def unindex_community(self, community_id: str) -> None: ...
    def is_index_flag_set(self, community_id: str) -> bool: ...


class CleanupReport(BaseModel):
    communities_scanned: int = 0
    stale_removed: int = 0
    communities_emptied: int = 0
    rollups_written: int = 0
    checkpoints_written: int = 0
    completed: bool = False  # False: stopped at the deadline, the next pass carries on
    duration_ms: int = 0


def run_cleanup_pass(
    index: CleanupStore,
    peaks: PeakHistory,
    *,
    now_ms: int,
    time_left_ms: Callable[[], int],
    margin_ms: int = 3000,
    batch_size: int = 200,
    interval_ms: int = MINUTE_MS,
    checkpoints: CheckpointHistory | None = None,
) -> CleanupReport:
    started = time.monotonic()
    report = CleanupReport()
    first_shard = index.next_cleanup_shard()
    for step in range(index.index_shards):
        shard = (first_shard + step) % index.index_shards
        while True:
            if time_left_ms() < margin_ms:
                report.duration_ms = int((time.monotonic() - started) * 1000)
                return report
            claimed = index.claim_due_communities(shard, now_ms, batch_size, interval_ms)
            if not claimed:
                break
            results = index.cleanup_communities(claimed, now_ms)
            for community_id, result in zip(claimed, results, strict=True):
                _settle(index, peaks, community_id, result, report)
                _checkpoint(index, checkpoints, community_id, result, report)
            if len(claimed) < batch_size:
                break
    report.completed = True
    report.duration_ms = int((time.monotonic() - started) * 1000)
    return report


def _checkpoint(
    index: CleanupStore,
    checkpoints: CheckpointHistory | None,
    community_id: str,
    result: CleanupResult,
    report: CleanupReport,
) -> None:
    if result.checkpoint is None or checkpoints is None:
        return
    try:
        checkpoints.put_checkpoint(result.checkpoint)
    except HistoryUnavailable:
        index.checkpoint_failed(community_id)  # taken again by the next pass
        raise
    report.checkpoints_written += 1


def _settle(
    index: CleanupStore, peaks: PeakHistory, community_id: str, result: CleanupResult, report: CleanupReport
) -> None:
    report.communities_scanned += 1
    report.stale_removed += result.removed
    still_waiting = False
    for peak in result.unrolled_peaks:
        # Written first, marked second: a pass that dies in between writes it again (idempotent,
        # never lowering); one a late beacon raised meanwhile waits for the next pass.
        peaks.put_rollup(community_id, peak)
        if not index.mark_peak_rolled(community_id, peak):
            still_waiting = True
        report.rollups_written += 1
    if result.remaining:
        return
    report.communities_emptied += 1
    # An empty community stays indexed until its open buckets close and every closed one is
    # written, so they get rolled up.
    if still_waiting:
        index.schedule_community(community_id, 0)
    elif result.open_bucket_end is None:
        index.unindex_community(community_id)
    else:
        index.schedule_community(community_id, result.open_bucket_end)
    # A visit may have re-registered it between the prune and the line above: keep it due then.
    if index.is_index_flag_set(community_id):
        index.schedule_community(community_id, 0)
