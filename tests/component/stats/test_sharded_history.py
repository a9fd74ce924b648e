"""A hot community's visit history over several partition keys (README, "Visit history
(DynamoDB)"): writes spread evenly, reads merge the partitions newest first behind one signed
cursor, and a change of `parts` loses nothing, on read, in the user's export, or in erasure."""

from __future__ import annotations

import base64
import json
import math
import threading
import time
import uuid
from collections import Counter
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from community_tracker.aws import stores
from community_tracker.aws.stores import (
    DynamoVisitStore,
    HistoryPosition,
    get_stores,
    visit_item,
    visit_partition,
)
from community_tracker.errors import HistoryUnavailable
from community_tracker.factories import reset_factories
from community_tracker.models import Community, Peak, VisitEvent, VisitMetadata
from community_tracker.settings import get_settings
from community_tracker.timeutil import iso
from infra.tokens import mint_token
from stats.handler import lambda_handler as stats_handler
from tests.builders import SECOND, T0
from tests.component.stats.bulk_moto import bulk_put
from tests.helpers import HttpAnswer, api_request, beacon, call
from track_visit.handler import lambda_handler as beacon_handler

ADMIN_ID = "ops"


def admin() -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(get_settings(), ADMIN_ID, roles=['admin'])}"}


def event(community_id: str, event_id: str, at_ms: int, user_id: str = "walker") -> VisitEvent:
    return VisitEvent(
        event_id=event_id,
        user_id=user_id,
        timestamp=iso(at_ms),
        metadata=VisitMetadata(
            community_id=community_id,
            community_slug="hot",
            visitor_division_id="montreal",
            community_division_id="quebec",
            is_cross_division=True,
            is_authenticated=True,
            url="https://platform.example/c/hot/",
            referrer=None,
        ),
    )


def newest_first(events: list[VisitEvent]) -> list[str]:
    """The order a history answers in: by time, then by event id, newest first."""
    return [e.event_id for e in sorted(events, key=lambda e: (e.timestamp, e.event_id), reverse=True)]


def table_items(pk: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(get_settings().table_name)
    return table.query(KeyConditionExpression=Key("PK").eq(pk) & Key("SK").begins_with("VISIT#"))["Items"]


def put_community(community_id: str, body: dict[str, Any]) -> HttpAnswer:
    return call(
        beacon_handler,
        api_request(
            "PUT",
            f"/v1/communities/{community_id}",
            template="/v1/communities/{community_id}",
            path_parameters={"community_id": community_id},
            body={"slug": "hot", "name": "Hot", "division_id": "quebec", **body},
            headers=admin(),
        ),
    )


def history_page(community_id: str, *, limit: int, cursor: str | None = None) -> HttpAnswer:
    query = f"limit={limit}" + (f"&cursor={cursor}" if cursor is not None else "")
    return call(
        stats_handler,
        api_request(
            "GET",
            f"/v1/communities/{community_id}/visits",
            template="/v1/communities/{community_id}/visits",
            path_parameters={"community_id": community_id},
            headers=admin(),
            query=query,
            now_ms=T0 + 3_600 * SECOND,
        ),
    )


def as_user(method: str, route: str, user_id: str) -> HttpAnswer:
    """A user's own call of a `/v1/users/{user_id}/…` route."""
    return call(
        stats_handler,
        api_request(
            method,
            route.format(user_id=user_id),
            template=route,
            path_parameters={"user_id": user_id},
            headers={"authorization": f"Bearer {mint_token(get_settings(), user_id)}"},
        ),
    )


def whole_history(community_id: str, limit: int) -> tuple[list[str], int]:
    """Every event id the route hands out, page after page, and how many pages it took."""
    ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        answer = history_page(community_id, limit=limit, cursor=cursor)
        assert answer.status == 200, answer.body
        page = answer.json()
        pages += 1
        assert len(page["visits"]) <= limit
        ids += [visit["event_id"] for visit in page["visits"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages


# -- the merge: every visit once, newest first, on every page size ------------------------------


@pytest.fixture(autouse=True)
def _reads_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages here are never cut short by how loaded this machine is: the slow table below, with
    its own clock, is where the read budget is tested."""
    monkeypatch.setattr(stores, "HISTORY_READ_SECONDS", math.inf)


class SlowQueries:
    """Each query of a table's client waits `seconds` before moto answers it (a `before-call`
    hook, so the wait is in the store's own call) and is counted, with how many ran at once;
    `clock` moves one second with each query, however many run at once."""

    def __init__(self, table: Any, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls = 0
        self.most_at_once = 0
        self._running = 0
        self._lock = threading.Lock()
        table.meta.client.meta.events.register("before-call.dynamodb.Query", self._query)

    def _query(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        time.sleep(self.seconds)
        with self._lock:
            self._running -= 1

    def clock(self) -> float:
        return float(self.calls)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.integers(min_value=1, max_value=8),
    offsets=st.lists(st.integers(min_value=0, max_value=40), max_size=70),
    limit=st.integers(min_value=1, max_value=25),
    slow=st.booleans(),
    spare_reads=st.integers(min_value=0, max_value=6),
)
def test_pages_over_partitions_hand_out_every_visit_once_newest_first(
    moto_table: str, parts: int, offsets: list[int], limit: int, slow: bool, spare_reads: int
) -> None:
    # Given visits spread over `parts` partitions, many at the same millisecond, in a table that
    # answers at once or (slow) so slowly that a page has time for one read per partition (at
    # once) and a few more
    community_id = f"hyp-{uuid.uuid4().hex[:10]}"
    events = [event(community_id, f"evt-{i:06d}-{uuid.uuid4().hex[:4]}", T0 + at) for i, at in enumerate(offsets)]
    bulk_put(moto_table, "us-east-1", (visit_item(e, parts) for e in events))
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(moto_table)
    store = DynamoVisitStore(table, clock=SlowQueries(table).clock) if slow else get_stores().visits
    budget = float(parts + spare_reads) if slow else None

    # When the history is read page by page
    ids: list[str] = []
    after: HistoryPosition | None = None
    pages = 0
    while True:
        page = store.community_visits(community_id, limit=limit, after=after, partitions=parts, budget_seconds=budget)
        pages += 1
        assert 1 <= len(page.visits) <= limit or (not events and page.next is None)
        ids += [visit.event_id for visit in page.visits]
        if page.next is None:
            break
        assert slow or len(page.visits) == limit  # in time, only the last page is short
        after = page.next

    # Then each visit comes once, newest first (in time, in as few pages as the page size allows)
    assert ids == newest_first(events)
    assert slow or pages == max(1, -(-len(events) // limit))


def test_a_page_reads_its_partitions_at_once(community: Community) -> None:
    # Given a community's visits in 8 partitions, in a table that takes 0.2 s a query
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(get_settings().table_name)
    events = [event(community.community_id, f"evt-once-{i:04d}", T0 + i) for i in range(80)]
    bulk_put(get_settings().table_name, "us-east-1", (visit_item(e, 8) for e in events))
    slow = SlowQueries(table, 0.2)

    # When a page of 40 is read
    page = DynamoVisitStore(table).community_visits(community.community_id, limit=40, partitions=8)

    # Then its 8 partitions' first reads ran together, not one after another
    assert [v.event_id for v in page.visits] == newest_first(events)[:40]
    assert slow.most_at_once == 8


def test_a_page_that_cannot_read_every_partition_in_time_is_a_503(community: Community) -> None:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(get_settings().table_name)
    store = DynamoVisitStore(table)
    for i in range(10):
        store.put_visit(event(community.community_id, f"evt-slow-{i:04d}", T0 + i), parts=4)
    slow = SlowQueries(table, 1.0)

    started = time.monotonic()
    with pytest.raises(HistoryUnavailable):
        store.community_visits(community.community_id, limit=5, partitions=4, budget_seconds=0.3)
    # in its budget, not after the slow reads: they were under way, and are left to end by themselves
    assert time.monotonic() - started < 0.9
    assert slow.calls == 4


def test_a_page_that_read_some_visits_in_time_answers_them_with_a_cursor(moto_table: str) -> None:
    # Given a community's 30 newest visits all in partition 0 of 4, older ones in the others, and
    # a table whose queries take 1 s: a page of 30 merges partition 0's first chunk (9 visits) and
    # must read it again, 1 s later, past its budget of 1.5 s
    community_id = f"part-{uuid.uuid4().hex[:8]}"
    ids = (f"evt-part-{i:04d}" for i in range(10_000))
    newest = [i for i in ids if visit_partition(i, 4) == 0][:30]
    older = [i for i in (f"evt-older-{i:04d}" for i in range(200)) if visit_partition(i, 4) != 0][:30]
    events = [event(community_id, i, T0 + k) for k, i in enumerate(older)]
    events += [event(community_id, i, T0 + 1000 + k) for k, i in enumerate(newest)]
    bulk_put(moto_table, "us-east-1", (visit_item(e, 4) for e in events))
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(moto_table)
    SlowQueries(table, 1.0)

    page = DynamoVisitStore(table).community_visits(community_id, limit=30, partitions=4, budget_seconds=1.5)

    # Then the page is what it could merge, newest first, and its cursor goes on from there
    assert page.next is not None
    assert [v.event_id for v in page.visits] == newest_first(events)[:9]


def test_the_route_pages_a_sharded_history_through_one_cursor(community: Community) -> None:
    # Given 150 visits of a community split in 8, three to a second
    assert put_community(community.community_id, {"parts": 8}).status == 200
    events = [event(community.community_id, f"evt-route-{i:05d}", T0 + (i // 3) * SECOND) for i in range(150)]
    bulk_put(get_settings().table_name, "us-east-1", (visit_item(e, 8) for e in events))

    # When an admin reads it in pages of 7, then of 100
    small, small_pages = whole_history(community.community_id, limit=7)
    large, large_pages = whole_history(community.community_id, limit=100)

    # Then both hand out every visit once, newest first
    assert small == large == newest_first(events)
    assert (small_pages, large_pages) == (22, 2)


# -- writes spread, the guard unchanged ---------------------------------------------------------


def test_writes_spread_evenly_over_the_partitions_and_partition_0_is_the_community_key(moto_table: str) -> None:
    community_id = f"spread-{uuid.uuid4().hex[:8]}"
    events = [event(community_id, f"evt-spread-{i:06d}", T0 + i) for i in range(2_000)]
    bulk_put(moto_table, "us-east-1", (visit_item(e, 8) for e in events))

    partitions = [table_items(f"COMMUNITY#{community_id}" + (f"#{k}" if k else "")) for k in range(8)]

    counts = [len(items) for items in partitions]
    assert sum(counts) == 2_000
    assert all(200 <= count <= 300 for count in counts), counts  # 250 each, give or take
    for k, items in enumerate(partitions):
        assert {visit_partition(str(item["event_id"]), 8) for item in items} == {k}
    assert {visit_partition(e.event_id, 1) for e in events} == {0}


def test_a_beacon_writes_into_its_partition_and_a_retry_after_a_change_of_parts_is_stored_once(
    community: Community,
) -> None:
    # Given a community split in 4
    cid = community.community_id
    assert put_community(cid, {"parts": 4}).json()["parts"] == 4
    headers = {"authorization": f"Bearer {mint_token(get_settings(), 'retrier')}"}
    body = {"event_id": "evt-retry-000001", "url": "https://platform.example/c/hot/"}

    # When a page view is sent, the community is split in 2, and the same page view comes again
    first = beacon(cid, body, headers=headers)
    put_community(cid, {"parts": 2})
    retry = beacon(cid, body, headers=headers, now_ms=T0 + 20 * 60 * SECOND)  # past the Redis dedup window

    # Then it is in the partition its event id chose, once
    assert (first.status, retry.status) == (200, 200), (first.body, retry.body)
    partition = visit_partition("evt-retry-000001", 4)
    [item] = table_items(f"COMMUNITY#{cid}" + (f"#{partition}" if partition else ""))
    assert item["event_id"] == "evt-retry-000001"
    ids, _pages = whole_history(cid, limit=10)
    assert ids == ["evt-retry-000001"]


# -- a change of parts loses nothing ------------------------------------------------------------


def test_parts_up_and_down_lose_no_visit_on_read(community: Community) -> None:
    # Given a community whose parts go 1 → 8 → 3 → 1, visits written at each (beacons) and by a
    # function that still keeps the registration before the last change (8 after it went to 3)
    cid = community.community_id
    sent: list[str] = []
    answers: list[dict[str, Any]] = []
    now = T0
    for parts in (1, 8, 3, 1):
        answers.append(put_community(cid, {"parts": parts}).json())
        for i in range(15):
            now += SECOND
            event_id = f"evt-p{parts}-{len(sent):05d}"
            user_id = f"walker-{i % 5}"
            headers = {"authorization": f"Bearer {mint_token(get_settings(), user_id)}"}
            answer = beacon(
                cid,
                {"event_id": event_id, "url": "https://platform.example/c/hot/", "connection_id": f"tab-{event_id}"},
                headers=headers,
                now_ms=now,
            )
            assert answer.status == 200, answer.body
            sent.append(event_id)
        if parts == 3:
            for i in range(10):
                stale = event(cid, f"evt-stale-{i:05d}", now + i)
                assert get_stores().visits.put_visit(stale, parts=8)
                sent.append(stale.event_id)

    # Then the registration keeps the highest parts, and every page size reads every visit once
    assert [(a["parts"], a["history_parts"]) for a in answers] == [(1, 1), (8, 8), (3, 8), (1, 8)]
    for limit in (4, 100):
        ids, _pages = whole_history(cid, limit=limit)
        assert sorted(ids) == sorted(sent)
        assert Counter(ids).most_common(1)[0][1] == 1
    partitions_used = {k for k in range(8) if table_items(f"COMMUNITY#{cid}" + (f"#{k}" if k else ""))}
    assert partitions_used == set(range(8))


def test_a_raised_parts_is_read_at_once_by_a_function_that_kept_the_old_registration(community: Community) -> None:
    # Given a community split in 6, with visits in its 6 partitions, and a stats function that
    # still keeps its registration from before the split (for up to a minute)
    cid = community.community_id
    put_community(cid, {"parts": 6})
    events = [event(cid, f"evt-fresh-{i:04d}", T0 + i) for i in range(40)]
    for e in events:
        get_stores().visits.put_visit(e, parts=6)
    get_stores().communities._entries[cid] = (float("inf"), community)  # type: ignore[attr-defined]

    # When it reads the history, then every visit is there
    assert whole_history(cid, limit=9)[0] == newest_first(events)


def test_the_admin_put_refuses_parts_outside_1_to_64(community: Community) -> None:
    assert put_community(community.community_id, {"parts": 0}).status == 422
    assert put_community(community.community_id, {"parts": 65}).status == 422
    assert put_community(community.community_id, {"parts": 64}).json()["parts"] == 64
    assert put_community(community.community_id, {}).json()["parts"] == 64  # left out: unchanged


# -- the cursor: opaque, signed, bound to its community -----------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _altered(cursor: str, change: dict[str, Any]) -> str:
    version, payload, signature = cursor.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{version}.{_b64(json.dumps({**fields, **change}).encode())}.{signature}"


@pytest.fixture
def sharded(community: Community) -> tuple[Community, str]:
    """A community split in 4 with 12 visits, and the cursor of its second page of 5."""
    put_community(community.community_id, {"parts": 4})
    for i in range(12):
        get_stores().visits.put_visit(event(community.community_id, f"evt-cursor-{i:04d}", T0 + i), parts=4)
    cursor = history_page(community.community_id, limit=5).json()["next_cursor"]
    assert cursor is not None
    return community, cursor


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda c: _altered(c, {"d": 15}), id="done-mask-altered"),
        pytest.param(lambda c: _altered(c, {"a": "VISIT#2099-01-01T00:00:00.000Z#evt-x"}), id="position-altered"),
        pytest.param(lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"), id="signature-altered"),
        pytest.param(lambda c: "h2" + c[2:], id="another-version"),
        pytest.param(lambda c: c.rsplit(".", 1)[0], id="unsigned"),
        pytest.param(
            lambda _c: _b64(json.dumps({"PK": "COMMUNITY#x", "SK": "VISIT#2031"}).encode()), id="the-old-plain-key"
        ),
        pytest.param(lambda c: c + "." + c, id="doubled"),
        pytest.param(lambda _c: "A" * 5000, id="oversized"),
        pytest.param(lambda _c: "not a cursor!", id="garbage"),
    ],
)
def test_a_forged_or_altered_history_cursor_is_a_400(sharded: tuple[Community, str], forge: Any) -> None:
    community, cursor = sharded

    answer = history_page(community.community_id, limit=5, cursor=forge(cursor))

    assert answer.status == 400, answer.body
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]["code"] == "invalid_cursor"


def test_a_cursor_of_another_community_is_a_400(sharded: tuple[Community, str]) -> None:
    _community, cursor = sharded
    other = f"other-{uuid.uuid4().hex[:8]}"
    put_community(other, {"parts": 4})

    answer = history_page(other, limit=5, cursor=cursor)

    assert answer.status == 400
    assert answer.json()["error"]["code"] == "invalid_cursor"


def test_a_cursor_signed_with_another_share_key_is_a_400(
    sharded: tuple[Community, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    community, cursor = sharded
    monkeypatch.setenv("VT_SHARE_KEY", "another-share-key-0123456789-abcdefghij")
    reset_factories()

    assert history_page(community.community_id, limit=5, cursor=cursor).status == 400


def test_the_cursor_handed_out_pages_on(sharded: tuple[Community, str]) -> None:
    community, cursor = sharded

    second = history_page(community.community_id, limit=5, cursor=cursor).json()

    assert [v["event_id"] for v in second["visits"]] == [f"evt-cursor-{i:04d}" for i in range(6, 1, -1)]


# -- what shares the partitions or the index: erasure, export, rollups --------------------------


def test_erasure_finds_every_visit_in_every_partition(community: Community) -> None:
    # Given a user with visits in all 8 partitions of a community (and a neighbour's)
    cid = community.community_id
    put_community(cid, {"parts": 8})
    user_id = f"leaving-{uuid.uuid4().hex[:6]}"
    mine = [event(cid, f"evt-mine-{i:04d}", T0 + i, user_id) for i in range(40)]
    theirs = event(cid, "evt-theirs-0001", T0, "staying")
    for e in [*mine, theirs]:
        get_stores().visits.put_visit(e, parts=8)
    assert len({visit_partition(e.event_id, 8) for e in mine}) == 8

    # When the user erases their history
    erased = as_user("DELETE", "/v1/users/{user_id}/visits", user_id)

    # Then none of theirs is left, in any partition or guard; the neighbour's stays
    assert erased.status == 200, erased.body
    assert erased.json()["deleted"] == 40
    assert whole_history(cid, limit=50)[0] == ["evt-theirs-0001"]
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(get_settings().table_name)
    assert all("Item" not in table.get_item(Key={"PK": f"EVENT#{e.event_id}", "SK": "EVENT"}) for e in mine)


def test_a_history_too_long_for_one_erasure_is_erased_over_several_calls(
    community: Community, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a user with 450 visits, and an erasure whose budget ends after its first page of 200
    cid = community.community_id
    user_id = f"long-{uuid.uuid4().hex[:6]}"
    mine = [event(cid, f"evt-long-{i:04d}", T0 + i, user_id) for i in range(450)]
    bulk_put(get_settings().table_name, "us-east-1", (visit_item(e, 1) for e in mine))
    monkeypatch.setattr(stores, "HISTORY_ERASE_SECONDS", 0.0)

    # When the user erases their history, and calls again while it says it is not complete
    answers = [as_user("DELETE", "/v1/users/{user_id}/visits", user_id)]
    while answers[-1].status == 202:
        assert answers[-1].headers["retry-after"] == "0"
        answers.append(as_user("DELETE", "/v1/users/{user_id}/visits", user_id))

    # Then three calls erased it all, 200 visits at a time, each saying what it did
    assert [(a.status, a.json()["deleted"], a.json()["complete"]) for a in answers] == [
        (202, 200, False),
        (202, 200, False),
        (200, 50, True),
    ]
    assert list(get_stores().visits.all_user_visits(user_id)) == []


def test_the_export_and_the_rollups_are_unaffected_by_partitions(community: Community) -> None:
    # Given a user's visits in a split community, and a peak rollup under the community's own key
    cid = community.community_id
    put_community(cid, {"parts": 5})
    user_id = f"exporter-{uuid.uuid4().hex[:6]}"
    events = [event(cid, f"evt-export-{i:04d}", T0 + i, user_id) for i in range(30)]
    for e in events:
        get_stores().visits.put_visit(e, parts=5)
    peak = Peak(
        period="day",
        bucket="2031-03-04",
        time_zone="UTC",
        start="2031-03-04T00:00:00.000Z",
        end="2031-03-05T00:00:00.000Z",
        count=7,
        reached_at="2031-03-04T12:00:00.000Z",
        unique_visitors=9,
    )
    get_stores().peaks.put_rollup(cid, peak)

    # When the user exports, and the rollups and the history are read
    exported = as_user("GET", "/v1/users/{user_id}/visits/export", user_id)

    # Then the export has every visit once, the rollup is where it was, and the history only visits
    assert exported.status == 200, exported.body
    assert [v["event_id"] for v in exported.json()["visits"]] == newest_first(events)
    assert [p.count for p in get_stores().peaks.rollups(cid, "day", limit=5)] == [7]
    assert whole_history(cid, limit=8)[0] == newest_first(events)
