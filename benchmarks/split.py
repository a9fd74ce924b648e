"""Figure 9: one hot community split into parts, ingest on the test cluster (3 masters).

The same workload on two communities of the cluster that `tests/conftest.py` starts
(`infra.redis_servers.start_cluster`): one in one part, one in `PARTS` parts. `PEOPLE` people with a
tab each arrive (page views), then beacons go on for `ROUNDS` rounds: in each, every person sends a
heartbeat, except one round in five, a page view (4 heartbeats per page view, as figure 8). Page
views go one at a time through `add_visitor`, as the beacon function sends them; a round of
heartbeats is one batch (a cluster client sends a script per call, as one beacon at a time would).
The two communities take each step in turn, first one then the other, so the load of this shared
machine, which drifts from one minute to the next, weighs on both alike.

What a split buys is spread: a community's beacons no longer all land on one master. So the
figures are each master's script time (`INFO commandstats`, `evalsha` usec: what redis-server
spends executing the scripts, whatever else runs on this small machine), and the share of the
busiest master:

- the busiest master's Redis time per beacon, split vs one part: the per-shard load one person
  adds, so what one community of N parts holds is about 1 / this ratio times one part's;
- client beacons per second, split vs one part: what the split costs the caller (the first page
  view of a tab in a split community asks the tab directory: beside the record when it says it
  is its tab's first, as here, then the record again; a second and third round trip when not);
- a summary read of the split community vs the one-part community (each part read once).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redis.cluster import RedisCluster

from benchmarks.harness import Figure, figure, progress, wall_ms
from community_tracker.models import Community, Visit, VisitorIdentity, anonymous_visitor_key
from community_tracker.redis.live_state import VisitorTracker, tracker_for
from infra.redis_servers import start_cluster

PEOPLE = 2_000
ROUNDS = 10
PARTS = 6  # two parts per master (keys.part_tag): more parts than masters, as a hot community may have
READS = 50


def _community(community_id: str, parts: int) -> Community:
    return Community(
        community_id=community_id, slug=community_id, name=community_id, division_id="quebec", version=1, parts=parts
    )


def _visits(community: Community) -> list[Visit]:
    return [
        Visit(
            community_id=community.community_id,
            community_division=community.division_id,
            visitor=VisitorIdentity(
                key=anonymous_visitor_key(f"{i:032x}"),
                user_id=None,
                division_id=["quebec", "laval", None][i % 3],
                is_authenticated=False,
            ),
            connection_key=f"c:split-tab-{i}",
            community_version=community.version,
            calendar=community.calendar(),
            parts=community.parts,
        )
        for i in range(PEOPLE)
    ]


def _script_usec(client: RedisCluster) -> dict[str, float]:
    """`evalsha` time per master so far (usec)."""
    stats = client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
    return {node: float(info.get("cmdstat_evalsha", {}).get("usec", 0)) for node, info in stats.items()}


def _page_views(tracker: VisitorTracker, visits: Sequence[Visit]) -> None:
    for visit in visits:
        tracker.add_visitor(visit, wall_ms())


def _heartbeats(tracker: VisitorTracker, visits: Sequence[Visit]) -> None:
    tracker.update_visitors_activity(visits, wall_ms())


def _ingest(
    client: RedisCluster, tracker: VisitorTracker, communities: Sequence[Community]
) -> list[tuple[float, float]]:
    """(busiest master's script usec, client seconds) of each community's workload, the
    communities taking each step in turn (in the other order every other step)."""
    visits = [_visits(community) for community in communities]
    # Each person's first page view comes from a new tab, and says so, as the beacon script's does
    arrivals = [[visit.model_copy(update={"new_tab": True}) for visit in of] for of in visits]
    usec: list[Counter[str]] = [Counter() for _ in communities]
    seconds = [0.0 for _ in communities]
    steps = [(_page_views, arrivals), *((_page_views if i % 5 == 4 else _heartbeats, visits) for i in range(ROUNDS))]
    for index, (step, batches) in enumerate(steps):
        order = range(len(communities)) if index % 2 == 0 else reversed(range(len(communities)))
        for at in order:
            client.config_resetstat(target_nodes=RedisCluster.PRIMARIES)
            started = time.perf_counter()
            step(tracker, batches[at])
            seconds[at] += time.perf_counter() - started
            usec[at].update(_script_usec(client))
    for community, per_master, taken in zip(communities, usec, seconds, strict=True):
        beacons = PEOPLE * len(steps)
        progress(
            f"{community.parts} part(s): {beacons:,} beacons in {taken:.1f} s; evalsha usec per master {per_master}"
        )
    return [(max(per_master.values()), taken) for per_master, taken in zip(usec, seconds, strict=True)]


def _read_seconds(call: Callable[[], Any]) -> float:
    call()
    started = time.perf_counter()
    for _ in range(READS):
        call()
    return (time.perf_counter() - started) / READS


def run(_redis_url: str) -> list[Figure]:
    cluster = start_cluster(Path(tempfile.mkdtemp(prefix="vt-bench-cluster-")))
    try:
        client = RedisCluster.from_url(cluster.url, decode_responses=True)
        tracker = tracker_for(client, window_seconds=300, dedup_seconds=600)
        whole, split = _community("bench-whole", 1), _community("bench-split", PARTS)
        for community in (whole, split):
            assert tracker.install_community(community, wall_ms())
        (busiest_whole, seconds_whole), (busiest_split, seconds_split) = _ingest(client, tracker, [whole, split])
        read_whole = _read_seconds(lambda: tracker.get_summary(whole.community_id, wall_ms(), community=whole))
        read_split = _read_seconds(lambda: tracker.get_summary(split.community_id, wall_ms(), community=split))
        client.close()
    finally:
        cluster.stop()
    beacons = PEOPLE * (1 + ROUNDS)
    per_beacon_whole, per_beacon_split = busiest_whole / beacons, busiest_split / beacons
    return [
        figure(
            f"split community on the 3-master cluster: busiest master's script time per beacon, {PARTS} parts "
            f"vs 1 part ({PEOPLE:,} people, 4 heartbeats per page view)",
            per_beacon_split,
            "us",
            per_beacon_whole,
            of="1 part",
            at_most=0.5,
        ),
        figure(
            f"split community on the 3-master cluster: client beacons per second, {PARTS} parts vs 1 part",
            beacons / seconds_split,
            "beacons/s",
            beacons / seconds_whole,
            of="1 part",
            at_least=0.8,
        ),
        figure(
            f"split community on the 3-master cluster: one summary read, {PARTS} parts vs 1 part",
            read_split * 1000,
            "ms",
            read_whole * 1000,
            of="1 part",
        ),
    ]
