"""Every error answer of the HTTP API: one body shape, and each known failure mapped to its
status once (`register_error_handlers`). Bad input is always a 4xx that names the problem."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from community_tracker.errors import (
    DirectoryUnavailable,
    Forbidden,
    HistoryUnavailable,
    IdentityProviderUnavailable,
    InvalidCursor,
    InvalidToken,
    LiveStateUnavailable,
    SecretUnavailable,
    TokenRequired,
    UnknownCommunity,
)
from community_tracker.observability import logger

JSON = "application/json"
RETRY_AFTER_SECONDS = 5


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


class ApiError(Exception):
    """An answer decided by a route itself (a refusal that is not one of the domain's errors)."""

    def __init__(self, status: HTTPStatus, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body_too_large", f"the body exceeds {limit} bytes")


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


def unavailable_response(code: str, message: str) -> Response[Any]:
    """503 with `Retry-After`: an outage, never a client's fault."""
    return error_response(HTTPStatus.SERVICE_UNAVAILABLE, code, message, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def token_required_response() -> Response[Any]:
    return error_response(
        HTTPStatus.UNAUTHORIZED, "token_required", "a bearer token is required", {"WWW-Authenticate": "Bearer"}
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

    @app.exception_handler(TokenRequired)
    def _no_token(_error: TokenRequired) -> Response[Any]:
        return token_required_response()

    @app.exception_handler(Forbidden)
    def _forbidden(error: Forbidden) -> Response[Any]:
        return error_response(HTTPStatus.FORBIDDEN, "forbidden", str(error))

    @app.exception_handler(UnknownCommunity)
    def _unknown_community(error: UnknownCommunity) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, "unknown_community", str(error))

    @app.exception_handler(InvalidCursor)
    def _cursor(error: InvalidCursor) -> Response[Any]:
        return error_response(HTTPStatus.BAD_REQUEST, "invalid_cursor", str(error))

    @app.exception_handler(NotFoundError)
    def _no_route(_error: NotFoundError) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", "no such route")

    @app.exception_handler(LiveStateUnavailable)
    def _live_state(error: LiveStateUnavailable) -> Response[Any]:
        logger.warning("live state unavailable", extra={"error": type(error.__cause__).__name__})
        return unavailable_response("live_state_unavailable", "live visitor state is unavailable, try again shortly")

    @app.exception_handler(HistoryUnavailable)
    def _history(error: HistoryUnavailable) -> Response[Any]:
        logger.warning("visit history unavailable", extra={"error": type(error.__cause__).__name__})
        return unavailable_response("history_unavailable", "the visit history is unavailable, try again shortly")

    @app.exception_handler(DirectoryUnavailable)
    def _directory(error: DirectoryUnavailable) -> Response[Any]:
        logger.warning("community directory unavailable", extra={"error": type(error.__cause__).__name__})
        return unavailable_response(
            "directory_unavailable", "the community directory is unavailable, try again shortly"
        )

    @app.exception_handler(SecretUnavailable)
    def _secret(error: SecretUnavailable) -> Response[Any]:
        logger.warning("secret unavailable", extra={"error": type(error.__cause__).__name__})
        return unavailable_response("identity_unavailable", "identity cannot be checked right now, try again shortly")

    @app.exception_handler(IdentityProviderUnavailable)
    def _identity(error: IdentityProviderUnavailable) -> Response[Any]:
        return unavailable_response("identity_unavailable", str(error))
