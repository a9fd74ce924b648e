"""Live push, issue #19: one pusher at a time through a lease the holder renews each tick. A holder
that died stops blocking once its lease expires; an invocation that finds the lease held waits for
it instead of idling its minute away (real Redis, on one node and on the cluster)."""

from __future__ import annotations

from collections.abc import Callable

from community_tracker.live import Lease, LivePusher, PushReport, run_pusher
from community_tracker.redis.keys import PUSHER_LOCK_KEY
from community_tracker.redis.live_state import get_tracker
from community_tracker.redis.scripts import RedisClient
from community_tracker.redis.subscriptions import ConnectionRegistry
from tests.builders import SECOND, T0, anonymous, browser_of, visit
from tests.component.live.doubles import RecordingPoster

LEASE_MS = 5 * SECOND


class FakeTime:
    """The run's clock, moved by its sleeps; `at_sleep[n]` runs after the n-th sleep (1-based)."""

    def __init__(self, start: int, deadline: int) -> None:
        self.ms = start
        self.deadline = deadline
        self.sleeps = 0
        self.at_sleep: dict[int, Callable[[], None]] = {}

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.ms += int(seconds * 1000) or SECOND
        if self.sleeps in self.at_sleep:
            self.at_sleep[self.sleeps]()

    def run(self, pusher: LivePusher) -> PushReport:
        return run_pusher(
            pusher,
            clock=lambda: self.ms,
            time_left_ms=lambda: self.deadline - self.ms,
            lease_ms=LEASE_MS,
            sleep=self.sleep,
        )


def pushed_at(poster: RecordingPoster, connection_id: str) -> list[str]:
    return [m["timestamp"] for m in poster.sent.get(connection_id, []) if m["type"] == "visitor_count_changed"]


def totals(poster: RecordingPoster, connection_id: str) -> list[int]:
    return [m["total"] for m in poster.sent.get(connection_id, []) if m["type"] == "visitor_count_changed"]


def test_the_lease_is_held_renewed_refused_expired_and_released(redis_client: RedisClient) -> None:
    redis_client.delete(PUSHER_LOCK_KEY)
    registry = ConnectionRegistry(redis_client)

    assert registry.hold_pusher_lease("one", T0, LEASE_MS) is Lease.TAKEN
    assert registry.hold_pusher_lease("two", T0 + SECOND, LEASE_MS) is Lease.REFUSED
    assert registry.hold_pusher_lease("one", T0 + 4 * SECOND, LEASE_MS) is Lease.HELD  # renewed to T0 + 9 s
    assert registry.hold_pusher_lease("two", T0 + 8 * SECOND, LEASE_MS) is Lease.REFUSED
    assert registry.hold_pusher_lease("two", T0 + 9 * SECOND, LEASE_MS) is Lease.TAKEN  # "one" stopped renewing
    assert registry.hold_pusher_lease("one", T0 + 10 * SECOND, LEASE_MS) is Lease.REFUSED
    registry.release_pusher_lease("one")  # not its lease: nothing happens
    assert registry.hold_pusher_lease("one", T0 + 10 * SECOND, LEASE_MS) is Lease.REFUSED
    registry.release_pusher_lease("two")
    assert registry.hold_pusher_lease("one", T0 + 10 * SECOND, LEASE_MS) is Lease.TAKEN


def test_a_dead_holder_blocks_only_until_its_lease_expires(community_id: str, registry: ConnectionRegistry) -> None:
    connection_id = f"{community_id}-c"
    registry.subscribe(connection_id, community_id, T0)
    get_tracker().add_visitor(visit(community_id, anonymous("s")), T0)
    assert registry.hold_pusher_lease("died-holding-it", T0, LEASE_MS) is Lease.TAKEN  # and never renews it
    poster = RecordingPoster()
    time = FakeTime(T0 + SECOND, deadline=T0 + 12 * SECOND)

    report = time.run(LivePusher(get_tracker(), registry, poster))

    assert pushed_at(poster, connection_id) == ["2031-03-05T12:00:05.000Z"]  # the first tick after T0 + 5 s
    assert report.waited == 4  # T0 + 1 s .. T0 + 4 s
    assert registry.hold_pusher_lease("next", time.ms, LEASE_MS) is Lease.TAKEN  # released at the end


def test_an_invocation_that_finds_the_lease_held_waits_for_its_release(
    community_id: str, registry: ConnectionRegistry
) -> None:
    connection_id = f"{community_id}-c"
    registry.subscribe(connection_id, community_id, T0)
    get_tracker().add_visitor(visit(community_id, anonymous("s")), T0)
    assert registry.hold_pusher_lease("previous-invocation", T0, 60 * SECOND) is Lease.TAKEN
    poster = RecordingPoster()
    time = FakeTime(T0 + SECOND, deadline=T0 + 10 * SECOND)
    time.at_sleep[3] = lambda: registry.release_pusher_lease("previous-invocation")  # it reached its own deadline

    report = time.run(LivePusher(get_tracker(), registry, poster))

    assert pushed_at(poster, connection_id) == ["2031-03-05T12:00:04.000Z"]  # the tick right after the release
    assert report.waited == 3


def test_the_holder_renews_its_lease_every_tick(community_id: str, registry: ConnectionRegistry) -> None:
    registry.subscribe(f"{community_id}-c", community_id, T0)
    time = FakeTime(T0, deadline=T0 + 20 * SECOND)
    contender: list[Lease] = []
    for n in range(1, 18):
        time.at_sleep[n] = lambda: contender.append(registry.hold_pusher_lease("contender", time.ms, LEASE_MS))

    report = time.run(LivePusher(get_tracker(), registry, RecordingPoster()))

    assert report.waited == 0
    assert set(contender) == {Lease.REFUSED}  # 18 s of running on a 5 s lease: never expired
    assert registry.hold_pusher_lease("contender", time.ms, LEASE_MS) is Lease.TAKEN


def test_a_pusher_that_gets_the_lease_back_after_another_sends_everything_again(
    community_id: str, registry: ConnectionRegistry
) -> None:
    connection_id = f"{community_id}-c"
    tracker = get_tracker()
    registry.subscribe(connection_id, community_id, T0)
    tracker.add_visitor(visit(community_id, anonymous("s1")), T0)
    first_poster, other_poster = RecordingPoster(), RecordingPoster()
    first, other = LivePusher(tracker, registry, first_poster), LivePusher(tracker, registry, other_poster)

    FakeTime(T0 + SECOND, deadline=T0 + 4 * SECOND).run(first)  # pushes 1, then releases the lease
    tracker.add_visitor(visit(community_id, anonymous("s2")), T0 + 4 * SECOND)
    assert registry.hold_pusher_lease("other", T0 + 5 * SECOND, LEASE_MS) is Lease.TAKEN
    other.tick(T0 + 5 * SECOND)  # pushes 2, then dies holding the lease (no release)
    tracker.remove_visitor(community_id, browser_of(anonymous("s2")), T0 + 5500)  # gone after the grace
    after_grace = T0 + 5500 + tracker.grace_ms
    FakeTime(after_grace + SECOND, deadline=after_grace + 4 * SECOND).run(first)  # back to 1, sent before

    assert totals(other_poster, connection_id) == [2]
    assert totals(first_poster, connection_id) == [1, 1]  # not stuck at the other's 2


def test_a_pusher_that_kept_the_lease_to_itself_sends_nothing_new(
    community_id: str, registry: ConnectionRegistry
) -> None:
    connection_id = f"{community_id}-c"
    registry.subscribe(connection_id, community_id, T0)
    get_tracker().add_visitor(visit(community_id, anonymous("s1")), T0)
    poster = RecordingPoster()
    pusher = LivePusher(get_tracker(), registry, poster)

    FakeTime(T0 + SECOND, deadline=T0 + 5 * SECOND).run(pusher)  # one invocation
    FakeTime(T0 + 5 * SECOND, deadline=T0 + 9 * SECOND).run(pusher)  # the next, in the same environment

    assert totals(poster, connection_id) == [1]  # not sent again every minute to every subscriber
