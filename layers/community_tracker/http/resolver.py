"""The Powertools resolver both HTTP functions use: validation, OpenAPI, CORS, body limits."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from community_tracker.http.errors import JSON, ApiError, BodyTooLarge, register_error_handlers
from community_tracker.settings import Settings, get_settings

# Headers a browser may read on a cross-origin answer (CORS exposes only safelisted ones otherwise).
EXPOSED_HEADERS = ["Retry-After", "X-Beacon-Dropped", "X-Beacon-Duplicate", "X-Live-State", "ETag"]


def http_router() -> APIGatewayHttpRouter:
    """A Powertools router for HTTP API (v2) events (its constructor has no type hints)."""
    return APIGatewayHttpRouter()  # type: ignore[no-untyped-call]


def cors_config(settings: Settings) -> CORSConfig | None:
    """Only the configured origins get a CORS grant; any other origin gets no CORS headers."""
    origins = settings.cors_origins
    if not origins:
        return None
    return CORSConfig(
        allow_origin=origins[0],
        extra_origins=origins[1:],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )


def capped_json_loads(body: str) -> Any:
    """Powertools' JSON body parser, refusing oversized bodies before parsing them.

    Every body of the API is a JSON object: anything else is refused here (422), because
    Powertools would take the first element of an array as the body."""
    limit = get_settings().max_body_bytes
    if len(body) > limit or len(body.encode()) > limit:
        raise BodyTooLarge(limit)
    try:
        document = json.loads(body)
    except RecursionError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_json", "the body is nested too deeply") from error
    if not isinstance(document, dict):
        kind = "an array" if isinstance(document, list) else "not an object"
        raise RequestValidationError(
            [{"type": "model_attributes_type", "loc": ("body",), "msg": f"the body must be a JSON object, not {kind}"}]
        )
    return document


def build_resolver() -> APIGatewayHttpResolver:
    """The HTTP API (payload v2) resolver both functions use, with validation and OpenAPI.

    CORS origins are read here, at cold start: they are deployment configuration, and Powertools
    applies CORS at the resolver.
    """
    app = APIGatewayHttpResolver(
        cors=cors_config(get_settings()),
        enable_validation=True,
        json_body_deserializer=capped_json_loads,
    )
    register_error_handlers(app)
    return app


_JSON_MEDIA_TYPES = ("application/json", "text/plain")


def accept_text_plain_json(event: dict[str, Any]) -> dict[str, Any]:
    """The media type of a request body, decided once, before Powertools sees it.

    `application/json` and `text/plain` (what `navigator.sendBeacon` posts a string as: it cannot
    set `application/json` without a CORS preflight) are JSON, compared without case and
    parameters as RFC 9110 says, and labelled `application/json` for Powertools' validation.
    Every other media type, and a body without one (Powertools would take it for JSON), is
    labelled as what Powertools does not parse, so it takes the unsupported-media-type path (415):
    forms in particular would otherwise be parsed past the body cap, which guards the JSON parser.
    """
    headers = event.get("headers") or {}
    content_type = headers.get("content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in _JSON_MEDIA_TYPES:
        return {**event, "headers": {**headers, "content-type": JSON}}
    if media_type:
        return {**event, "headers": {**headers, "content-type": f"unsupported/{media_type}"}}
    if event.get("body"):
        return {**event, "headers": {**headers, "content-type": "unsupported/none"}}
    return event


def vary_on_origin(answer: dict[str, Any]) -> dict[str, Any]:
    """`Vary: Origin` on every answer of a function that grants CORS to listed origins.

    Whether an answer carries `Access-Control-Allow-Origin`, and which origin it echoes, depends
    on the request's Origin: a cache that ignored it would hand one origin's grant (or refusal)
    to another."""
    if not get_settings().cors_origins:
        return answer
    headers = dict(answer.get("headers") or {})
    name = next((key for key in headers if key.lower() == "vary"), "Vary")
    values = [v.strip() for v in str(headers.get(name, "")).split(",") if v.strip()]
    if not any(value.lower() in ("origin", "*") for value in values):
        headers[name] = ", ".join([*values, "Origin"])
    return {**answer, "headers": headers}


def request_time_ms(event: APIGatewayProxyEventV2) -> int:
    """When API Gateway received the request: the one clock every part of a request uses."""
    return int(event.request_context.time_epoch)
