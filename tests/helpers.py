"""Test helpers: sample events, a Lambda context, invoking handlers, forgetting cached factories."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from moto.core.models import botocore_stubber

from infra.http_api_events import http_api_event
from tests.builders import T0
from track_visit.handler import lambda_handler as beacon_handler

EVENTS = Path(__file__).resolve().parent / "events"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from tests/events/ (a fresh copy each time)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(event)


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    remaining_ms: Callable[[], int] = lambda: 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms()


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def call(handler: Callable[[dict[str, Any], Any], dict[str, Any]], event: dict[str, Any]) -> HttpAnswer:
    raw = handler(event, LambdaContext())
    headers = {name.lower(): value for name, value in (raw.get("headers") or {}).items()}
    return HttpAnswer(status=raw["statusCode"], headers=headers, body=raw.get("body") or "")


def route_key(method: str, template: str) -> str:
    return f"{method} {template}"


def api_request(
    method: str,
    path: str,
    *,
    template: str,
    path_parameters: Mapping[str, str],
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    query: str = "",
    now_ms: int | None = None,
    source_ip: str = "198.51.100.23",
) -> dict[str, Any]:
    """An HTTP API v2 event; a dict body is sent as JSON."""
    all_headers = {"user-agent": BROWSER, "host": "api.test", **(headers or {})}
    if isinstance(body, dict):
        all_headers.setdefault("content-type", "application/json")
        body = json.dumps(body)
    return http_api_event(
        method,
        path,
        route_key=route_key(method, template),
        path_parameters=path_parameters,
        query=query,
        headers=all_headers,
        body=body,
        now_ms=now_ms,
        source_ip=source_ip,
    )


class _RawBody:
    """What botocore reads an HTTP body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._body

    def read(self) -> bytes:
        return self._body


def aws_error(
    status: int, code: str, *, json_type: str | None = None, extra: dict[str, Any] | None = None
) -> AWSResponse:
    """An AWS error answer for a `before-send` hook, so botocore's real retry and error handling
    see it: `json_type` is DynamoDB's `__type` prefix; otherwise the code goes in x-amzn-ErrorType."""
    headers = HTTPHeaders()
    if json_type is None:
        headers["x-amzn-ErrorType"] = code
        body = {"message": code}
    else:
        body = {"__type": f"{json_type}#{code}", "message": "injected", **(extra or {})}
    return AWSResponse("https://aws.test", status, headers, _RawBody(json.dumps(body).encode()))


DYNAMODB_ERROR_TYPE = "com.amazonaws.dynamodb.v20120810"


def beacon(
    community_id: str,
    body: Any,
    *,
    kind: str = "visits",
    headers: dict[str, str] | None = None,
    query: str = "",
    now_ms: int = T0,
    source_ip: str = "198.51.100.23",
) -> HttpAnswer:
    """One beacon into the track_visit handler, as API Gateway would deliver it."""
    event = api_request(
        "POST",
        f"/v1/communities/{community_id}/{kind}",
        template=f"/v1/communities/{{community_id}}/{kind}",
        path_parameters={"community_id": community_id},
        body=body,
        headers=headers,
        query=query,
        now_ms=now_ms,
        source_ip=source_ip,
    )
    return call(beacon_handler, event)


@contextmanager
def only_this_answers(client: Any, event: str, handler: Callable[..., AWSResponse]) -> Iterator[None]:
    """`handler` answers `event` for `client`, and moto's in-process stub does not see it.

    botocore *emits* `before-send` to every handler and uses the first answer, so under
    `mock_aws` moto would still carry out (and store) a request that an injected error answered:
    its stub is switched off while `handler` answers, so the failure really is the only outcome.
    """
    client.meta.events.register_first(event, handler)
    botocore_stubber.enabled = False
    try:
        yield
    finally:
        botocore_stubber.enabled = True
        client.meta.events.unregister(event, handler)
