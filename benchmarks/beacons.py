"""Figure 8: what each kind of beacon costs redis-server, in a workload with heartbeats.

10 000 live people in 4 communities (2 500 each), each with one tab, replayed for 10 simulated
minutes (the dedup window) in rounds of 30 s: in each round a person sends a heartbeat, except one
round in five, when the tab moves to the next page (a leave, then the page view on the same
connection, which cancels it): 4 heartbeats per page view. One person in a hundred leaves for good
each round and a new one arrives (an arrival is a page view of a new person and connection).

Each kind is run as one batch per round and timed by redis-server itself: `INFO commandstats`
(time spent executing the command, per call) and `INFO cpu` (the server process's CPU time,
protocol and I/O included). Neither counts the time a busy machine keeps the client waiting, so
the figures mean the same in a busy and in a quiet run, and every ratio is taken against a floor
measured on the same server in the same run:

- the floor: a `ZADD` (the person's live score) and an `HSET` (their record), pipelined, i.e. the
  least a beacon can write;
- the minimal visit: the same two commands in one `EVALSHA`, i.e. the least a scripted (atomic)
  beacon can cost.

At the end, the memory the live state takes per live person (`INFO memory`, after the keys that
would have expired in real time are dropped: the run compresses 10 minutes into seconds), and what
the measured costs imply for one Redis shard.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar, cast

from redis import Redis

from benchmarks.harness import Figure, figure, product_client, progress, wall_ms
from benchmarks.workload import Population, Visitor, population
from community_tracker.models import Visit
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.keys import RATE_COUNTER_MARGIN_MS, USER_SET_MARGIN_MS, CommunityKeys
from community_tracker.redis.live_state import VisitorTracker, tracker_for
from community_tracker.settings import Settings
from community_tracker.timeutil import MINUTE_MS

COMMUNITIES = 4
PEOPLE = 10_000  # live at any time
ROUND_MS = 30_000  # the beacon script's heartbeat interval
ROUNDS = 20  # 10 minutes: the dedup window, so the event markers reach their steady state
PAGE_EVERY = 5  # one round in five is a page view (a leave, then the page view): 4 heartbeats per page view
CHURN = 100  # one person in this many leaves for good each round, and a new one arrives
SUMMARIES = 200  # summary reads per community at the end
BATCH = 100  # beacons per pipeline
FLOOR_ROUNDS = 5
KINDS = ("arrival", "page view", "heartbeat", "leave", "summary", "cleanup")
HEARTBEAT_TARGET = 2.0  # x the floor
PAGE_VIEW_TARGET = 5.0
MEMORY_TARGET_BYTES = 1024
# A person on a community page sends a page view, 4 heartbeats and a leave per page (2.5 minutes).
BEACONS_PER_PAGE = {"page view": 1, "heartbeat": PAGE_EVERY - 1, "leave": 1}
SHARD_CPU_BUDGET = 0.5  # of the Redis thread: the rest is headroom for reads, cleanup, replication
T = TypeVar("T")
MINIMAL_VISIT = "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) return 1"


@dataclass
class ServerTime:
    """redis-server's time for one kind of call, summed over batches."""

    calls: int = 0
    command_us: float = 0.0  # INFO commandstats: executing the command
    cpu_us: float = 0.0  # INFO cpu: the whole process (protocol, I/O, event loop) while the batch ran

    @property
    def command_per_call(self) -> float:
        return self.command_us / self.calls

    @property
    def cpu_per_call(self) -> float:
        return self.cpu_us / self.calls


def _cpu_us(client: Redis) -> float:
    cpu = client.info("cpu")
    return (float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1e6


@contextmanager
def measured(client: Redis, into: ServerTime, calls: int, commands: Sequence[str] = ("evalsha",)) -> Iterator[None]:
    """Adds what redis-server spent on `commands` while the block ran (it is the server's only
    client) to `into`, as `calls` more calls: beacons, whatever number of scripts they took. (A
    command a script runs is counted in EVALSHA's time; the cleanup index's ZADD after a
    community's first beacon in a minute is left out.)"""
    client.config_resetstat()
    cpu = _cpu_us(client)
    yield
    cpu = _cpu_us(client) - cpu
    stats = client.info("commandstats")
    into.cpu_us += cpu
    into.calls += calls
    into.command_us += sum(float(stats[f"cmdstat_{c}"]["usec"]) for c in commands if f"cmdstat_{c}" in stats)


def batches(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """Beacons go in pipelines of BATCH, as the floor's commands do: both pay for their network
    reads and writes the same way, and the server's CPU time per beacon compares."""
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


@dataclass
class _Slot:
    """One place in a community, held by one person (with one tab) at a time."""

    index: int
    community: int
    visitor: Visitor
    connection: str
    generation: int = 0
    beacons: int = 0


@dataclass
class _Run:
    tracker: VisitorTracker
    people: Population
    slots: list[_Slot]
    start_ms: int
    times: dict[str, ServerTime] = field(default_factory=lambda: {kind: ServerTime() for kind in KINDS})

    def community_id(self, slot: _Slot) -> str:
        return self.people.communities[slot.community].community_id

    def visit(self, slot: _Slot) -> Visit:
        """The slot's next beacon: like the beacon script, each with an event id of its own."""
        community = self.people.communities[slot.community]
        slot.beacons += 1
        return Visit(
            community_id=community.community_id,
            community_division=community.division_id,
            visitor=slot.visitor.identity,
            event_id=f"evt-{slot.index:08d}{slot.generation:04d}{slot.beacons:012d}",  # as long as the script's
            connection_key=slot.connection,
            client_key=slot.visitor.client_key,
        )


def _tab(name: str, slot: int, generation: int) -> str:
    """A tab's connection key as the product makes it (`VisitorHasher.connection_key`: a keyed
    128-bit hex digest), so every key the state holds has its real length."""
    return f"c:{hashlib.sha256(f'{name}/{slot}/{generation}'.encode()).hexdigest()[:32]}"


def _people(name: str) -> tuple[Population, list[_Slot], list[Visitor]]:
    """PEOPLE slots, and enough spare visitors for every arrival of the run."""
    spare = PEOPLE * ROUNDS // CHURN + PEOPLE // CHURN
    everyone = population(name, COMMUNITIES, PEOPLE + spare)
    slots = [_Slot(i, i % COMMUNITIES, everyone.visitors[i], _tab(name, i, 0)) for i in range(PEOPLE)]
    return everyone, slots, everyone.visitors[PEOPLE:]


def _replay(client: Redis, run: _Run, spare: list[Visitor]) -> None:
    tracker = run.tracker
    now = run.start_ms

    def arrive(slots: Sequence[_Slot], at: int) -> None:
        with measured(client, run.times["arrival"], len(slots)):
            for batch in batches(slots):
                tracker.add_visitors([run.visit(slot) for slot in batch], at)

    arrive(run.slots, now)
    for round_index in range(1, ROUNDS + 1):
        now = run.start_ms + round_index * ROUND_MS
        churned = [s for i, s in enumerate(run.slots) if (i + round_index) % CHURN == 0]
        paging = [
            s for i, s in enumerate(run.slots) if (i + round_index) % PAGE_EVERY == 0 and (i + round_index) % CHURN
        ]
        steady = [s for i, s in enumerate(run.slots) if (i + round_index) % PAGE_EVERY]
        with measured(client, run.times["leave"], len(paging)):
            for batch in batches(paging):
                tracker.remove_visitors([(run.community_id(slot), slot.connection) for slot in batch], now)
        with measured(client, run.times["page view"], len(paging)):
            for batch in batches(paging):
                tracker.add_visitors([run.visit(slot) for slot in batch], now + 200)
        with measured(client, run.times["heartbeat"], len(steady)):
            for batch in batches(steady):
                outcomes = tracker.update_visitors_activity([run.visit(slot) for slot in batch], now + 400)
                if any(outcome.status != "counted" for outcome in outcomes):
                    raise RuntimeError("a live person's heartbeat was not counted")
        # The one who leaves for good just stops; the newcomer takes the place with a new tab.
        for slot in churned:
            slot.visitor = spare.pop()
            slot.generation += 1
            slot.connection = _tab("beacons", slot.index, slot.generation)
        arrive(churned, now + 600)
        if round_index % 5 == 0:
            progress(f"beacons: {round_index * ROUND_MS // 1000} simulated seconds replayed")


def _newest_score(client: Redis, key: str) -> float:
    newest = cast(list[tuple[str, float]], client.zrange(key, -1, -1, withscores=True))
    return newest[0][1] if newest else float("-inf")


def _expire_as_real_time_would(client: Redis, communities: Sequence[str], now_ms: int, tracker: VisitorTracker) -> int:
    """The run puts 10 minutes into a few seconds, so keys whose expiry (real seconds) would have
    come are still there: drop them as Redis would have. Returns how many."""
    doomed: list[str] = []
    # A minute's rate counters expire RATE_COUNTER_MARGIN_MS after it ends.
    oldest_rate_minute = (now_ms - RATE_COUNTER_MARGIN_MS) // MINUTE_MS
    for community_id in communities:
        tag = CommunityKeys(community_id).tag
        for key in client.scan_iter(match=f"{tag}:rates:*", count=1000):
            if int(key.rsplit(":", 1)[1]) < oldest_rate_minute:
                doomed.append(key)
        for key in client.scan_iter(match=f"{tag}:cpeople:*", count=1000):
            if _newest_score(client, key) <= now_ms - tracker.window_ms:
                doomed.append(key)
    for key in client.scan_iter(match="{u:*}:communities", count=1000):
        if _newest_score(client, key) <= now_ms - tracker.window_ms - USER_SET_MARGIN_MS:
            doomed.append(key)
    for start in range(0, len(doomed), 1000):
        client.delete(*doomed[start : start + 1000])
    return len(doomed)


@dataclass(frozen=True)
class _Floor:
    pipelined: ServerTime
    scripted: ServerTime
    bytes_per_person: float


def _memory_by_kind(client: Redis) -> dict[str, int]:
    """MEMORY USAGE of every key, summed by kind (the part of its name after the hash tag)."""
    keys = list(client.scan_iter(count=1000))
    totals: dict[str, int] = {}
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        chunk = keys[start : start + 1000]
        for key in chunk:
            pipe.memory_usage(key, samples=0)
        for key, size in zip(chunk, pipe.execute(), strict=True):
            tag, _, rest = key.partition("}:")
            kind = rest.split(":", 1)[0] if rest else tag
            kind = "user communities" if tag.startswith("{u:") else kind
            totals[kind] = totals.get(kind, 0) + int(size or 0)
    return totals


def _floor(client: Redis, communities: Sequence[str], members: int, now_ms: int) -> _Floor:
    """The floor (ZADD + HSET, pipelined) and the minimal visit (both in one EVALSHA), updating
    `members` people of sets as large as the communities' (so the sorted sets are skip lists), and
    the memory those two structures take per person."""
    minimal = client.script_load(MINIMAL_VISIT)
    record = f"{now_ms}|1|{now_ms}|0|quebec|laval|\nc:{'f' * 32}"
    floor, scripted = ServerTime(), ServerTime()
    names = [f"a:{i:032x}" for i in range(members)]
    empty = int(client.info("memory")["used_memory"])
    filled = empty
    for round_index in range(FLOOR_ROUNDS + 1):
        at = now_ms + round_index
        # Round 0 fills the sets; then both update existing members, as heartbeats do.
        into = floor if round_index else ServerTime()
        with measured(client, into, members, ("zadd", "hset")):
            for start in range(0, members, BATCH):
                pipe = client.pipeline(transaction=False)
                for i in range(start, min(start + BATCH, members)):
                    keys = CommunityKeys(f"floor-{communities[i % len(communities)]}")
                    pipe.zadd(keys.live, {names[i]: at})
                    pipe.hset(keys.visitors, names[i], record)
                pipe.execute()
        if not round_index:
            filled = int(client.info("memory")["used_memory"])
        if round_index:
            with measured(client, scripted, members):
                for start in range(0, members, BATCH):
                    pipe = client.pipeline(transaction=False)
                    for i in range(start, min(start + BATCH, members)):
                        keys = CommunityKeys(f"floor-{communities[i % len(communities)]}")
                        pipe.evalsha(minimal, 2, keys.live, keys.visitors, at, names[i], record)
                    pipe.execute()
    for community_id in communities:
        keys = CommunityKeys(f"floor-{community_id}")
        client.delete(keys.live, keys.visitors)
    return _Floor(floor, scripted, (filled - empty) / members)


def run(redis_url: str) -> list[Figure]:
    client = product_client(redis_url)
    settings = Settings()
    tracker = tracker_for(
        client,
        window_seconds=settings.active_window_seconds,
        dedup_seconds=settings.dedup_seconds,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        connection_rate_limit_per_minute=settings.connection_rate_limit_per_minute,
        anonymous_people_per_client=settings.anonymous_people_per_client,
        presence_seconds=settings.presence_seconds,
        leave_grace_seconds=settings.leave_grace_seconds,
        index_refresh_seconds=settings.index_refresh_seconds,
        index_shards=settings.index_shards,
    )
    people, slots, spare = _people("beacons")
    community_ids = [c.community_id for c in people.communities]
    # Scripts loaded (a first call answers NOSCRIPT), so the empty state's memory includes them.
    warm = people.communities[0]
    tracker.get_summary(f"{warm.community_id}-warm-up", wall_ms())
    tracker.remove_visitor(f"{warm.community_id}-warm-up", "c:none", wall_ms())
    empty = int(client.info("memory")["used_memory"])
    run = _Run(tracker, people, slots, wall_ms())
    started = time.perf_counter()
    _replay(client, run, spare)
    end_ms = run.start_ms + ROUNDS * ROUND_MS + 1000
    progress(f"beacons: {ROUNDS * ROUND_MS // 1000} s of traffic replayed in {time.perf_counter() - started:.0f} s")

    for community_id in community_ids:
        with measured(client, run.times["summary"], SUMMARIES):
            for i in range(SUMMARIES):
                tracker.get_summary(community_id, end_ms + i)
    with measured(client, run.times["cleanup"], len(community_ids)):
        results = CleanupIndex(client, window_seconds=tracker.window_ms // 1000).cleanup_communities(
            community_ids, end_ms + SUMMARIES
        )
    live = sum(r.remaining for r in results)
    dropped = _expire_as_real_time_would(client, community_ids, end_ms, tracker)
    used = int(client.info("memory")["used_memory"]) - empty
    kinds = sorted(_memory_by_kind(client).items(), key=lambda kv: -kv[1])
    progress("beacons: MEMORY USAGE per live person: " + ", ".join(f"{k} {v / live:.0f}" for k, v in kinds))
    progress(f"beacons: {live:,} live people, {dropped:,} keys past their real expiry dropped, {used:,} bytes")
    floor = _floor(client, community_ids, PEOPLE, end_ms)
    client.close()

    for kind, spent in [*run.times.items(), ("floor", floor.pipelined), ("minimal visit", floor.scripted)]:
        progress(
            f"beacons: {kind}: {spent.calls:,} calls, redis-server {spent.command_per_call:.1f} us per call "
            f"(commandstats), {spent.cpu_per_call:.1f} us CPU per call (INFO cpu)"
        )
    return _figures(run.times, floor, used, live)


def _figures(times: dict[str, ServerTime], floors: _Floor, used: int, live: int) -> list[Figure]:
    floor, minimal = floors.pipelined, floors.scripted
    floor_us = floor.command_per_call
    targets: dict[str, float | None] = {"heartbeat": HEARTBEAT_TARGET, "page view": PAGE_VIEW_TARGET}
    names = {
        "arrival": "page view of a new person (arrival)",
        "page view": "page view of a live person (next page)",
        "heartbeat": "heartbeat of a live connection",
        "leave": "leave",
        "summary": "summary read (2,500 live)",
        "cleanup": "cleanup, per community",
    }
    figures = []
    for kind in KINDS:
        spent = times[kind]
        figures.append(
            figure(
                f"redis: {names[kind]}, server time vs floor (ZADD+HSET pipelined)",
                spent.command_per_call,
                "us",
                floor_us,
                of="floor",
                at_most=targets.get(kind),
            )
        )
    for kind in ("page view", "heartbeat"):
        figures.append(
            figure(
                f"redis: {names[kind]}, server time vs minimal visit (ZADD+HSET in one EVALSHA)",
                times[kind].command_per_call,
                "us",
                minimal.command_per_call,
                of="minimal visit",
            )
        )
    per_page = {kind: times[kind] for kind in BEACONS_PER_PAGE}
    beacons = sum(BEACONS_PER_PAGE.values())
    mix_command = sum(n * per_page[k].command_per_call for k, n in BEACONS_PER_PAGE.items()) / beacons
    mix_cpu = sum(n * per_page[k].cpu_per_call for k, n in BEACONS_PER_PAGE.items()) / beacons
    figures.append(
        figure(
            "redis: beacons/s per shard (command time, whole thread), mix of 1 page view : 4 heartbeats : 1 leave",
            1e6 / mix_command,
            "beacons/s",
            1e6 / floor_us,
            of="floor",
        )
    )
    figures.append(
        figure(
            "redis: beacons/s per shard (server CPU incl. I/O, whole thread), same mix",
            1e6 / mix_cpu,
            "beacons/s",
            1e6 / floor.cpu_per_call,
            of="floor",
        )
    )
    # One person sends `beacons` beacons per page of 2.5 minutes.
    per_person_per_second = beacons / (PAGE_EVERY * ROUND_MS / 1000)
    people_per_shard = SHARD_CPU_BUDGET * 1e6 / mix_cpu / per_person_per_second
    floor_people = SHARD_CPU_BUDGET * 1e6 / floor.cpu_per_call / per_person_per_second
    figures.append(
        figure(
            f"redis: shards per million live people (server CPU, {SHARD_CPU_BUDGET:.0%} of a thread each)",
            1e6 / people_per_shard,
            "shards",
            1e6 / floor_people,
            of="floor",
        )
    )
    per_person = used / live
    figures.append(
        Figure(
            f"redis: memory per live person ({live:,} live, with heartbeats, INFO memory) vs floor's",
            round(per_person, 1),
            "bytes",
            round(floors.bytes_per_person, 1),
            round(per_person / floors.bytes_per_person, 3),
            "<= 1 KB (1,024 bytes)",
            per_person <= MEMORY_TARGET_BYTES,
        )
    )
    return figures
