"""The spike and drop rule against played per-minute series (pure: no Redis, no AWS)."""

from __future__ import annotations

from collections.abc import Sequence

from community_tracker.alerts import (
    DEFAULT_RULE,
    QUIET,
    Alert,
    AlertRule,
    AlertState,
    baseline,
    evaluate,
)
from tests.builders import MINUTE, T0


def play(counts: Sequence[int], rule: AlertRule = DEFAULT_RULE, *, start: int = 60) -> tuple[list[Alert], list[str]]:
    """Evaluates each minute from `start` on: the live count is that minute's, the baseline the
    `baseline_minutes` before it. Returns the alerts fired and the ids of those that ended."""
    state: AlertState = QUIET
    fired: list[Alert] = []
    ended: list[str] = []
    for minute in range(start, len(counts)):
        series = counts[max(0, minute - rule.baseline_minutes) : minute]
        decision = evaluate("c1", rule, state, live=counts[minute], series=list(series), now_ms=T0 + minute * MINUTE)
        state = decision.state
        if decision.fired:
            fired.append(decision.fired)
        if decision.ended:
            ended.append(decision.ended)
    return fired, ended


def test_baseline_is_the_median() -> None:
    assert baseline([1, 2, 100]) == 2
    assert baseline([1, 2, 3, 100]) == 2.5
    assert baseline([]) == 0


def test_one_spike_fires_exactly_once_while_it_lasts() -> None:
    # An hour at 20, then 12 minutes around 80 (one dip to 50, below 3 x 20), then 20 again
    spike = [80, 85, 90, 75, 50, 70, 88, 90, 79, 81, 77, 83]
    fired, ended = play([20] * 70 + spike + [20] * 20)

    assert [(a.kind, a.live_visitors, a.baseline, a.threshold) for a in fired] == [("spike", 80, 20.0, 60.0)]
    assert fired[0].started_at == "2031-03-05T13:10:00.000Z"
    assert fired[0].alert_id == "20310305T1310Z-spike"
    assert fired[0].detail_type == "VisitorSpike"
    assert ended == [fired[0].alert_id]  # after five quiet minutes


def test_a_spike_fires_again_only_after_the_first_one_ended() -> None:
    # Two bursts ten minutes apart: the cooldown (5 minutes) passed in between
    fired, _ = play([20] * 70 + [90] * 3 + [20] * 10 + [90] * 3 + [20] * 5)
    assert [a.kind for a in fired] == ["spike", "spike"]

    # Two bursts three minutes apart: still the same spike
    fired, _ = play([20] * 70 + [90] * 3 + [20] * 3 + [90] * 3 + [20] * 5)
    assert [a.kind for a in fired] == ["spike"]


def test_a_drop_fires_once() -> None:
    fired, _ = play([30] * 70 + [5] * 15 + [30] * 10)

    assert [(a.kind, a.live_visitors, a.baseline, a.threshold) for a in fired] == [("drop", 5, 30.0, 10.0)]
    assert fired[0].detail_type == "VisitorDrop"


def test_small_numbers_are_no_spike_and_small_baselines_no_drop() -> None:
    # 1 -> 8 is eight times the baseline but below the minimum of 10; 4 -> 0 drops from too little
    assert play([1] * 70 + [8] * 5)[0] == []
    assert play([4] * 70 + [0] * 5)[0] == []
    # A community coming alive from nothing is a spike once it has the minimum
    assert [a.kind for a in play([0] * 70 + [12] * 5)[0]] == ["spike"]


def test_a_custom_rule_changes_the_thresholds() -> None:
    counts = [20] * 70 + [50] * 5
    assert play(counts)[0] == []  # 50 is not above 3 x 20

    rule = AlertRule(spike_factor=2.0, min_visitors=5, baseline_minutes=30)
    fired, _ = play(counts, rule)
    assert [(a.kind, a.threshold, a.rule_source) for a in fired] == [("spike", 40.0, "default")]
    assert fired[0].rule == rule


def test_a_disabled_rule_fires_nothing() -> None:
    assert play([20] * 70 + [500] * 5, AlertRule(enabled=False))[0] == []


def test_a_spike_that_turns_into_a_drop_is_a_new_alert() -> None:
    fired, ended = play([30] * 70 + [200] * 2 + [1] * 3)

    assert [a.kind for a in fired] == ["spike", "drop"]
    assert ended == [fired[0].alert_id]
