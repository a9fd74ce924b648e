"""Lambda entry point of the beacon function (API Gateway HTTP API, payload v2)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from community_tracker.agents import prime_device_rules
from community_tracker.aws.stores import get_stores
from community_tracker.factories import warm_before_snapshot
from community_tracker.http.errors import (
    BodyTooLarge,
    error_response,
    unsupported_media_response,
    validation_error_response,
)
from community_tracker.http.resolver import accept_text_plain_json, build_resolver, vary_on_origin
from community_tracker.observability import correlate, logger, metrics, tracer
from track_visit import beacon_routes, community_routes

app = build_resolver()
app.include_router(beacon_routes.router)
app.include_router(community_routes.router)
# A page view's live context needs its device class: ua-parser's rules compiled during init (in the
# SnapStart snapshot; locally, before an execution environment takes its first invocation).
prime_device_rules()
# SnapStart: the DynamoDB resource (the community lookup's) is built before the snapshot.
warm_before_snapshot(get_stores)


# Malformed beacons are answered as everywhere else, and also counted as "invalid" drops of the
# community they were sent to (only a registered one: garbage ids must not create keys).
@app.exception_handler(RequestValidationError)
def _invalid_beacon(error: RequestValidationError) -> Response[Any]:
    beacon_routes.count_invalid_beacon(app.current_event)
    return validation_error_response(error)


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_beacon(_error: RequestUnsupportedContentType) -> Response[Any]:
    beacon_routes.count_invalid_beacon(app.current_event)
    return unsupported_media_response()


@app.exception_handler(BodyTooLarge)
def _oversized_beacon(error: BodyTooLarge) -> Response[Any]:
    beacon_routes.count_invalid_beacon(app.current_event)
    return error_response(error.status, error.code, error.message)


# A body API Gateway delivered base64-encoded (not text) that is not UTF-8 cannot be JSON: Powertools
# fails decoding it before any parser runs, which would otherwise be a 500.
@app.exception_handler(UnicodeDecodeError)
def _undecodable_beacon(_error: UnicodeDecodeError) -> Response[Any]:
    beacon_routes.count_invalid_beacon(app.current_event)
    return error_response(HTTPStatus.BAD_REQUEST, "invalid_json", "the body is not UTF-8 encoded JSON")


# No answer in the trace: a beacon's answer describes its visitor (and the admin route's a community).
# Only the ColdStart and Service annotations are recorded.
@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate(event)
    return vary_on_origin(app.resolve(accept_text_plain_json(event), context))
