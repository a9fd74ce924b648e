"""Property-based: random page views, heartbeats and leaves of people from several tabs (so logins,
logouts and tabs moving between people), midnights, cleanups and clock moves, checked after every
step against a plain-Python model of people and connections (README, "Presence"), and of the
community's calendar in its own time zone (README, "Calendar buckets"): each run's community lives
in one of several zones, and its clock starts just before a local midnight that ends a 23- or
25-hour day, a week, a month or a year, so runs cross them. The model finds its buckets' bounds
itself, by bisecting the instants whose local date (zoneinfo) changes.

The same machine runs against a community in one part and one split into four (README, "One
community in N parts"), on a single node and on the 3-master cluster: every read answers what the
one unsplit model says, logins and logouts move tabs between people of different parts, and a
person live under yesterday's key may be in another part than today's key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from redis.cluster import RedisCluster

from community_tracker.models import (
    CONTEXT_DIMENSIONS,
    CONTEXT_OTHER,
    Community,
    ContextCounts,
    PageContext,
    Visit,
    VisitorIdentity,
    live_context,
    percentage,
)
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.keys import parts_keys
from community_tracker.redis.live_state import VisitorTracker, tracker_for
from community_tracker.redis.scripts import RedisClient
from community_tracker.timeutil import PERIODS, Period, iso
from tests.builders import MINUTE, SECOND, T0, anonymous, browser_of, tab, user, visit

WINDOW_MS = 5 * MINUTE
COMMUNITY_DIVISION = "quebec"  # where a run's community starts; an admin may move it
DIVISIONS = ["quebec", "montreal", "laval", None]
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
EVENT_IDS = [f"evt-{i:04d}-model" for i in range(6)]  # each is one identity's (a retry is its person's)
# Live context: values per dimension ('' referrer: from the site itself, which keeps the person's),
# more of them than CONTEXT_CAP, so dimensions fill up and count new values under "(other)".
CONTEXT_CAP = 3
# A split community caps each part's values on its own (README, "Live context"): the model keeps
# one cap for the community, so it checks the cap unsplit, and a split one with a cap never reached.
SPLIT_CONTEXT_CAP = 1000
CONTEXT_TOP = 2
CONTEXT_DEFAULTS = ("(unknown)", "(direct)", "other", "unknown")
PAGE_CONTEXTS = st.builds(
    PageContext,
    page=st.sampled_from(["/", "/events", "/a/b", "/members", "/x%7C"]),
    referrer=st.sampled_from(["", "", "(direct)", "google.com", "news.example", "t.co", "bing.com"]),
    device=st.sampled_from(["desktop", "mobile", "tablet", "other"]),
    country=st.sampled_from(["unknown", "CA", "FR", "US", "JP"]),
)
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# Local dates whose midnight a run starts just before: the day each zone moves its clocks (and the
# day after), a Sunday (ISO week end), a month end and a year end.
ZONE_DATES = {
    "UTC": [date(2031, 3, 9), date(2031, 3, 31), date(2031, 12, 31)],
    "America/Montreal": [date(2031, 3, 8), date(2031, 3, 9), date(2031, 11, 1), date(2031, 11, 2), date(2031, 3, 31)],
    "Asia/Kolkata": [date(2031, 3, 9), date(2031, 3, 31), date(2031, 12, 31)],
    "Pacific/Chatham": [date(2031, 9, 27), date(2031, 9, 28), date(2031, 4, 5), date(2031, 4, 6), date(2031, 8, 31)],
}


def local_date(ms: int, zone: str) -> date:
    return datetime.fromtimestamp(ms // 1000, tz=ZoneInfo(zone)).date()


def label_of(period: Period, ms: int, zone: str) -> str:
    day = local_date(ms, zone)
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def start_of(period: Period, ms: int, zone: str) -> int:
    """The first instant (to the millisecond) with the label `ms` has: found by bisection."""
    wanted = label_of(period, ms, zone)
    low, high = ms - 40 * DAY, ms  # low has another label, high this one
    while high - low > 1:
        middle = (low + high) // 2
        if label_of(period, middle, zone) == wanted:
            high = middle
        else:
            low = middle
    return high


@dataclass
class ModelPerson:
    identity: VisitorIdentity
    joined: int
    pages: int
    last: int  # their last beacon
    conns: list[str] = field(default_factory=list)
    context: tuple[str, ...] = CONTEXT_DEFAULTS  # the value each dimension counts them under


@dataclass
class ModelConnection:
    person: str
    at: int  # last heard, or when it left
    open: bool


class ReferenceModel:
    """People and their connections, with no Redis (README, "Presence"): a connection is open
    until WINDOW after it was last heard, or GRACE after it left; a person is live while any of
    their connections is; present while one was heard within PRESENCE (or left within GRACE)."""

    def __init__(self, zone: str = "UTC", *, parts: int = 1) -> None:
        self.zone = zone
        self.parts = parts
        self.context_cap = CONTEXT_CAP if parts == 1 else SPLIT_CONTEXT_CAP
        self.people: dict[str, ModelPerson] = {}
        self.conns: dict[str, ModelConnection] = {}
        self.peaks: dict[tuple[str, str], int] = {}
        self.seen_events: dict[str, int] = {}  # event id -> when first seen, for DEDUP_MS
        self.left_to_cleanup = 0
        self.uniques: dict[tuple[str, str], set[str]] = {}
        self.open: dict[Period, str] = {}

    def open_buckets(self, now: int) -> None:
        """What every beacon, aggregate read and cleanup does first (README, "Calendar buckets"):
        a bucket that started since the last one opened begins with everyone live at its start,
        as its first peak and its first unique visitors."""
        for period in PERIODS:
            label = label_of(period, now, self.zone)
            if self.open.get(period) == label:
                continue
            self.open[period] = label
            start = start_of(period, now, self.zone)
            live_then = [
                key for key, p in self.people.items() if any(self.alive(self.conns[k], start) for k in p.conns)
            ]
            self.peaks[(period, label)] = max(self.peaks.get((period, label), 0), len(live_then))
            self.uniques.setdefault((period, label), set()).update(live_then)

    def current(self, period: Period, now: int) -> tuple[str, str]:
        return (period, label_of(period, now, self.zone))

    def alive(self, conn: ModelConnection, now: int) -> bool:
        return now - conn.at < WINDOW_MS if conn.open else now < conn.at + GRACE_MS

    def present(self, conn: ModelConnection, now: int) -> bool:
        return now - conn.at < PRESENCE_MS if conn.open else now < conn.at + GRACE_MS

    def live_score(self, person: ModelPerson) -> int:
        return max(c.at if c.open else c.at + GRACE_MS - WINDOW_MS for c in (self.conns[k] for k in person.conns))

    def prune(self, now: int, *, reading: bool = False, everyone: bool = False) -> None:
        """Drops the stale. A read prunes nothing (it discounts the stale): how many the model
        dropped at reads since the last write or cleanup (which prune everything) is what
        cleanup may still find. In a split community a write prunes its own part only: then
        only cleanup (`everyone`) does."""
        people = len(self.people)
        self.conns = {k: c for k, c in self.conns.items() if self.alive(c, now)}
        for person in self.people.values():
            person.conns = [k for k in person.conns if k in self.conns]
        self.people = {k: p for k, p in self.people.items() if p.conns}
        left = reading or (self.parts > 1 and not everyone)
        self.left_to_cleanup = self.left_to_cleanup + people - len(self.people) if left else 0

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
        context: PageContext | None = None,
    ) -> str:
        self.open_buckets(now)
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
        counted = self.counted_context(
            key,
            existing,
            folded,
            (context.page, context.referrer, context.device, context.country) if context else None,
        )
        self.people[key] = ModelPerson(identity, joined, total_pages, now, [*conns, connection], counted)
        self.conns[connection] = ModelConnection(key, now, open=True)
        count = len(self.people)
        for period in PERIODS:
            bucket_key = self.current(period, now)
            self.peaks[bucket_key] = max(self.peaks.get(bucket_key, 0), count)
            if existing is None:  # the beacon that makes a person makes them a unique visitor
                self.uniques.setdefault(bucket_key, set()).add(key)
        return "counted"

    def counted_context(
        self,
        key: str,
        existing: ModelPerson | None,
        folded: ModelPerson | None,
        wanted: tuple[str, ...] | None,
    ) -> tuple[str, ...]:
        """The values a beacon leaves a person counted under: what the page view says, else
        (a heartbeat, a referrer from the site) what they had, what the tab's folded person had,
        or the default; a value new to a dimension that holds CONTEXT_CAP others is "(other)"."""
        counted = []
        for i in range(len(CONTEXT_DIMENSIONS)):
            had = existing.context[i] if existing else None
            value = wanted[i] if wanted else ""
            if value == "":
                value = had or (folded.context[i] if folded else CONTEXT_DEFAULTS[i])
            held = {p.context[i] for k, p in self.people.items() if k != key}
            if value != had and value not in held and len(held - {CONTEXT_OTHER}) >= self.context_cap:
                value = CONTEXT_OTHER
            counted.append(value)
        return tuple(counted)

    def context_counts(self) -> ContextCounts:
        counts: ContextCounts = {d: {} for d in CONTEXT_DIMENSIONS}
        for person in self.people.values():
            for dimension, value in zip(CONTEXT_DIMENSIONS, person.context, strict=True):
                counts[dimension][value] = counts[dimension].get(value, 0) + 1
        return counts

    def leave(self, connection: str, now: int) -> None:
        self.prune(now)
        conn = self.conns.get(connection)
        if conn is not None and conn.open:
            self.conns[connection] = ModelConnection(conn.person, now, open=False)

    def present_now(self, now: int) -> int:
        return sum(1 for p in self.people.values() if any(self.present(self.conns[k], now) for k in p.conns))


class TrackerMachine(RuleBasedStateMachine):
    client: RedisClient
    tracker: VisitorTracker
    parts: int = 1

    def __init__(self) -> None:
        super().__init__()
        self.community_id = f"model-{uuid.uuid4().hex[:12]}"
        self.now = T0
        self.model = ReferenceModel()

    @initialize(
        place=st.sampled_from([(zone, day) for zone, days in ZONE_DATES.items() for day in days]),
        before=st.sampled_from([1, SECOND, 30 * SECOND, 4 * MINUTE, WINDOW_MS, 20 * MINUTE]),
    )
    def start_before_a_local_midnight(self, place: tuple[str, date], before: int) -> None:
        zone, day = place
        following = day + timedelta(days=1)
        midnight = start_of(
            "day",
            int(datetime(following.year, following.month, following.day, 12, tzinfo=ZoneInfo(zone)).timestamp() * 1000),
            zone,
        )
        self.now = midnight - before
        self.model = ReferenceModel(zone, parts=self.parts)
        self.tracker = tracker_for(
            self.client,
            window_seconds=WINDOW_MS // 1000,
            dedup_seconds=DEDUP_MS // 1000,
            presence_seconds=PRESENCE_MS // 1000,
            leave_grace_seconds=GRACE_MS // 1000,
            default_time_zone=zone,
            context_values=self.model.context_cap,
            context_top=CONTEXT_TOP,
        )
        self.community = Community(
            community_id=self.community_id,
            slug=self.community_id,
            name="model",
            division_id=COMMUNITY_DIVISION,
            time_zone=zone,
            version=1,
            parts=self.parts,
        )
        assert self.tracker.install_community(self.community, self.now)

    def visit(self, identity: VisitorIdentity, **details: Any) -> Visit:
        """A beacon as the beacon function makes it: by the community's registration it read."""
        return visit(self.community_id, identity, self.community.division_id, **details).model_copy(
            update={"community_version": self.community.version, "calendar": self.community.calendar()}
        )

    @rule(division=st.sampled_from(DIVISIONS))
    def move_division(self, division: str | None) -> None:
        """An admin moves the community: everyone live counts against the new division at once."""
        self.community = self.community.model_copy(
            update={"division_id": division, "version": self.community.version + 1}
        )
        assert self.tracker.install_community(self.community, self.now)
        self.model.prune(self.now)

    @rule(
        identity=st.sampled_from(USERS + BROWSERS),
        connection=st.sampled_from(TABS),
        event_id=st.none() | st.sampled_from(EVENT_IDS),
        alt=st.none() | st.sampled_from(BROWSERS),
        context=st.none() | PAGE_CONTEXTS,
        new_tab=st.booleans(),
    )
    def page_view(
        self,
        identity: VisitorIdentity,
        connection: str,
        event_id: str | None,
        alt: VisitorIdentity | None,
        context: PageContext | None,
        new_tab: bool,
    ) -> None:
        alt_key = alt.key if alt is not None and not identity.is_authenticated else None
        # A retry is the same person's beacon again, with the same keys: in a split community an
        # event id is remembered in the part the beacon went to (README, "One community in N parts").
        event_id = f"{event_id}-{identity.key[-12:].replace(':', '-')}" if event_id and alt_key is None else None
        beacon = self.visit(identity, event_id=event_id, connection=connection, alt_key=alt_key)
        # `new_tab` is the page's hint, true or not (a tab the model knows): the answers are the same
        outcome = self.tracker.add_visitor(beacon.model_copy(update={"context": context, "new_tab": new_tab}), self.now)
        expected = self.model.record(
            identity,
            connection,
            self.now,
            pages=1,
            must_be_present=False,
            event_id=event_id,
            alt_key=alt_key,
            context=context,
        )
        assert outcome.status == expected
        if self.parts == 1:  # a split community's beacon answers the count of its person's part
            assert outcome.result.current_count == len(self.model.people)

    @rule(identity=st.sampled_from(USERS + BROWSERS), connection=st.sampled_from(TABS), increment=st.booleans())
    def heartbeat(self, identity: VisitorIdentity, connection: str, increment: bool) -> None:
        outcome = self.tracker.update_visitor_activity(
            self.visit(identity, connection=connection),
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
        if self.parts == 1:
            assert count == len(self.model.people)

    @rule()
    def cleanup(self) -> None:
        before = len(self.model.people) + self.model.left_to_cleanup
        index = CleanupIndex(
            self.tracker.client,
            window_seconds=WINDOW_MS // 1000,
            default_time_zone=self.model.zone,
            checkpoint_seconds=60,
        )
        result = index.cleanup_stale_visitors(self.community_id, self.now)
        self.model.open_buckets(self.now)
        self.model.prune(self.now, everyone=True)
        # A checkpoint holds the open buckets' figures as they are
        for saved in result.checkpoint.buckets if result.checkpoint is not None else ():
            assert (saved.period, saved.bucket) == self.model.current(saved.period, self.now)
            assert saved.count == self.model.peaks.get((saved.period, saved.bucket), 0)
            assert saved.sketch is not None or not self.model.uniques.get((saved.period, saved.bucket))
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

    @rule(after=st.sampled_from([-1, 0, 1, SECOND]))
    def to_the_next_local_midnight(self, after: int) -> None:
        following = local_date(self.now, self.model.zone) + timedelta(days=1)
        noon = datetime(following.year, following.month, following.day, 12, tzinfo=ZoneInfo(self.model.zone))
        self.now = max(self.now, start_of("day", int(noon.timestamp() * 1000), self.model.zone) + after)

    @invariant()
    def aggregates_match_the_model(self) -> None:
        self.model.open_buckets(self.now)
        self.model.prune(self.now, reading=True)
        live = list(self.model.people.values())
        total = len(live)
        authenticated = sum(1 for v in live if v.identity.is_authenticated)
        summary = self.tracker.get_summary(self.community_id, self.now, timeline_minutes=1, community=self.community)
        community_division = self.community.division_id

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
            if division is not None and community_division is not None and division != community_division:
                pairs[division] = pairs.get(division, 0) + 1
        assert {d.division_id: d.count for d in summary.divisions} == divisions
        cross = summary.cross_division
        assert cross.total_visitors == total
        assert cross.cross_division_visits == sum(pairs.values())
        assert cross.cross_division_percentage == percentage(sum(pairs.values()), total)
        assert [(p.from_division, p.to_division, p.count) for p in cross.breakdown] == sorted(
            ((d, community_division, n) for d, n in pairs.items()), key=lambda p: (-p[2], p[0])
        )
        current = {period: self.model.current(period, self.now) for period in PERIODS}
        expected_peaks = {period: self.model.peaks.get(current[period], 0) for period in PERIODS}
        assert summary.peaks.model_dump() == {
            "daily": expected_peaks["day"],
            "weekly": expected_peaks["week"],
            "monthly": expected_peaks["month"],
        }
        # The peak of a bucket is never below the people live in it
        assert min(expected_peaks.values()) >= total
        expected_unique = {period: len(self.model.uniques.get(current[period], ())) for period in PERIODS}
        unique = summary.unique_visitors
        assert (unique.daily, unique.weekly, unique.monthly) == (
            expected_unique["day"],
            expected_unique["week"],
            expected_unique["month"],
        )
        for peak in summary.peak_details:
            assert (peak.period, peak.bucket) == current[peak.period]
            assert peak.time_zone == self.model.zone
            assert peak.start == iso(start_of(peak.period, self.now, self.model.zone))
        # Each live person counts once per dimension, with the value of their latest page view
        expected_context = self.model.context_counts()
        people, counts = self.tracker.get_context_counts(self.community_id, self.now, community=self.community)
        assert people == total
        assert counts == expected_context
        for dimension in CONTEXT_DIMENSIONS:
            assert sum(expected_context[dimension].values()) == total
            assert len(set(expected_context[dimension]) - {CONTEXT_OTHER}) <= self.model.context_cap
        assert summary.context == live_context(expected_context, CONTEXT_TOP)
        for dimension in summary.context.model_dump().values():
            assert sum(v["people"] for v in dimension["top"]) + dimension["other"] == total

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

    def teardown(self) -> None:
        """After a random run, every key of the community but its live state has an expiry."""
        parts = parts_keys(self.community_id, self.parts)
        # every part's keys and the tab directory's: {c:ID}, {c:ID#k.salt}, {c:ID~d}
        match = f"{{c:{self.community_id}*"
        if isinstance(self.client, RedisCluster):
            found = list(self.client.scan_iter(match=match, target_nodes=RedisCluster.ALL_NODES))
        else:
            found = list(self.client.scan_iter(match=match))
        assert found
        live_state = [k for k in found if any(keys.is_live_state(k) for keys in parts)]
        assert [k for k in found if k not in live_state and self.client.ttl(k) < 0] == []


@pytest.mark.timeout(900)
@pytest.mark.parametrize("parts", [1, 4])
def test_tracker_matches_the_reference_model(redis_client: RedisClient, parts: int) -> None:
    # Users are shared by every run; their per-user sets are checked through is_user_visiting,
    # which reads the community itself, so runs cannot disturb each other. Four parts cost every
    # step's reads four scripts: fewer runs of them.
    machine = type("BoundTrackerMachine", (TrackerMachine,), {"client": redis_client, "parts": parts})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60 if parts == 1 else 30,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
