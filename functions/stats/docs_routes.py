"""The API's OpenAPI document and Swagger UI.

The document covers every route of both HTTP functions; it is generated from their pydantic models
by `make openapi` (infra/openapi.py) and shipped in the layer, so serving it costs no schema
generation at run time. A test checks that the shipped file is current.
"""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from importlib.resources import files
from pathlib import Path
from typing import Any

import aws_lambda_powertools.event_handler.openapi.swagger_ui as swagger_ui
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

from community_tracker.http.resolver import http_router

router = http_router()


@cache
def openapi_document() -> str:
    return (files("community_tracker") / "openapi.json").read_text(encoding="utf-8")


@cache
def _swagger_page() -> str:
    assets = Path(swagger_ui.__file__).parent
    return generate_swagger_html(
        openapi_document().replace("</", "<\\/"),
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
    )


@router.get("/v1/openapi.json", include_in_schema=False)
def get_openapi() -> Response[Any]:
    return Response(
        status_code=HTTPStatus.OK,
        content_type="application/json",
        body=openapi_document(),
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/v1/docs", include_in_schema=False)
def get_docs() -> Response[Any]:
    return Response(
        status_code=HTTPStatus.OK,
        content_type="text/html",
        body=_swagger_page(),
        headers={"Cache-Control": "public, max-age=300"},
    )
