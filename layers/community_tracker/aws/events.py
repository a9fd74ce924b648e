"""Alert events on EventBridge (`PutEvents`, on the bus named by `VT_EVENT_BUS_NAME`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from community_tracker.alerts import EVENT_SOURCE, Alert
from community_tracker.aws.clients import aws_client
from community_tracker.errors import AlertDeliveryFailed
from community_tracker.factories import cached_factory
from community_tracker.settings import get_settings

PUT_EVENTS_BATCH = 10  # PutEvents takes at most ten entries


class EventBridgePublisher:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def entry(self, alert: Alert) -> dict[str, Any]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": alert.detail_type,
            "Detail": alert.model_dump_json(),
            "EventBusName": self._bus,
            "Resources": [],
        }

    def publish(self, alerts: Sequence[Alert]) -> None:
        for start in range(0, len(alerts), PUT_EVENTS_BATCH):
            entries = [self.entry(alert) for alert in alerts[start : start + PUT_EVENTS_BATCH]]
            try:
                answer = self._client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise AlertDeliveryFailed(f"alert events not delivered ({type(error).__name__})") from error
            if answer.get("FailedEntryCount", 0):
                codes = sorted({e.get("ErrorCode", "?") for e in answer.get("Entries", []) if e.get("ErrorCode")})
                raise AlertDeliveryFailed(f"{answer['FailedEntryCount']} alert events refused ({', '.join(codes)})")


@cached_factory
def get_publisher() -> EventBridgePublisher:
    return EventBridgePublisher(aws_client("events"), get_settings().event_bus_name)
