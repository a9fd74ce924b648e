"""Stand-ins for the pusher's collaborators: a poster that records (and can fail), a summary reader
that can fail for chosen communities."""

from __future__ import annotations

import json
from typing import Any

from community_tracker.errors import LiveStateUnavailable, PostFailed
from community_tracker.live import SummaryReader
from community_tracker.models import Summary


class RecordingPoster:
    """Keeps what would be sent; connections in `gone` answer like a 410, connections in `failing`
    fail (with that reason) for as many posts as `failures` allows (None: for ever)."""

    def __init__(
        self, gone: set[str] | None = None, failing: dict[str, str] | None = None, failures: int | None = None
    ) -> None:
        self.sent: dict[str, list[dict[str, Any]]] = {}
        self.gone = gone or set()
        self.failing = failing or {}
        self.failures_left = failures
        self.attempts: dict[str, int] = {}

    def post(self, connection_id: str, data: bytes) -> bool:
        self.attempts[connection_id] = self.attempts.get(connection_id, 0) + 1
        if connection_id in self.gone:
            return False
        if connection_id in self.failing and (self.failures_left is None or self.failures_left > 0):
            if self.failures_left is not None:
                self.failures_left -= 1
            raise PostFailed(self.failing[connection_id])
        self.sent.setdefault(connection_id, []).append(json.loads(data))
        return True

    def types(self, connection_id: str) -> list[str]:
        return [m["type"] for m in self.sent.get(connection_id, [])]


class FailingReader:
    """The tracker, except that reading the communities in `down` fails as Redis would."""

    def __init__(self, tracker: SummaryReader, down: set[str]) -> None:
        self.tracker = tracker
        self.down = down

    def get_summary(self, community_id: str, now_ms: int, *, timeline_minutes: int = 60) -> Summary:
        if community_id in self.down:
            raise LiveStateUnavailable("live state unavailable (ConnectionError)")
        return self.tracker.get_summary(community_id, now_ms, timeline_minutes=timeline_minutes)
