"""The stats routes that take a body (alert rule, share links) refuse what is not JSON with a 4xx
naming the problem, never a 5xx (found by the OpenAPI fuzzing: a multipart body was a 500)."""

from __future__ import annotations

import base64

import pytest

from community_tracker.models import Community
from stats.handler import lambda_handler
from tests.component.stats.test_stats_routes import token
from tests.helpers import HttpAnswer, api_request, call

BODY_ROUTES = [("PUT", "alert-rule"), ("POST", "share-links")]


def send(
    community: Community, method: str, suffix: str, body: str, content_type: str, *, b64: bool = False
) -> HttpAnswer:
    cid = community.community_id
    event = api_request(
        method,
        f"/v1/communities/{cid}/{suffix}",
        template=f"/v1/communities/{{community_id}}/{suffix}",
        path_parameters={"community_id": cid},
        body=body,
        headers={**token("ops", admin=True), "content-type": content_type},
    )
    if b64:
        event["isBase64Encoded"] = True
    return call(lambda_handler, event)


@pytest.mark.parametrize(("method", "suffix"), BODY_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]
)
def test_forms_are_415(community: Community, method: str, suffix: str, content_type: str) -> None:
    answer = send(community, method, suffix, "a=1", content_type)

    assert answer.status == 415
    assert answer.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(("method", "suffix"), BODY_ROUTES)
def test_a_body_that_is_not_utf8_is_400(community: Community, method: str, suffix: str) -> None:
    answer = send(community, method, suffix, base64.b64encode(b"\xff\xfe{").decode(), "application/json", b64=True)

    assert answer.status == 400
    assert answer.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(("method", "suffix"), BODY_ROUTES)
def test_an_oversized_body_is_413(community: Community, method: str, suffix: str) -> None:
    answer = send(community, method, suffix, '{"label": "' + "x" * 10_000 + '"}', "application/json")

    assert answer.status == 413
