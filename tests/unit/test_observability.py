"""A dropped beacon's metric respects the switch that turns metrics off (the local run sets it)."""

from __future__ import annotations

import pytest

from community_tracker.observability import count_dropped


def test_a_dropped_beacon_prints_no_metric_when_metrics_are_disabled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    count_dropped("bot")

    assert capsys.readouterr().out == ""


def test_a_dropped_beacon_is_one_metric_with_its_reason_otherwise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)

    count_dropped("bot")

    out = capsys.readouterr().out
    assert '"BeaconsDropped"' in out
    assert '"reason":"bot"' in out
