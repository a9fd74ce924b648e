"""Spike and drop alerts (README, "Spike and drop alerts"): one rule per community, evaluated
every minute against the community's own per-minute history.

The baseline is the median of the per-minute series (the highest live count of each minute) over
the `baseline_minutes` whole minutes before now. A **spike** is a live count above
`spike_factor` x baseline and at least `min_visitors`; a **drop** is a live count below baseline /
`drop_factor` when the baseline was at least `min_visitors`. An alert fires once on entering
either state; while the condition keeps holding nothing more is sent; it ends after
`cooldown_minutes` without the condition, and only then can the same kind fire again. A spike
that turns straight into a drop (or back) is a new alert.

Nothing here knows Redis, DynamoDB or EventBridge: `run_alert_pass` takes small Protocols, the
adapters are `redis/alert_state.py`, `aws/alert_stores.py` and `aws/events.py`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import ConfigDict, Field

from community_tracker.models import Frozen
from community_tracker.timeutil import MINUTE_MS, iso, to_datetime

AlertKind = Literal["spike", "drop"]
EVENT_SOURCE = "community-visitor-tracker"
DETAIL_TYPES: dict[AlertKind, str] = {"spike": "VisitorSpike", "drop": "VisitorDrop"}
MAX_BASELINE_MINUTES = 24 * 60


class AlertRule(Frozen):
    """A community's rule; the default (every field's default) applies until an admin sets one."""

    # Strict: JSON types exactly (`0` is no `false`, `"10"` no number); unknown fields are named.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    enabled: bool = True
    spike_factor: float = Field(default=3.0, ge=1.1, le=1000, description="spike: live > factor x baseline")
    drop_factor: float = Field(default=3.0, ge=1.1, le=1000, description="drop: live < baseline / factor")
    min_visitors: int = Field(
        default=10, ge=1, le=10_000_000, description="a spike needs this many live, a drop this baseline"
    )
    baseline_minutes: int = Field(
        default=60, ge=10, le=MAX_BASELINE_MINUTES, description="median of this many whole minutes before now"
    )
    cooldown_minutes: int = Field(default=5, ge=1, le=240, description="an alert ends after this long without breach")


DEFAULT_RULE = AlertRule()
RuleSource = Literal["default", "custom"]


class EffectiveRule(Frozen):
    community_id: str
    source: RuleSource
    rule: AlertRule


class Alert(Frozen):
    """One alert: the EventBridge event's `detail`, and an item of the alert history."""

    alert_id: str
    community_id: str
    kind: AlertKind
    live_visitors: int
    baseline: float
    threshold: float
    rule: AlertRule
    rule_source: RuleSource
    started_at: str
    ended_at: str | None = None

    @property
    def detail_type(self) -> str:
        return DETAIL_TYPES[self.kind]


class AlertState(Frozen):
    """What a community's alert is doing between two evaluations (kept in Redis)."""

    kind: AlertKind | None = None
    alert_id: str | None = None
    started_ms: int | None = None
    last_breach_ms: int | None = None


QUIET = AlertState()


def baseline(series: Sequence[int]) -> float:
    """Median of the per-minute series (0 for an empty one)."""
    return float(statistics.median(series)) if series else 0.0


def breach(rule: AlertRule, live: int, base: float) -> tuple[AlertKind | None, float]:
    """Which condition holds now, if any, and the threshold it was measured against."""
    spike_threshold = max(float(rule.min_visitors), rule.spike_factor * base)
    if live > rule.spike_factor * base and live >= rule.min_visitors:
        return "spike", spike_threshold
    drop_threshold = base / rule.drop_factor
    if base >= rule.min_visitors and live < drop_threshold:
        return "drop", drop_threshold
    return None, spike_threshold if live >= base else drop_threshold


def alert_id_of(kind: AlertKind, started_ms: int) -> str:
    """Unique per community (one alert of a kind per minute at most), sorts by time."""
    return f"{to_datetime(started_ms):%Y%m%dT%H%MZ}-{kind}"


@dataclass(frozen=True, slots=True)
class Decision:
    state: AlertState
    fired: Alert | None = None  # a new alert to send
    ended: str | None = None  # alert_id of an alert that ended now


def evaluate(
    community_id: str,
    rule: AlertRule,
    state: AlertState,
    *,
    live: int,
    series: Sequence[int],
    now_ms: int,
    rule_source: RuleSource = "default",
) -> Decision:
    """One minute of one community: the next state, and what to send."""
    base = baseline(series)
    kind, threshold = breach(rule, live, base) if rule.enabled else (None, 0.0)
    if state.kind is not None and kind == state.kind:
        return Decision(state=state.model_copy(update={"last_breach_ms": now_ms}))
    ended = None
    if state.kind is not None:
        cooled = now_ms - (state.last_breach_ms or 0) >= rule.cooldown_minutes * MINUTE_MS
        if kind is None and not cooled:
            return Decision(state=state)
        ended = state.alert_id
    if kind is None:
        return Decision(state=QUIET, ended=ended)
    alert_id = alert_id_of(kind, now_ms)
    alert = Alert(
        alert_id=alert_id,
        community_id=community_id,
        kind=kind,
        live_visitors=live,
        baseline=base,
        threshold=round(threshold, 2),
        rule=rule,
        rule_source=rule_source,
        started_at=iso(now_ms),
    )
    new_state = AlertState(kind=kind, alert_id=alert_id, started_ms=now_ms, last_breach_ms=now_ms)
    return Decision(state=new_state, fired=alert, ended=ended)


@dataclass(frozen=True, slots=True)
class Observation:
    """One community now: its live count, its per-minute series (oldest first), its alert state."""

    live: int
    series: list[int]
    state: AlertState


class AlertLiveState(Protocol):
    """What the pass reads and keeps in Redis (`redis.alert_state.AlertStateStore`)."""

    def active_communities(self) -> list[str]: ...
    def observe(self, minutes: dict[str, int], now_ms: int) -> dict[str, Observation]: ...
    def save_states(self, states: dict[str, AlertState]) -> None: ...
    def acquire_lock(self, holder: str, ttl_ms: int) -> bool: ...
    def release_lock(self, holder: str) -> None: ...


class AlertRules(Protocol):
    def custom_rules(self, community_ids: Sequence[str]) -> dict[str, AlertRule]: ...


class AlertHistory(Protocol):
    def put_alert(self, alert: Alert) -> None: ...
    def end_alert(self, community_id: str, alert_id: str, ended_at: str) -> None: ...


class AlertPublisher(Protocol):
    def publish(self, alerts: Sequence[Alert]) -> None:
        """Puts one event per alert on the bus; raises `AlertDeliveryFailed` if any was refused."""
        ...


@dataclass
class AlertReport:
    communities: int = 0
    fired: list[str] = field(default_factory=list)  # "community/alert_id"
    ended: int = 0
    skipped: bool = False  # another pass held the lock


def run_alert_pass(
    live_state: AlertLiveState,
    rules: AlertRules,
    history: AlertHistory,
    publisher: AlertPublisher,
    *,
    now_ms: int,
    holder: str,
    batch_size: int = 200,
    lock_ms: int = 55_000,
) -> AlertReport:
    """Evaluates every active community once. Alerts are sent, then written to the history, then
    the states saved: a pass that dies in between sends an alert again next minute (at least once),
    never loses one. One pass at a time (a lock), so overlapping invocations do not both send."""
    report = AlertReport()
    if not live_state.acquire_lock(holder, lock_ms):
        report.skipped = True
        return report
    try:
        communities = live_state.active_communities()
        for start in range(0, len(communities), batch_size):
            _run_batch(communities[start : start + batch_size], live_state, rules, history, publisher, now_ms, report)
    finally:
        live_state.release_lock(holder)
    return report


def _run_batch(
    batch: list[str],
    live_state: AlertLiveState,
    rules: AlertRules,
    history: AlertHistory,
    publisher: AlertPublisher,
    now_ms: int,
    report: AlertReport,
) -> None:
    custom = rules.custom_rules(batch)
    effective = {cid: custom.get(cid, DEFAULT_RULE) for cid in batch}
    observations = live_state.observe({cid: rule.baseline_minutes for cid, rule in effective.items()}, now_ms)
    decisions = {}
    for cid in batch:
        seen = observations[cid]
        decisions[cid] = evaluate(
            cid,
            effective[cid],
            seen.state,
            live=seen.live,
            series=seen.series,
            now_ms=now_ms,
            rule_source="custom" if cid in custom else "default",
        )
    report.communities += len(batch)
    fired = [d.fired for d in decisions.values() if d.fired is not None]
    if fired:
        publisher.publish(fired)
    for cid, decision in decisions.items():
        if decision.ended is not None:
            history.end_alert(cid, decision.ended, iso(now_ms))
            report.ended += 1
        if decision.fired is not None:
            history.put_alert(decision.fired)
            report.fired.append(f"{cid}/{decision.fired.alert_id}")
    changed = {cid: d.state for cid, d in decisions.items() if d.state != observations[cid].state}
    if changed:
        live_state.save_states(changed)
