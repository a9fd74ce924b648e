"""Powertools Logger, Tracer and Metrics shared by the functions (service name from
POWERTOOLS_SERVICE_NAME, set per function in the template).

Nothing identifying is ever logged: no token, no raw session or client id, no IP address.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

METRICS_NAMESPACE = "CommunityVisitorTracker"

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_dropped(reason: str) -> None:
    """BeaconsDropped with a `reason` dimension, flushed on its own so the dimension stays on it.

    `single_metric` prints its line even when metrics are disabled (the resolver-wide `Metrics`
    checks, `single_metric` does not), so the same switch is honoured here."""
    if is_metrics_disabled():
        return
    with single_metric(name="BeaconsDropped", unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE) as metric:
        metric.add_dimension(name="reason", value=reason)
