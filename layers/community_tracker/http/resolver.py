"""The Powertools resolver both HTTP functions use: validation, OpenAPI, CORS, body limits."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig
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
    """Powertools' JSON body parser, refusing oversized bodies before parsing them."""
    limit = get_settings().max_body_bytes
    if len(body) > limit or len(body.encode()) > limit:
        raise BodyTooLarge(limit)
    try:
        return json.loads(body)
    except RecursionError as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_json", "the body is nested too deeply") from error


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


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def accept_text_plain_json(event: dict[str, Any]) -> dict[str, Any]:
    """`navigator.sendBeacon` posts strings as `text/plain` (it cannot set `application/json`
    without a CORS preflight); the body is still JSON, so it is labelled as such for Powertools'
    validation, which parses JSON only. Other media types are left alone and refused (415)."""
    headers = event.get("headers") or {}
    content_type = headers.get("content-type", "").strip().lower()
    if content_type.startswith("text/plain"):
        return {**event, "headers": {**headers, "content-type": JSON}}
    if content_type.startswith(_FORM_TYPES):
        # Powertools would parse forms itself, past the body cap (which guards the JSON parser):
        # labelled as what they are not, they take its unsupported-media-type path (415) instead.
        return {**event, "headers": {**headers, "content-type": f"unsupported/{content_type}"}}
    return event


def request_time_ms(event: APIGatewayProxyEventV2) -> int:
    """When API Gateway received the request: the one clock every part of a request uses."""
    return int(event.request_context.time_epoch)
