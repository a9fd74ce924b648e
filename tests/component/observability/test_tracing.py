"""What X-Ray would be given: the handlers' subsegments carry no answer, no user id, no export.

The shared Powertools tracer is handed a provider that records every annotation and metadata the
handlers put on their subsegments (what the X-Ray SDK would send), instead of a daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from community_tracker.models import Community
from community_tracker.observability import tracer
from community_tracker.settings import get_settings
from infra.tokens import mint_token
from stats.handler import lambda_handler as stats_handler
from tests.helpers import api_request, beacon, call


class RecordingSubsegment:
    def __init__(self, name: str) -> None:
        self.name = name
        self.recorded: list[tuple[str, str, Any]] = []

    def put_annotation(self, key: str, value: Any) -> None:
        self.recorded.append(("annotation", key, value))

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.recorded.append(("metadata", f"{namespace}.{key}", value))

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        self.recorded.append(("exception", type(exception).__name__, str(exception)))


class RecordingProvider:
    def __init__(self) -> None:
        self.subsegments: list[RecordingSubsegment] = []

    @contextmanager
    def in_subsegment(self, name: str | None = None, **_kwargs: Any) -> Iterator[RecordingSubsegment]:
        subsegment = RecordingSubsegment(name or "")
        self.subsegments.append(subsegment)
        yield subsegment

    def put_annotation(self, key: str, value: Any) -> None:
        self.subsegments.append(RecordingSubsegment(f"annotation {key}={value}"))

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        self.subsegments.append(RecordingSubsegment(f"metadata {key}={value}"))

    def everything(self) -> str:
        return json.dumps([(s.name, s.recorded) for s in self.subsegments], default=str)


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> RecordingProvider:
    provider = RecordingProvider()
    monkeypatch.setattr(tracer, "provider", provider)
    return provider


def bearer(user_id: str, *, admin: bool = False) -> dict[str, str]:
    roles = ["admin"] if admin else []
    return {"authorization": f"Bearer {mint_token(get_settings(), user_id, roles=roles)}"}


def stats_get(path: str, template: str, params: dict[str, str], headers: dict[str, str]) -> Any:
    answer = call(stats_handler, api_request("GET", path, template=template, path_parameters=params, headers=headers))
    assert answer.status == 200, answer.body
    return answer.json()


def test_no_answer_or_user_id_reaches_the_trace(community: Community, traced: RecordingProvider) -> None:
    cid = community.community_id
    # A beacon of a user, then the user's export and an admin's visitor list and history
    counted = beacon(cid, {"url": "https://x.example/c/", "event_id": "evt-trace-0001"}, headers=bearer("alice-trace"))
    assert counted.status == 200, counted.body
    export = stats_get(
        "/v1/users/alice-trace/visits/export",
        "/v1/users/{user_id}/visits/export",
        {"user_id": "alice-trace"},
        bearer("alice-trace"),
    )
    listing = stats_get(
        f"/v1/communities/{cid}/visitors",
        "/v1/communities/{community_id}/visitors",
        {"community_id": cid},
        bearer("ops", admin=True),
    )
    history = stats_get(
        f"/v1/communities/{cid}/visits",
        "/v1/communities/{community_id}/visits",
        {"community_id": cid},
        bearer("ops", admin=True),
    )
    # personal data was served
    assert export["visits"]
    assert listing["visitors"]
    assert history["visits"]

    # Then each handler opened its subsegment, and none of it is in what the tracer recorded
    assert [s.name for s in traced.subsegments] == ["## lambda_handler"] * 4
    recorded = traced.everything()
    assert "alice-trace" not in recorded
    assert "evt-trace-0001" not in recorded
    assert "current_count" not in recorded
    assert "visits" not in recorded
    assert {kind for s in traced.subsegments for kind, _key, _value in s.recorded} <= {"annotation"}
