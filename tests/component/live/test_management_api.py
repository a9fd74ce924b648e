"""The management API adapter over real HTTP, against a fake management API on loopback
(`infra.fake_management_api`), which answers as API Gateway does (410 for a gone connection, 429,
403, 500) and checks every signature with botocore; and the pusher function end to end on it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore import auth as botocore_auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from community_tracker.aws.connections import ManagementApiPoster, SigV4Signer
from community_tracker.errors import PostFailed
from community_tracker.factories import reset_factories
from community_tracker.live import Delivery, Outcome, Result
from community_tracker.redis.live_state import get_tracker
from community_tracker.redis.subscriptions import ConnectionRegistry
from infra.fake_management_api import FakeManagementApi
from live.pusher import lambda_handler
from tests.builders import T0, anonymous, visit
from tests.helpers import LambdaContext

TESTING = ReadOnlyCredentials("testing", "testing", "testing")


@pytest.fixture
def api() -> Iterator[FakeManagementApi]:
    fake = FakeManagementApi()
    fake.start()
    yield fake
    fake.stop()


def poster_for(
    api: FakeManagementApi, *, concurrency: int = 8, timeout: float = 2.0, secret: str | None = None
) -> ManagementApiPoster:
    credentials = TESTING if secret is None else ReadOnlyCredentials("testing", secret, "testing")
    return ManagementApiPoster(
        api.endpoint,
        region="us-east-1",
        credentials=lambda: credentials,
        concurrency=concurrency,
        timeout_seconds=timeout,
    )


def test_posts_arrive_signed_in_order(api: FakeManagementApi) -> None:
    poster = poster_for(api)
    odd_id = "L0SM9cOFvHcCIhw=/+ x"  # API Gateway ids are base64: '=' '+' '/' must survive encoding

    results = poster.post_all([Delivery("conn-1", (b'{"n": 1}', b'{"n": 2}')), Delivery(odd_id, (b'{"n": 3}',))])
    poster.close()

    assert results == [Result(Outcome.SENT, 2), Result(Outcome.SENT, 1)]
    assert api.bodies("conn-1") == [b'{"n": 1}', b'{"n": 2}']
    assert api.bodies(odd_id) == [b'{"n": 3}']
    assert all(r.signature_valid for r in api.received)


def test_gone_and_each_failure_are_told_apart(api: FakeManagementApi) -> None:
    api.answers.update({"gone": 410, "throttled": 429, "forbidden": 403, "broken": 500})
    poster = poster_for(api)
    names = ["ok", "gone", "throttled", "forbidden", "broken"]

    results = poster.post_all([Delivery(name, (b"{}", b"{}")) for name in names])
    poster.close()

    assert results == [
        Result(Outcome.SENT, 2),
        Result(Outcome.GONE, 0),
        Result(Outcome.FAILED, 0, "429 LimitExceededException"),
        Result(Outcome.FAILED, 0, "403 ForbiddenException"),
        Result(Outcome.FAILED, 0, "500 InternalServerErrorException"),
    ]
    # Each failure was the fake's answer to a request that reached it (once: no retry within a tick)
    assert sorted(r.connection_id for r in api.received) == sorted(
        ["ok", "ok", "gone", "throttled", "forbidden", "broken"]
    )


def test_a_post_without_an_answer_in_time_fails_alone(api: FakeManagementApi) -> None:
    api.delays["slow"] = 1.5
    poster = poster_for(api, timeout=0.3)

    results = poster.post_all([Delivery("slow", (b"{}",)), Delivery("fast", (b"{}",))])
    again = poster.post_all([Delivery("fast", (b"{}",))])  # the timed-out connection is not reused
    poster.close()

    assert results == [Result(Outcome.FAILED, 0, "timeout"), Result(Outcome.SENT, 1)]
    assert again == [Result(Outcome.SENT, 1)]


def test_no_more_posts_in_flight_than_the_bound_on_kept_alive_connections(api: FakeManagementApi) -> None:
    api.delay_s = 0.01
    poster = poster_for(api, concurrency=16)

    first = poster.post_all([Delivery(f"c{n}", (b"{}",)) for n in range(200)])
    second = poster.post_all([Delivery(f"c{n}", (b"{}",)) for n in range(200)])
    poster.close()

    assert {r.outcome for r in first + second} == {Outcome.SENT}
    assert api.max_in_flight == 16
    assert api.connections_opened == 16  # kept alive from one tick to the next


def test_connections_the_server_closed_are_replaced_without_a_failure(api: FakeManagementApi) -> None:
    poster = poster_for(api, concurrency=4)
    poster.post_all([Delivery(f"c{n}", (b"{}",)) for n in range(8)])
    api.drop_connections()  # idle keep-alive connections closed by the server (or a frozen Lambda)

    results = poster.post_all([Delivery(f"c{n}", (b"{}",)) for n in range(8)])
    poster.close()

    assert {r.outcome for r in results} == {Outcome.SENT}
    assert len(api.received) == 16


def test_a_wrong_signature_is_refused_by_the_fake(api: FakeManagementApi) -> None:
    poster = poster_for(api, secret="not-the-secret")

    with pytest.raises(PostFailed, match="403 InvalidSignatureException"):
        poster.post("conn-1", b"{}")
    poster.close()
    assert [r.signature_valid for r in api.received] == [False]


def test_the_one_message_form_answers_like_a_poster(api: FakeManagementApi) -> None:
    api.answers["gone"] = 410
    poster = poster_for(api)

    assert poster.post("here", b"{}") is True
    assert poster.post("gone", b"{}") is False
    poster.close()


def test_an_endpoint_that_refuses_connections_fails_each_post(api: FakeManagementApi) -> None:
    port = api.port
    api.stop()  # nothing listens there any more
    poster = ManagementApiPoster(
        f"http://127.0.0.1:{port}/live",
        region="us-east-1",
        credentials=lambda: TESTING,
        concurrency=2,
        timeout_seconds=1.0,
    )

    results = poster.post_all([Delivery("a", (b"{}",)), Delivery("b", (b"{}",))])
    poster.close()

    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert results[0].reason == "ConnectionRefusedError"


@pytest.mark.parametrize("token", ["session-token", None])
def test_the_signer_signs_as_botocore_does(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    moment = datetime(2031, 3, 5, 12, 0, 7, tzinfo=UTC)
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: moment.replace(tzinfo=None))
    url = "https://abc123.execute-api.ca-central-1.amazonaws.com/live/@connections/L0SM9cOFvHcCIhw%3D"
    body = b'{"type": "visitor_count_changed"}'
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token), "execute-api", "ca-central-1").add_auth(
        request
    )

    ours = SigV4Signer("execute-api", "ca-central-1").headers(
        host="abc123.execute-api.ca-central-1.amazonaws.com",
        canonical_path=SigV4Signer.canonical_path("/live/@connections/L0SM9cOFvHcCIhw%3D"),
        payload_sha256=hashlib.sha256(body).hexdigest(),
        credentials=ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token),
        amz_date="20310305T120007Z",
    )

    assert dict(ours) == {name: request.headers[name] for name, _ in ours}


def test_the_pusher_function_posts_counts_and_recovers(
    registry: ConnectionRegistry,
    community_id: str,
    api: FakeManagementApi,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VT_WEBSOCKET_ENDPOINT", api.endpoint)
    reset_factories()
    # The function signs with its own credentials (here moto's, which mock_aws puts in the environment)
    found = boto3.Session().get_credentials()
    assert found is not None
    own = found.get_frozen_credentials()
    api.access_key, api.secret_key, api.token = str(own.access_key), str(own.secret_key), own.token
    ok, throttled = f"{community_id}-ok", f"{community_id}-throttled"
    registry.subscribe(ok, community_id, T0)
    registry.subscribe(throttled, community_id, T0)
    get_tracker().add_visitor(visit(community_id, anonymous("s")), T0)
    api.answers[throttled] = 429
    remaining = iter([3500, 2500, 1500])  # two ticks, then the 2 s margin

    answer: dict[str, Any] = lambda_handler({}, LambdaContext(remaining_ms=lambda: next(remaining)))

    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [json.loads(b)["type"] for b in api.bodies(ok)] == ["visitor_count_changed", "visitor_divisions_updated"]
    assert len(api.bodies(throttled)) == 2  # tried at both ticks, and refused both times
    assert answer["failed"] == 2
    assert metrics[-1]["LivePostsFailed"] in (2, [2.0])  # one EMF line at the end of the invocation
    assert metrics[-1]["LiveMessagesPosted"] in (2, [2.0])
