"""Builds the API's OpenAPI document from both HTTP functions' resolvers (Powertools generates
each from the pydantic models; OpenAPIMerge joins them) and keeps the shipped copy current."""

from __future__ import annotations

from pathlib import Path

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

SPEC_PATH = Path(__file__).resolve().parent.parent / "layers" / "community_tracker" / "openapi.json"
TITLE = "Community visitor tracker"
VERSION = "1.0.0"
DESCRIPTION = (
    "Live presence and visit history of community pages. Beacons (`/visits`, `/heartbeat`, `/leave`) "
    "accept an optional bearer token (or a `token` body field, for sendBeacon); the stats routes need "
    "one unless public counts are enabled; visitor lists and histories need the admin role."
)


def build_spec() -> str:
    from stats.handler import app as stats_app
    from track_visit.handler import app as beacon_app

    security_schemes = {"bearerAuth": HTTPBearer(bearerFormat="JWT")}
    merge = OpenAPIMerge(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        security_schemes=security_schemes,  # type: ignore[arg-type]
        security=[{"bearerAuth": []}, {}],
        on_conflict="error",
    )
    for app in (beacon_app, stats_app):
        merge.add_schema(
            app.get_openapi_schema(title=TITLE, version=VERSION).model_dump(by_alias=True, exclude_none=True)
        )
    return merge.get_openapi_json_schema() + "\n"


def write_spec() -> Path:
    SPEC_PATH.write_text(build_spec(), encoding="utf-8")
    return SPEC_PATH


def spec_is_current() -> bool:
    return SPEC_PATH.exists() and SPEC_PATH.read_text(encoding="utf-8") == build_spec()
