"""The local run's scheduled functions come from the template's schedules (cleanup, then the alerts
that read its per-minute samples; the live pusher has a thread of its own), and the alerts' bus is
created in the emulator as the table is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from community_tracker.factories import reset_factories
from infra.gateway import Invoker, LocalGateway
from infra.local_run import LOCAL_EVENT_BUS_NAME, add_local_controls, ensure_event_bus, local_environment
from infra.local_run import scheduled_functions as local_schedules

NOW_MS = 1_930_000_000_000  # 2031-02-27T23:06:40Z


class RecordingInvoker(Invoker):
    """Records each scheduled invocation instead of running the handler."""

    def __init__(self) -> None:
        super().__init__(lambda: 0)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def now_ms(self) -> int:
        return NOW_MS

    def invoke(self, function: str, handler: str, event: dict[str, Any], timeout_ms: int = 30_000) -> dict[str, Any]:
        self.calls.append((function, handler, event))
        return {"function": function}


def test_every_scheduled_function_but_the_pusher_runs_in_template_order() -> None:
    invoker = RecordingInvoker()
    schedules = local_schedules(invoker)

    reports = schedules.run_now()

    assert [(function, handler) for function, handler, _ in invoker.calls] == [
        ("CleanupFunction", "cleanup.handler.lambda_handler"),
        ("AlertsFunction", "alerts.handler.lambda_handler"),
    ]
    assert reports == [{"function": "CleanupFunction"}, {"function": "AlertsFunction"}]
    # EventBridge's scheduled event, at the local run's (movable) clock.
    for _, _, event in invoker.calls:
        assert event["source"] == "aws.events"
        assert event["detail-type"] == "Scheduled Event"
        assert event["time"] == "2031-02-27T23:06:40Z"
    assert schedules.functions_of("cleanup") == ["CleanupFunction"]
    assert schedules.functions_of("alerts") == ["AlertsFunction"]


def test_local_controls_run_a_cleanup_or_an_alerts_pass_alone() -> None:
    invoker = RecordingInvoker()
    gateway = LocalGateway(invoker, routes=[])
    add_local_controls(gateway, local_schedules(invoker), {"ms": 0})

    alerts = gateway.handle("POST", "/_local/alerts", {}, b"", "127.0.0.1")
    cleanup = gateway.handle("POST", "/_local/cleanup", {}, b"", "127.0.0.1")

    assert (alerts.status, json.loads(alerts.body)) == (200, [{"function": "AlertsFunction"}])
    assert (cleanup.status, json.loads(cleanup.body)) == (200, [{"function": "CleanupFunction"}])
    assert [function for function, _, _ in invoker.calls] == ["AlertsFunction", "CleanupFunction"]


def test_the_functions_are_told_the_local_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VT_EVENT_BUS_NAME", raising=False)
    assert local_environment(3000, "redis://x", "localhost:4566")["VT_EVENT_BUS_NAME"] == LOCAL_EVENT_BUS_NAME
    monkeypatch.setenv("VT_EVENT_BUS_NAME", "my-bus")
    assert local_environment(3000, "redis://x", "localhost:4566")["VT_EVENT_BUS_NAME"] == "my-bus"


@pytest.fixture
def emulated_events(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("VT_EVENT_BUS_NAME", LOCAL_EVENT_BUS_NAME)
    with mock_aws():
        reset_factories()
        yield boto3.client("events", region_name="us-east-1")
    reset_factories()


def test_the_alerts_bus_is_created_once(emulated_events: Any) -> None:
    assert ensure_event_bus() is True
    assert ensure_event_bus() is False
    names = [bus["Name"] for bus in emulated_events.list_event_buses()["EventBuses"]]
    assert sorted(names) == sorted(["default", LOCAL_EVENT_BUS_NAME])


def test_the_default_bus_is_never_created(emulated_events: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_EVENT_BUS_NAME", "default")
    reset_factories()

    assert ensure_event_bus() is False
    assert [bus["Name"] for bus in emulated_events.list_event_buses()["EventBuses"]] == ["default"]
