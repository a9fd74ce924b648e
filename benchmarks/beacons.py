"""Figure 8: what each kind of beacon costs redis-server, in a workload with heartbeats.

10 000 live people in 4 communities (2 500 each), each with one tab, replayed for 10 simulated
minutes (the dedup window) in rounds of 30 s: in each round a person sends a heartbeat, except one
round in five, when the tab moves to the next page (a leave, then the page view on the same
connection, which cancels it): 4 heartbeats per page view. One person in a hundred leaves for good
each round and a new one arrives (an arrival is a page view of a new person and connection).

The state is built in pipelines of BATCH beacons (fast), but in every round a sample of each kind
is sent as the functions send them, one request per beacon (the Lambda handling a beacon makes
one call), and timed by redis-server itself: `INFO cpu` (the server process's CPU time, reading
the request, running it and writing the answer) and `INFO commandstats` (running it only). Neither
counts the time a busy machine keeps the client waiting, and every ratio is taken against floors
sampled the same way in the same rounds, so the figures mean the same in a busy and in a quiet run:

- the floor: a `ZADD` (the person's live score) and an `HSET` (their record) in one request, i.e.
  the least a beacon can write;
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
SAMPLE = 250  # beacons of each kind (and floor requests) sent one request each, per round
SUMMARIES = 200  # summary reads per community at the end
BATCH = 100  # beacons per pipeline, outside the samples
KINDS = ("arrival", "page view", "heartbeat", "leave", "summary", "cleanup")
FLOORS = ("floor", "minimal visit")
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
    """redis-server's time for one kind of call, summed over samples."""

    calls: int = 0
    command_us: float = 0.0  # INFO commandstats: executing the command
    cpu_us: float = 0.0  # INFO cpu: the whole process (protocol, I/O, event loop) while the sample ran

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
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def sampled(items: Sequence[T], round_index: int) -> tuple[list[T], list[T]]:
    """(the round's sample, the rest): every n-th item from an offset that moves each round."""
    if len(items) <= SAMPLE:
        return list(items), []
    step = len(items) // SAMPLE
    chosen = set(range(round_index % step, step * SAMPLE, step))
    return [items[i] for i in sorted(chosen)], [item for i, item in enumerate(items) if i not in chosen]


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
    client: Redis
    tracker: VisitorTracker
    people: Population
    slots: list[_Slot]
    start_ms: int
    floor: _FloorSets
    times: dict[str, ServerTime] = field(default_factory=lambda: {k: ServerTime() for k in (*KINDS, *FLOORS)})

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


@dataclass(frozen=True)
class _FloorSets:
    """The floor's own live sets and records, as large as the communities' (so the sorted sets are
    skip lists), updated in place by every floor request, as heartbeats update theirs."""

    keys: list[CommunityKeys]
    names: list[str]
    record: str
    minimal_sha: str
    bytes_per_person: float

    @classmethod
    def build(cls, client: Redis, communities: Sequence[str], now_ms: int) -> _FloorSets:
        keys = [CommunityKeys(f"floor-{community_id}") for community_id in communities]
        names = [f"a:{i:032x}" for i in range(PEOPLE)]
        record = f"{now_ms}|1|{now_ms}|0|quebec|laval|\nc:{'f' * 32}"
        empty = int(client.info("memory")["used_memory"])
        for batch in batches(range(PEOPLE)):
            pipe = client.pipeline(transaction=False)
            for i in batch:
                pipe.zadd(keys[i % len(keys)].live, {names[i]: now_ms})
                pipe.hset(keys[i % len(keys)].visitors, names[i], record)
            pipe.execute()
        filled = int(client.info("memory")["used_memory"])
        minimal = client.script_load(MINIMAL_VISIT)
        return cls(keys, names, record, minimal, (filled - empty) / PEOPLE)

    def sample(self, run: _Run, round_index: int, at_ms: int) -> None:
        """SAMPLE floor requests and SAMPLE minimal visits, one request each."""
        client = run.client
        chosen, _ = sampled(range(PEOPLE), round_index)
        with measured(client, run.times["floor"], len(chosen), ("zadd", "hset")):
            for i in chosen:
                keys = self.keys[i % len(self.keys)]
                pipe = client.pipeline(transaction=False)
                pipe.zadd(keys.live, {self.names[i]: at_ms})
                pipe.hset(keys.visitors, self.names[i], self.record)
                pipe.execute()
        with measured(client, run.times["minimal visit"], len(chosen)):
            for i in chosen:
                keys = self.keys[i % len(self.keys)]
                client.evalsha(self.minimal_sha, 2, keys.live, keys.visitors, at_ms, self.names[i], self.record)


def _replay(run: _Run, spare: list[Visitor]) -> None:
    client, tracker = run.client, run.tracker

    def page_views(slots: Sequence[_Slot], at: int, kind: str, round_index: int) -> None:
        sample, rest = sampled(slots, round_index)
        with measured(client, run.times[kind], len(sample)):
            for slot in sample:
                tracker.add_visitor(run.visit(slot), at)
        for batch in batches(rest):
            tracker.add_visitors([run.visit(slot) for slot in batch], at)

    def heartbeats(slots: Sequence[_Slot], at: int, round_index: int) -> None:
        sample, rest = sampled(slots, round_index)
        with measured(client, run.times["heartbeat"], len(sample)):
            outcomes = [tracker.update_visitor_activity(run.visit(slot), at) for slot in sample]
        for batch in batches(rest):
            outcomes += tracker.update_visitors_activity([run.visit(slot) for slot in batch], at)
        if any(outcome.status != "counted" for outcome in outcomes):
            raise RuntimeError("a live person's heartbeat was not counted")

    def leaves(slots: Sequence[_Slot], at: int, round_index: int) -> None:
        sample, rest = sampled(slots, round_index)
        with measured(client, run.times["leave"], len(sample)):
            for slot in sample:
                tracker.remove_visitor(run.community_id(slot), slot.connection, at)
        for batch in batches(rest):
            tracker.remove_visitors([(run.community_id(slot), slot.connection) for slot in batch], at)

    for batch in batches(run.slots):
        tracker.add_visitors([run.visit(slot) for slot in batch], run.start_ms)
    for round_index in range(1, ROUNDS + 1):
        now = run.start_ms + round_index * ROUND_MS
        churned = [s for i, s in enumerate(run.slots) if (i + round_index) % CHURN == 0]
        paging = [
            s for i, s in enumerate(run.slots) if (i + round_index) % PAGE_EVERY == 0 and (i + round_index) % CHURN
        ]
        steady = [s for i, s in enumerate(run.slots) if (i + round_index) % PAGE_EVERY]
        leaves(paging, now, round_index)
        page_views(paging, now + 200, "page view", round_index)
        heartbeats(steady, now + 400, round_index)
        # The one who leaves for good just stops; the newcomer takes the place with a new tab.
        for slot in churned:
            slot.visitor = spare.pop()
            slot.generation += 1
            slot.connection = _tab("beacons", slot.index, slot.generation)
        page_views(churned, now + 600, "arrival", round_index)
        run.floor.sample(run, round_index, now + 800)
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


def _memory_by_kind(client: Redis) -> dict[str, int]:
    """MEMORY USAGE of every key of the live state, summed by kind (the part of its name after the
    hash tag); the floor's own sets are left out."""
    keys = [key for key in client.scan_iter(count=1000) if not key.startswith("{c:floor-")]
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
    start_ms = wall_ms()
    floor = _FloorSets.build(client, community_ids, start_ms)
    # The floor's sets stay as large as they are (updated in place), so what memory grows by from
    # here is the live state.
    empty = int(client.info("memory")["used_memory"])
    run = _Run(client, tracker, people, slots, start_ms, floor)
    started = time.perf_counter()
    _replay(run, spare)
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
    for keys in floor.keys:
        client.delete(keys.live, keys.visitors)
    client.close()

    for kind, spent in run.times.items():
        progress(
            f"beacons: {kind}: {spent.calls:,} calls, redis-server {spent.command_per_call:.1f} us per call "
            f"(commandstats), {spent.cpu_per_call:.1f} us CPU per call (INFO cpu)"
        )
    memory = _Memory(used / live, dict(kinds), live, floor.bytes_per_person)
    return _figures(run.times, memory)


@dataclass(frozen=True)
class _Memory:
    per_person: float
    by_kind: dict[str, int]
    live: int
    floor_per_person: float


NAMES = {
    "arrival": "page view of a new person (arrival)",
    "page view": "page view of a live person (next page)",
    "heartbeat": "heartbeat of a live connection",
    "leave": "leave",
    "summary": "summary read (2,500 live)",
    "cleanup": "cleanup, per community",
}


def _figures(times: dict[str, ServerTime], memory: _Memory) -> list[Figure]:
    floor, minimal = times["floor"], times["minimal visit"]
    targets: dict[str, float | None] = {"heartbeat": HEARTBEAT_TARGET, "page view": PAGE_VIEW_TARGET}
    figures = [
        figure(
            f"redis: {NAMES[kind]}, server CPU per request vs floor (ZADD+HSET, one request)",
            times[kind].cpu_per_call,
            "us",
            floor.cpu_per_call,
            of="floor",
            at_most=targets.get(kind),
        )
        for kind in KINDS
    ]
    for kind in ("page view", "heartbeat"):
        figures.append(
            figure(
                f"redis: {NAMES[kind]}, running it only (commandstats) vs the floor's commands",
                times[kind].command_per_call,
                "us",
                floor.command_per_call,
                of="floor",
            )
        )
        figures.append(
            figure(
                f"redis: {NAMES[kind]}, server CPU per request vs minimal visit (ZADD+HSET in one EVALSHA)",
                times[kind].cpu_per_call,
                "us",
                minimal.cpu_per_call,
                of="minimal visit",
            )
        )
    beacons = sum(BEACONS_PER_PAGE.values())
    mix_cpu = sum(n * times[k].cpu_per_call for k, n in BEACONS_PER_PAGE.items()) / beacons
    figures.append(
        figure(
            "redis: beacons/s per shard (server CPU, whole thread), mix of 1 page view : 4 heartbeats : 1 leave",
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
    figures.append(
        Figure(
            f"redis: memory per live person ({memory.live:,} live, with heartbeats, INFO memory) vs floor's",
            round(memory.per_person, 1),
            "bytes",
            round(memory.floor_per_person, 1),
            round(memory.per_person / memory.floor_per_person, 3),
            "<= 1 KB (1,024 bytes)",
            memory.per_person <= MEMORY_TARGET_BYTES,
        )
    )
    # The largest part, and the one that depends on a setting: a page view's event id is kept for
    # VT_DEDUP_SECONDS (10 minutes), so a person holds one per page viewed in that time.
    figures.append(
        figure(
            "redis: memory per live person, of which the dedup markers (event ids of the last 10 minutes)",
            memory.by_kind.get("events", 0) / memory.live,
            "bytes",
            memory.per_person,
            of="all",
        )
    )
    return figures
