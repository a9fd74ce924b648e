"""Property-based: random visits, heartbeats, leaves, logins, cleanups and clock moves, checked
after every step against a plain-Python model of the seed's operations (README, "The seed's operations")."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from community_tracker.models import VisitorIdentity, percentage
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.live_state import VisitorTracker, tracker_for
from community_tracker.redis.scripts import RedisClient
from community_tracker.timeutil import PERIODS, bucket, iso
from tests.builders import MINUTE, SECOND, T0, anonymous, user, visit

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
BROWSERS = [anonymous("tab-1", None), anonymous("tab-2", "montreal"), anonymous("tab-3", "quebec")]
EVENT_IDS = [f"evt-{i:04d}-model" for i in range(6)]


@dataclass(frozen=True)
class ModelVisitor:
    identity: VisitorIdentity
    joined: int
    pages: int
    last: int


class ReferenceModel:
    """What the seed's operations say, with no Redis: a dict of visitors and a few counters."""

    def __init__(self) -> None:
        self.visitors: dict[str, ModelVisitor] = {}
        self.peaks: dict[tuple[str, str], int] = {}
        self.seen_events: set[str] = set()

    def prune(self, now: int) -> None:
        self.visitors = {k: v for k, v in self.visitors.items() if now - v.last < WINDOW_MS}

    def record(
        self,
        identity: VisitorIdentity,
        now: int,
        *,
        pages: int,
        must_be_present: bool,
        event_id: str | None = None,
        merge_key: str | None = None,
    ) -> str:
        self.prune(now)
        if event_id is not None:
            if event_id in self.seen_events:
                return "duplicate"
            self.seen_events.add(event_id)
        merged = None
        if merge_key is not None and merge_key != identity.key:
            merged = self.visitors.pop(merge_key, None)
        existing = self.visitors.get(identity.key)
        if existing is None and merged is None and must_be_present:
            return "not_present"
        joined = existing.joined if existing else now
        total_pages = (existing.pages if existing else 0) + pages
        if merged is not None:
            joined = min(joined, merged.joined)
            total_pages += merged.pages
        self.visitors[identity.key] = ModelVisitor(identity, joined, total_pages, now)
        count = len(self.visitors)
        for period in PERIODS:
            key = (period, bucket(period, now).id)
            self.peaks[key] = max(self.peaks.get(key, 0), count)
        return "counted"

    def leave(self, identity: VisitorIdentity, now: int) -> None:
        self.prune(now)
        self.visitors.pop(identity.key, None)


class TrackerMachine(RuleBasedStateMachine):
    tracker: VisitorTracker

    def __init__(self) -> None:
        super().__init__()
        self.community_id = f"model-{uuid.uuid4().hex[:12]}"
        self.now = T0
        self.model = ReferenceModel()

    @rule(identity=st.sampled_from(USERS + BROWSERS), event_id=st.none() | st.sampled_from(EVENT_IDS))
    def page_view(self, identity: VisitorIdentity, event_id: str | None) -> None:
        outcome = self.tracker.add_visitor(
            visit(self.community_id, identity, COMMUNITY_DIVISION, event_id=event_id), self.now
        )
        expected = self.model.record(identity, self.now, pages=1, must_be_present=False, event_id=event_id)
        assert outcome.status == expected
        assert outcome.result.current_count == len(self.model.visitors)

    @rule(identity=st.sampled_from(USERS + BROWSERS), increment=st.booleans())
    def heartbeat(self, identity: VisitorIdentity, increment: bool) -> None:
        outcome = self.tracker.update_visitor_activity(
            visit(self.community_id, identity, COMMUNITY_DIVISION), self.now, increment_pages=increment
        )
        expected = self.model.record(identity, self.now, pages=int(increment), must_be_present=True)
        assert outcome.status == expected

    @rule(identity=st.sampled_from(USERS + BROWSERS))
    def leave(self, identity: VisitorIdentity) -> None:
        count = self.tracker.remove_visitor(self.community_id, identity.key, self.now, user_id=identity.user_id)
        self.model.leave(identity, self.now)
        assert count == len(self.model.visitors)

    @rule(browser=st.sampled_from(BROWSERS), account=st.sampled_from(USERS))
    def login(self, browser: VisitorIdentity, account: VisitorIdentity) -> None:
        self.tracker.add_visitor(visit(self.community_id, account, COMMUNITY_DIVISION, merge_key=browser.key), self.now)
        self.model.record(account, self.now, pages=1, must_be_present=False, merge_key=browser.key)

    @rule()
    def cleanup(self) -> None:
        before = len(self.model.visitors)
        result = CleanupIndex(self.tracker.client, window_seconds=WINDOW_MS // 1000).cleanup_stale_visitors(
            self.community_id, self.now
        )
        self.model.prune(self.now)
        assert result.remaining == len(self.model.visitors)
        assert result.removed <= before

    @rule(step=st.sampled_from([1, SECOND, 30 * SECOND, MINUTE, 4 * MINUTE, WINDOW_MS - 1, WINDOW_MS, 6 * MINUTE]))
    def tick(self, step: int) -> None:
        self.now += step

    @rule()
    def next_day(self) -> None:
        self.now += 24 * 60 * MINUTE

    @invariant()
    def aggregates_match_the_model(self) -> None:
        self.model.prune(self.now)
        live = list(self.model.visitors.values())
        total = len(live)
        authenticated = sum(1 for v in live if v.identity.is_authenticated)
        summary = self.tracker.get_summary(self.community_id, self.now, timeline_minutes=1)

        assert summary.stats.model_dump() == {
            "total_visitors": total,
            "authenticated_visitors": authenticated,
            "anonymous_visitors": total - authenticated,
            "authenticated_percentage": percentage(authenticated, total),
            "anonymous_percentage": percentage(total - authenticated, total),
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
        self.model.prune(self.now)
        expected = sorted(self.model.visitors.values(), key=lambda v: (v.last, v.identity.key), reverse=True)
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
                account.key in self.model.visitors
            )


def test_tracker_matches_the_reference_model(redis_client: RedisClient) -> None:
    tracker = tracker_for(redis_client, window_seconds=WINDOW_MS // 1000, dedup_seconds=3600)
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
