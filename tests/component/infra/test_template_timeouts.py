"""Function timeouts leave room for a 503 with Retry-After: the worst case of the calls a request
makes (Redis with one retry, DynamoDB with two attempts) is at most half the Lambda timeout, and the
timeout is below API Gateway's, so a slow backend is never answered by a bare gateway 500."""

from __future__ import annotations

from typing import Any

from tests.component.infra.sam_template import environment

REQUEST_FUNCTIONS = ("TrackVisitFunction", "StatsFunction", "LiveConnectionsFunction")
REDIS_ATTEMPTS = 2  # one retry
DYNAMODB_ATTEMPTS, DYNAMODB_CONNECT_S, DYNAMODB_READ_S = 2, 1.0, 1.0
HTTP_API_INTEGRATION_TIMEOUT_S = 30  # HTTP API's (and the WebSocket API's 29 s) ceiling


def worst_case_seconds(template: dict[str, Any], function: str) -> float:
    redis_timeout = float(environment(template, function)["VT_REDIS_SOCKET_TIMEOUT_SECONDS"])
    # Kept-alive connections: each DynamoDB attempt is a read timeout; at most one fresh connect.
    dynamodb = DYNAMODB_ATTEMPTS * DYNAMODB_READ_S + DYNAMODB_CONNECT_S
    return REDIS_ATTEMPTS * redis_timeout + dynamodb


def test_the_template_sets_the_redis_timeout_the_budget_assumes(template: dict[str, Any]) -> None:
    assert template["Globals"]["Function"]["Environment"]["Variables"]["VT_REDIS_SOCKET_TIMEOUT_SECONDS"] == "1"


def test_request_functions_answer_before_their_timeout(template: dict[str, Any]) -> None:
    for function in REQUEST_FUNCTIONS:
        timeout = template["Resources"][function]["Properties"]["Timeout"]
        assert worst_case_seconds(template, function) <= 5
        assert 2 * worst_case_seconds(template, function) <= timeout, function
        assert timeout < HTTP_API_INTEGRATION_TIMEOUT_S - 1, function
    assert template["Resources"]["TrackVisitFunction"]["Properties"]["Timeout"] == 10
    assert template["Resources"]["StatsFunction"]["Properties"]["Timeout"] == 10
