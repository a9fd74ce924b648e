"""Property-based: random page views, heartbeats and leaves of people from several tabs (so logins,
logouts and tabs moving between people), midnights, cleanups and clock moves, checked after every
step against a plain-Python model of people and connections (README, "Presence")."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from community_tracker.models import VisitorIdentity, percentage
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.live_state import VisitorTracker, tracker_for
from community_tracker.redis.scripts import RedisClient
from community_tracker.timeutil import PERIODS, bucket, iso
from tests.builders import MINUTE, SECOND, T0, anonymous, browser_of, tab, user, visit

WINDOW_MS = 5 * MINUTE
COMMUNITY_DIVISION = "quebec"
# bob appears twice: his token's division can change between two beacons
USERS = [
    user("alice", "quebec"),
    user("bob", "montreal"),
    user("bob", "laval"),
    user("carol", None),
    user("dan", "laval"),
]
BROWSERS = [anonymous("browser-1", None), anonymous("browser-2", "montreal"), anonymous("browser-3", "quebec")]
# Tabs, and the one connection of a browser that sends no tab id (a login from it moves that)
TABS = [tab("1"), tab("2"), tab("3"), *(browser_of(b) for b in BROWSERS)]
GRACE_MS = 15 * SECOND
PRESENCE_MS = 65 * SECOND
DEDUP_MS = 60 * MINUTE  # an event id is remembered this long, by the tracker's clock
EVENT_IDS = [f"evt-{i:04d}-model" for i in range(6)]


@dataclass
class ModelPerson:
    identity: VisitorIdentity
    joined: int
    pages: int
    last: int  # their last beacon
    conns: list[str] = field(default_factory=list)


@dataclass
class ModelConnection:
    person: str
    at: int  # last heard, or when it left
    open: bool


class ReferenceModel:
    """People and their connections, with no Redis (README, "Presence"): a connection is open
    until WINDOW after it was last heard, or GRACE after it left; a person is live while any of
    their connections is; present while one was heard within PRESENCE (or left within GRACE)."""

    def __init__(self) -> None:
        self.people: dict[str, ModelPerson] = {}
        self.conns: dict[str, ModelConnection] = {}
        self.peaks: dict[tuple[str, str], int] = {}
        self.seen_events: dict[str, int] = {}
        self.left_to_cleanup = 0  # event id -> when first seen, for DEDUP_MS

    def alive(self, conn: ModelConnection, now: int) -> bool:
        return now - conn.at < WINDOW_MS if conn.open else now < conn.at + GRACE_MS

    def present(self, conn: ModelConnection, now: int) -> bool:
        return now - conn.at < PRESENCE_MS if conn.open else now < conn.at + GRACE_MS

    def live_score(self, person: ModelPerson) -> int:
        return max(c.at if c.open else c.at + GRACE_MS - WINDOW_MS for c in (self.conns[k] for k in person.conns))

    def prune(self, now: int, *, reading: bool = False) -> None:
        """Drops the stale. A read prunes nothing (it discounts the stale): how many the model
        dropped at reads since the last write or cleanup (which prune everything) is what
        cleanup may still find."""
        people = len(self.people)
        self.conns = {k: c for k, c in self.conns.items() if self.alive(c, now)}
        for person in self.people.values():
            person.conns = [k for k in person.conns if k in self.conns]
        self.people = {k: p for k, p in self.people.items() if p.conns}
        self.left_to_cleanup = self.left_to_cleanup + people - len(self.people) if reading else 0

    def record(
        self,
        identity: VisitorIdentity,
        connection: str,
        now: int,
        *,
        pages: int,
        must_be_present: bool,
        event_id: str | None = None,
        alt_key: str | None = None,
    ) -> str:
        self.prune(now)
        if event_id is not None:
            if event_id in self.seen_events and now - self.seen_events[event_id] < DEDUP_MS:
                return "duplicate"
            self.seen_events[event_id] = now
        key = identity.key
        if alt_key is not None and key not in self.people and alt_key in self.people:
            key = alt_key
        owned = self.conns.get(connection)
        previous = None
        if owned is not None and owned.person != key and owned.person in self.people:
            previous = self.people[owned.person]
        others = [k for k in previous.conns if k != connection] if previous else []
        keeps_others = any(self.conns[k].open for k in others)
        existing = self.people.get(key)
        if existing is None and must_be_present and not (previous and not keeps_others):
            return "not_present"
        folded = None
        if previous is not None:
            previous.conns = others
            if not keeps_others:
                folded = self.people.pop(owned.person)  # type: ignore[union-attr]
        joined = existing.joined if existing else now
        total_pages = (existing.pages if existing else 0) + pages
        conns = [k for k in existing.conns if k != connection] if existing else []
        if folded is not None:
            joined = min(joined, folded.joined)
            total_pages += folded.pages
        self.people[key] = ModelPerson(identity, joined, total_pages, now, [*conns, connection])
        self.conns[connection] = ModelConnection(key, now, open=True)
        count = len(self.people)
        for period in PERIODS:
            bucket_key = (period, bucket(period, now).id)
            self.peaks[bucket_key] = max(self.peaks.get(bucket_key, 0), count)
        return "counted"

    def leave(self, connection: str, now: int) -> None:
        self.prune(now)
        conn = self.conns.get(connection)
        if conn is not None and conn.open:
            self.conns[connection] = ModelConnection(conn.person, now, open=False)

    def present_now(self, now: int) -> int:
        return sum(1 for p in self.people.values() if any(self.present(self.conns[k], now) for k in p.conns))


class TrackerMachine(RuleBasedStateMachine):
    tracker: VisitorTracker

    def __init__(self) -> None:
        super().__init__()
        self.community_id = f"model-{uuid.uuid4().hex[:12]}"
        self.now = T0
        self.model = ReferenceModel()

    @rule(
        identity=st.sampled_from(USERS + BROWSERS),
        connection=st.sampled_from(TABS),
        event_id=st.none() | st.sampled_from(EVENT_IDS),
        alt=st.none() | st.sampled_from(BROWSERS),
    )
    def page_view(
        self, identity: VisitorIdentity, connection: str, event_id: str | None, alt: VisitorIdentity | None
    ) -> None:
        alt_key = alt.key if alt is not None and not identity.is_authenticated else None
        outcome = self.tracker.add_visitor(
            visit(
                self.community_id,
                identity,
                COMMUNITY_DIVISION,
                event_id=event_id,
                connection=connection,
                alt_key=alt_key,
            ),
            self.now,
        )
        expected = self.model.record(
            identity, connection, self.now, pages=1, must_be_present=False, event_id=event_id, alt_key=alt_key
        )
        assert outcome.status == expected
        assert outcome.result.current_count == len(self.model.people)

    @rule(identity=st.sampled_from(USERS + BROWSERS), connection=st.sampled_from(TABS), increment=st.booleans())
    def heartbeat(self, identity: VisitorIdentity, connection: str, increment: bool) -> None:
        outcome = self.tracker.update_visitor_activity(
            visit(self.community_id, identity, COMMUNITY_DIVISION, connection=connection),
            self.now,
            increment_pages=increment,
        )
        expected = self.model.record(identity, connection, self.now, pages=int(increment), must_be_present=True)
        assert outcome.status == expected

    @rule(connection=st.sampled_from(TABS))
    def leave(self, connection: str) -> None:
        count = self.tracker.remove_visitor(self.community_id, connection, self.now)
        self.model.leave(connection, self.now)
        self.model.prune(self.now)
        assert count == len(self.model.people)

    @rule()
    def cleanup(self) -> None:
        before = len(self.model.people) + self.model.left_to_cleanup
        result = CleanupIndex(self.tracker.client, window_seconds=WINDOW_MS // 1000).cleanup_stale_visitors(
            self.community_id, self.now
        )
        self.model.prune(self.now)
        assert result.remaining == len(self.model.people)
        assert result.removed <= before

    @rule(
        step=st.sampled_from(
            [1, SECOND, 14 * SECOND, GRACE_MS, 30 * SECOND, PRESENCE_MS, MINUTE, 4 * MINUTE, WINDOW_MS - 1, WINDOW_MS]
        )
    )
    def tick(self, step: int) -> None:
        self.now += step

    @rule()
    def next_day(self) -> None:
        self.now += 24 * 60 * MINUTE

    @invariant()
    def aggregates_match_the_model(self) -> None:
        self.model.prune(self.now, reading=True)
        live = list(self.model.people.values())
        total = len(live)
        authenticated = sum(1 for v in live if v.identity.is_authenticated)
        summary = self.tracker.get_summary(self.community_id, self.now, timeline_minutes=1)

        assert summary.stats.model_dump() == {
            "total_visitors": total,
            "authenticated_visitors": authenticated,
            "anonymous_visitors": total - authenticated,
            "authenticated_percentage": percentage(authenticated, total),
            "anonymous_percentage": percentage(total - authenticated, total),
            "present_now": self.model.present_now(self.now),
            "connections": len(self.model.conns),
        }
        divisions: dict[str | None, int] = {}
        pairs: dict[str, int] = {}
        for v in live:
            division = v.identity.division_id
            divisions[division] = divisions.get(division, 0) + 1
            if division is not None and division != COMMUNITY_DIVISION:
                pairs[division] = pairs.get(division, 0) + 1
        assert {d.division_id: d.count for d in summary.divisions} == divisions
        cross = summary.cross_division
        assert cross.total_visitors == total
        assert cross.cross_division_visits == sum(pairs.values())
        assert cross.cross_division_percentage == percentage(sum(pairs.values()), total)
        assert [(p.from_division, p.to_division, p.count) for p in cross.breakdown] == sorted(
            ((d, COMMUNITY_DIVISION, n) for d, n in pairs.items()), key=lambda p: (-p[2], p[0])
        )
        expected_peaks = {period: self.model.peaks.get((period, bucket(period, self.now).id), 0) for period in PERIODS}
        assert summary.peaks.model_dump() == {
            "daily": expected_peaks["day"],
            "weekly": expected_peaks["week"],
            "monthly": expected_peaks["month"],
        }

    @invariant()
    def visitor_list_matches_the_model(self) -> None:
        self.model.prune(self.now, reading=True)
        ordered = sorted(self.model.people.items(), key=lambda kv: (self.model.live_score(kv[1]), kv[0]), reverse=True)
        expected = [person for _key, person in ordered]
        page = self.tracker.get_visitor_list(self.community_id, self.now, limit=100)
        assert [v.model_dump() for v in page.visitors] == [
            {
                "user_id": v.identity.user_id,
                "is_authenticated": v.identity.is_authenticated,
                "division_id": v.identity.division_id,
                "joined_at": iso(v.joined),
                "pages_viewed": v.pages,
                "last_activity": iso(v.last),
            }
            for v in expected
        ]
        for account in USERS:
            assert self.tracker.is_user_visiting(self.community_id, account.user_id or "", self.now) == (
                account.key in self.model.people
            )


def test_tracker_matches_the_reference_model(redis_client: RedisClient) -> None:
    tracker = tracker_for(
        redis_client,
        window_seconds=WINDOW_MS // 1000,
        dedup_seconds=DEDUP_MS // 1000,
        presence_seconds=PRESENCE_MS // 1000,
        leave_grace_seconds=GRACE_MS // 1000,
    )
    # Users are shared by every run; their per-user sets are checked through is_user_visiting,
    # which reads the community itself, so runs cannot disturb each other.
    machine = type("BoundTrackerMachine", (TrackerMachine,), {"tracker": tracker})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
