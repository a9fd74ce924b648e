"""What both HTTP functions share: the resolver, CORS, errors, the caller's identity.

Every error leaves as `{"error": {"code", "message"}}` from one place (`register_error_handlers`);
bad input is always a 4xx that names the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel
from redis.exceptions import RedisError

from community_tracker.beacons import HistoryUnavailable, LiveStateUnavailable
from community_tracker.identity import (
    IdentityProviderUnavailable,
    InvalidToken,
    Principal,
    bearer_token,
    get_token_verifier,
)
from community_tracker.models import Community
from community_tracker.observability import logger
from community_tracker.settings import Settings, get_settings
from community_tracker.stores import InvalidCursor, get_stores

JSON = "application/json"
# Headers a browser may read on a cross-origin answer (CORS exposes only safelisted ones otherwise).
EXPOSED_HEADERS = ["Retry-After", "X-Beacon-Dropped", "X-Beacon-Duplicate", "X-Live-State", "ETag"]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: HTTPStatus, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response[Any]:
    body = ErrorBody(error=ErrorDetail(code=code, message=message)).model_dump_json()
    return Response(status_code=status, content_type=JSON, body=body, headers=dict(headers or {}))


def json_response(status: HTTPStatus, model: BaseModel, headers: Mapping[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status, content_type=JSON, body=model.model_dump_json(), headers=dict(headers or {}))


def json_answer(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    """An OpenAPI `responses` entry for a JSON answer of `model`."""
    return {"description": description, "content": {JSON: {"model": model}}}


# A route's `responses=` replaces the 200 Powertools derives from its return type; listed without
# content, the 200 keeps that derived schema.
SUCCESS_RESPONSE: dict[int, OpenAPIResponse] = {200: {"description": "Successful Response"}}


def error_responses(*statuses: HTTPStatus) -> dict[int, OpenAPIResponse]:
    """OpenAPI `responses` entries for the error statuses a route can answer."""
    return {int(status): json_answer(status.phrase, ErrorBody) for status in statuses}


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body_too_large", f"the body exceeds {limit} bytes")


def validation_error_response(error: RequestValidationError) -> Response[Any]:
    """400 for a body that is not JSON; else 422 naming each field (at most five) and its problem."""
    errors = list(error.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(HTTPStatus.BAD_REQUEST, "invalid_json", "the body is not valid JSON")
    problems = [f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:5]]
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", "; ".join(problems) or "invalid request")


def unsupported_media_response() -> Response[Any]:
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json or text/plain"
    )


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Maps every known failure to its status, once for the whole function."""

    @app.exception_handler(ApiError)
    def _api_error(error: ApiError) -> Response[Any]:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[Any]:
        return validation_error_response(error)

    @app.exception_handler(RequestUnsupportedContentType)
    def _media_type(_error: RequestUnsupportedContentType) -> Response[Any]:
        return unsupported_media_response()

    @app.exception_handler(InvalidToken)
    def _token(error: InvalidToken) -> Response[Any]:
        return error_response(
            HTTPStatus.UNAUTHORIZED,
            "invalid_token",
            str(error),
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    @app.exception_handler(InvalidCursor)
    def _cursor(error: InvalidCursor) -> Response[Any]:
        return error_response(HTTPStatus.BAD_REQUEST, "invalid_cursor", str(error))

    @app.exception_handler(NotFoundError)
    def _no_route(_error: NotFoundError) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", "no such route")

    @app.exception_handler(LiveStateUnavailable)
    @app.exception_handler(RedisError)
    def _redis(error: Exception) -> Response[Any]:
        logger.warning("live state unavailable", extra={"error": type(error).__name__})
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "live_state_unavailable",
            "live visitor state is unavailable, try again shortly",
            {"Retry-After": "5"},
        )

    @app.exception_handler(HistoryUnavailable)
    def _history(error: HistoryUnavailable) -> Response[Any]:
        logger.warning("visit history unavailable", extra={"error": type(error.__cause__).__name__})
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "history_unavailable",
            "the visit could not be stored, try again shortly",
            {"Retry-After": "5"},
        )

    @app.exception_handler(IdentityProviderUnavailable)
    def _identity(error: IdentityProviderUnavailable) -> Response[Any]:
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "identity_unavailable", str(error))


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


def registered_community(community_id: str) -> Community:
    """The community, or 404 before Redis is touched: unknown ids never create keys."""
    community = get_stores().communities.get(community_id)
    if community is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "unknown_community", f"community {community_id} is not registered")
    return community


def principal_from(headers: Mapping[str, str], body_token: str | None = None) -> Principal | None:
    """The verified caller, from `Authorization: Bearer` or (sendBeacon) the body's `token`.

    No token: anonymous. A token that does not verify: `InvalidToken` (401), never anonymous.
    """
    token = bearer_token(headers) or body_token
    if token is None:
        return None
    return get_token_verifier().verify(token)


def require_principal(headers: Mapping[str, str]) -> Principal:
    principal = principal_from(headers)
    if principal is None:
        raise ApiError(
            HTTPStatus.UNAUTHORIZED,
            "token_required",
            "a bearer token is required",
            {"WWW-Authenticate": "Bearer"},
        )
    return principal


def require_admin(headers: Mapping[str, str]) -> Principal:
    principal = require_principal(headers)
    if not principal.is_admin:
        raise ApiError(HTTPStatus.FORBIDDEN, "forbidden", "this needs the admin role")
    return principal


def require_aggregate_reader(headers: Mapping[str, str]) -> Principal | None:
    """Counts need a valid token, unless public counts are enabled (a bad token is still 401)."""
    principal = principal_from(headers)
    if principal is None and not get_settings().public_counts:
        raise ApiError(
            HTTPStatus.UNAUTHORIZED, "token_required", "a bearer token is required", {"WWW-Authenticate": "Bearer"}
        )
    return principal


def require_self_or_admin(headers: Mapping[str, str], user_id: str) -> Principal:
    """A user's own data: that user, or an admin."""
    principal = require_principal(headers)
    if not principal.is_admin and principal.user_id != user_id:
        raise ApiError(HTTPStatus.FORBIDDEN, "forbidden", "only that user or an admin may see this")
    return principal
