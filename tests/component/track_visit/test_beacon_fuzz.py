"""Hostile beacon bodies straight into the beacon function (README, "Guarantees": never a 5xx on bad input).

Hypothesis throws random bytes, oversized and deeply nested bodies, every media type (and none),
lone surrogates in JSON escapes, out-of-range numbers, wrongly typed fields, extra fields and,
now and then, a perfectly valid beacon at `track_visit.handler.lambda_handler`, and checks that:

- the answer is always 2xx or 4xx, never 5xx;
- every 4xx body is exactly `{"error": {"code", "message"}}`;
- a 4xx writes nothing: the community's Redis keys (live set, counts, divisions, pairs, visitor
  records, peaks, unique visitors, series, dedup and rate keys), the per-user sets and the
  cleanup index are unchanged, and no DynamoDB item appeared. Only the community's drop counters
  (`{c:<id>}:drops:<day>`) may move: malformed beacons to a registered community are counted as
  `invalid` drops.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from redis import Redis

from community_tracker.models import Community
from community_tracker.redis.keys import CommunityKeys
from community_tracker.settings import get_settings
from infra.redis_servers import RedisProcess
from infra.tokens import mint_token
from tests.builders import MINUTE, T0
from tests.helpers import BROWSER, HttpAnswer, api_request, call
from track_visit.handler import lambda_handler

TEMPLATE = "/v1/communities/{community_id}/%s"
KINDS = ("visits", "heartbeat", "leave")
# The community fixture is created once per test function and shared by its examples: each
# example compares the state right before and right after its own beacon, so examples never need
# a community of their own (hence the suppressed function_scoped_fixture health check). Bodies of
# up to 300 kB are generated on purpose (the 413 path), which is what too_slow and data_too_large
# would complain about.
FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def raw_redis(redis_server: RedisProcess) -> Iterator[Redis]:
    """Bytes in, bytes out: DUMP answers are binary."""
    client = Redis.from_url(redis_server.url)
    yield client
    client.close()


# -- what a beacon may change ------------------------------------------------------------------


def redis_state(redis: Redis, community_id: str) -> dict[bytes, tuple[bytes, int]]:
    """Every key a beacon could write (its serialized value and absolute expiry), except the
    community's drop counters."""
    tag = CommunityKeys(community_id).tag
    keys: set[bytes] = set()
    for pattern in (f"{tag}*", "{u:*}:communities", "{vt:index:*}"):
        keys.update(redis.scan_iter(match=pattern, count=1000))
    drops = f"{tag}:drops:".encode()
    state: dict[bytes, tuple[bytes, int]] = {}
    for key in sorted(keys):
        with redis.pipeline(transaction=True) as read:  # value and expiry of the same instant
            read.dump(key)
            read.expiretime(key.decode())
            value, expires_at = read.execute()
        if value is not None and not key.startswith(drops):  # None: expired since the scan
            state[key] = (value, int(expires_at))
    return state


def table_items() -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(get_settings().table_name)
    items: list[dict[str, Any]] = table.scan(ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (str(item["PK"]), str(item["SK"])))


# -- strategies --------------------------------------------------------------------------------

_clients = itertools.count()


def valid_token(user_id: str, division: str | None) -> str:
    return mint_token(get_settings(), user_id, division_id=division)


CONTENT_TYPES = st.sampled_from(
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/json; charset=utf-16",
        "text/plain",
        "text/plain;charset=UTF-8",
        "TEXT/PLAIN",
        "text/html",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/octet-stream",
        "*/*",
        "garbage",
    ]
)

# JSON string literals as a client may write them: plain, unicode, escapes, lone surrogates, NUL.
JSON_STRING_LITERALS = st.one_of(
    st.text(max_size=60).map(json.dumps),
    st.text(max_size=60).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(
        [
            r'"\ud800"',
            r'"\udfff"',
            r'"https://x.example/\ud83d"',
            r'"\udc00\ud800"',
            r'"tab-\ud800aaaaaaa"',
            r'"evt-\udfff000000"',
            r'"\u0000\u0000"',
            r'"\ud83d\ude00 fine pair"',
            '"\u202e\u200b\ufeff"',
        ]
    ),
)
JSON_NUMBER_LITERALS = st.sampled_from(
    ["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "-0", "123456789012345678901234567890", "0.1e1"]
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = ("url", "referrer", "event_id", "visitor_id", "token")
EXTRA_FIELDS = ("user_id", "division_id", "is_authenticated", "community_id", "roles", "sub", "__proto__", "")


@st.composite
def wrongly_typed_bodies(draw: st.DrawFn) -> str:
    """Beacon-shaped objects whose fields hold anything at all, plus fields a body may not set."""
    body: dict[str, Any] = {}
    for name in FIELDS + EXTRA_FIELDS:
        if draw(st.booleans()):
            body[name] = draw(JSON_VALUES)
    return json.dumps(body)


@st.composite
def raw_literal_bodies(draw: st.DrawFn) -> str:
    """Hand-written JSON text, so escapes and number forms json.dumps would never produce get in."""
    members = []
    for name in draw(st.lists(st.sampled_from(FIELDS + EXTRA_FIELDS), max_size=6)):
        value = draw(st.one_of(JSON_STRING_LITERALS, JSON_NUMBER_LITERALS))
        members.append(f'"{name}": {value}')
    return "{" + ", ".join(members) + "}"


@st.composite
def nested_bodies(draw: st.DrawFn) -> str:
    depth = draw(st.sampled_from([1, 10, 100, 900, 1000, 1100, 2000, 4000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"url":', "}")]))
    closed = draw(st.booleans())
    return opener * depth + ("1" + closer * depth if closed else "")


@st.composite
def huge_bodies(draw: st.DrawFn) -> str | bytes:
    size = draw(st.sampled_from([4000, 4096, 4097, 5000, 20_000, 300_000]))
    shape = draw(st.sampled_from(["url", "token", "raw", "multibyte", "bytes"]))
    if shape == "url":
        return json.dumps({"url": "https://x.example/" + "a" * size})
    if shape == "token":
        return json.dumps({"url": "https://x.example/", "token": "e" * size})
    if shape == "multibyte":  # under the cap in characters, over it in bytes
        return json.dumps({"url": "https://x.example/" + "é" * (size // 2 + 1)}, ensure_ascii=False)
    if shape == "bytes":
        return b"\xff\xfe" * (size // 2 + 1)
    return "x" * size


@st.composite
def valid_bodies(draw: st.DrawFn) -> str:
    body: dict[str, Any] = {"url": draw(st.sampled_from(["https://platform.example/c/quebec-city/", "/c/", "x"]))}
    if draw(st.booleans()):
        body["visitor_id"] = "tab-" + draw(st.text("0123456789abcdef", min_size=8, max_size=16))
    if draw(st.booleans()):
        body["event_id"] = "evt-" + draw(st.text("0123456789abcdef", min_size=8, max_size=16))
    if draw(st.booleans()):
        body["referrer"] = draw(st.sampled_from(["https://search.example/?q=1", ""]))
    if draw(st.booleans()):
        division = draw(st.sampled_from([None, "quebec", "montreal"]))
        body["token"] = valid_token(draw(st.sampled_from(["fuzz-u1", "fuzz-u2"])), division)
    return json.dumps(body)


@st.composite
def mutated_valid_bodies(draw: st.DrawFn) -> str:
    """A valid beacon with one or two members swapped for hostile literals, and maybe extra fields
    a body may not set: the bodies that get furthest before something has to refuse them."""
    members = {name: json.dumps(value) for name, value in json.loads(draw(valid_bodies())).items()}
    for name in draw(st.lists(st.sampled_from(FIELDS + EXTRA_FIELDS), min_size=1, max_size=2)):
        members[name] = draw(st.one_of(JSON_STRING_LITERALS, JSON_NUMBER_LITERALS, JSON_VALUES.map(json.dumps)))
    return "{" + ", ".join(f"{json.dumps(name)}: {value}" for name, value in members.items()) + "}"


BODIES = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.text(max_size=200),
    JSON_VALUES.map(json.dumps),
    wrongly_typed_bodies(),
    raw_literal_bodies(),
    nested_bodies(),
    huge_bodies(),
    valid_bodies(),
    mutated_valid_bodies(),
    mutated_valid_bodies(),
)
AUTHORIZATION = st.sampled_from(
    [None, None, None, "Bearer", "Bearer ", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz", "Bearer \u00e9\u00e9", "valid"]
)
QUERIES = st.sampled_from(["", "", "", "debug=1", "debug=true", "debug=maybe", "debug=", "debug=1&debug=0"])


@dataclass(frozen=True)
class Request:
    kind: str
    body: str | bytes | None
    content_type: str | None
    authorization: str | None
    query: str
    user_agent: str = BROWSER

    def __repr__(self) -> str:  # bodies of 300 kB would make unreadable failure reports
        shown = repr(self.body)
        if self.body is not None and len(self.body) > 300:
            shown = f"{self.body[:300]!r}... ({len(self.body)} long)"
        return (
            f"Request(kind={self.kind!r}, body={shown}, content_type={self.content_type!r}, "
            f"authorization={self.authorization!r}, query={self.query!r}, user_agent={self.user_agent!r})"
        )


USER_AGENTS = st.sampled_from([BROWSER] * 6 + ["", "Googlebot/2.1", "curl/8.5.0", "Mozilla/5.0 HeadlessChrome/131.0"])
REQUESTS = st.builds(Request, st.sampled_from(KINDS), BODIES, CONTENT_TYPES, AUTHORIZATION, QUERIES, USER_AGENTS)


def send(community_id: str, request: Request, now_ms: int) -> HttpAnswer:
    headers = {"user-agent": request.user_agent}
    if request.content_type is not None:
        headers["content-type"] = request.content_type
    if request.authorization == "valid":
        headers["authorization"] = f"Bearer {valid_token('fuzz-header', 'montreal')}"
    elif request.authorization is not None:
        headers["authorization"] = request.authorization
    client = next(_clients)  # a new client each time: the per-client rate limit stays out of the way
    event = api_request(
        "POST",
        f"/v1/communities/{community_id}/{request.kind}",
        template=TEMPLATE % request.kind,
        path_parameters={"community_id": community_id},
        body=request.body,
        headers=headers,
        query=request.query,
        now_ms=now_ms,
        source_ip=f"10.{client // 65536 % 256}.{client // 256 % 256}.{client % 256}",
    )
    return call(lambda_handler, event)


def assert_error_shape(answer: HttpAnswer) -> None:
    body = answer.json()
    assert isinstance(body, dict), answer.body
    assert set(body) == {"error"}, answer.body
    assert set(body["error"]) == {"code", "message"}, answer.body
    assert isinstance(body["error"]["code"], str), answer.body
    assert isinstance(body["error"]["message"], str), answer.body
    assert body["error"]["code"], answer.body


def assert_unchanged(
    before: dict[bytes, tuple[bytes, int]], after: dict[bytes, tuple[bytes, int]], context: object
) -> None:
    """Nothing written; a key may only have gone by its own expiry (rate and dedup keys live on
    the wall clock, so in a long run earlier examples' keys expire between two snapshots)."""
    expired = {key for key in before.keys() - after.keys() if 0 < before[key][1] <= time.time() + 1}
    assert after == {key: value for key, value in before.items() if key not in expired}, context


def check_one(redis: Redis, community: Community, request: Request, now_ms: int) -> HttpAnswer:
    redis_before, items_before = redis_state(redis, community.community_id), table_items()

    answer = send(community.community_id, request, now_ms)

    assert 200 <= answer.status < 500, (answer.status, answer.body, request)
    size = len(request.body.encode("utf-8", "surrogatepass") if isinstance(request.body, str) else request.body or b"")
    if size > get_settings().max_body_bytes:  # refused before any JSON parser sees it (400: not even UTF-8)
        assert answer.status in {400, 413, 415}, (answer.status, answer.body, request)
    if answer.status >= 400:
        assert_error_shape(answer)
        assert_unchanged(
            redis_before, redis_state(redis, community.community_id), (answer.status, answer.body, request)
        )
        assert table_items() == items_before, (answer.status, answer.body, request)
    return answer


@given(request=REQUESTS)
@settings(FUZZ_SETTINGS, max_examples=250)
def test_hostile_beacons_never_5xx_and_4xx_writes_nothing(
    community: Community, raw_redis: Redis, request: Request
) -> None:
    note(repr(request))
    answer = check_one(raw_redis, community, request, T0)
    event(f"{request.kind} {answer.status}")


@given(
    kind=st.sampled_from(KINDS),
    body=st.one_of(raw_literal_bodies(), wrongly_typed_bodies(), valid_bodies(), mutated_valid_bodies()),
)
@settings(FUZZ_SETTINGS, max_examples=120)
def test_json_bodies_as_sendbeacon_sends_them(community: Community, raw_redis: Redis, kind: str, body: str) -> None:
    # text/plain JSON, the token in the body: what navigator.sendBeacon sends; a minute later
    # each time, so the page views of earlier examples age and prune as in real traffic.
    request = Request(kind, body, "text/plain;charset=UTF-8", None, "")
    note(repr(request))
    answer = check_one(raw_redis, community, request, T0 + MINUTE * (len(body) % 7))
    event(f"{kind} {answer.status}")


def test_the_strategies_reach_every_kind_of_answer(community: Community, raw_redis: Redis) -> None:
    """Not a property: the fuzzing above is only worth something if it gets past validation."""
    bodies: list[tuple[str | bytes, str]] = [
        ('{"url": "https://x.example/", "visitor_id": "tab-0123456789"}', "application/json"),
        ('{"url": 1}', "application/json"),
        ("{", "text/plain"),
        ("<x/>", "application/xml"),
        ("x" * 5000, "text/plain"),
        (b"\xff\xfe{}", "application/json"),
        ("url=https://x.example/&visitor_id=tab-0123456789", "application/x-www-form-urlencoded"),
    ]
    answers = {
        check_one(raw_redis, community, Request("visits", body, content_type, None, ""), T0).status
        for body, content_type in bodies
    }
    assert answers == {200, 400, 413, 415, 422}


def test_the_snapshots_see_what_a_counted_beacon_writes(community: Community, raw_redis: Redis) -> None:
    """The no-partial-write check is only worth something if it would see a write."""
    redis_before, items_before = redis_state(raw_redis, community.community_id), table_items()
    body = json.dumps({"url": "https://x.example/", "token": valid_token("fuzz-snapshot", "montreal")})

    answer = send(community.community_id, Request("visits", body, "text/plain", None, ""), T0)

    assert answer.status == 200, answer.body
    assert redis_state(raw_redis, community.community_id) != redis_before
    assert b"{u:fuzz-snapshot}:communities" in redis_state(raw_redis, community.community_id)
    assert len(table_items()) == len(items_before) + 2  # the visit and its event guard


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        # Not UTF-8: API Gateway hands the function a base64 body that cannot be decoded to text.
        (b"\x80\x81{", "application/json", 400),
        (b"\xff\xfe{\x00}\x00", "text/plain", 400),
        (b"\xc3(", None, 415),  # and without a media type, it is not taken for JSON either
        # Forms are not beacons: refused like any other media type, and never parsed past the cap.
        ("url=https://x.example/&visitor_id=tab-0123456789", "application/x-www-form-urlencoded", 415),
        (
            '--b\r\nContent-Disposition: form-data; name="url"\r\n\r\nhttps://x.example/\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            415,
        ),
        ("--b\r\n" + "x" * 6000 + "\r\n--b--\r\n", "multipart/form-data; boundary=b", 415),
    ],
)
def test_found_by_fuzzing(
    community: Community, raw_redis: Redis, body: str | bytes, content_type: str | None, status: int
) -> None:
    answer = check_one(raw_redis, community, Request("visits", body, content_type, None, ""), T0)

    assert answer.status == status, answer.body
    assert raw_redis.hget(CommunityKeys(community.community_id).drops("2031-03-05@UTC"), "invalid") == b"1"
