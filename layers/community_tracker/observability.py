"""Powertools Logger, Tracer and Metrics shared by the functions (service name from
POWERTOOLS_SERVICE_NAME, set per function in the template).

Nothing identifying is ever logged: no token, no raw session or client id, no IP address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

METRICS_NAMESPACE = "CommunityVisitorTracker"


class _NoSegment(BaseSegment):
    def close(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def add_subsegment(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def remove_subsegment(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def put_annotation(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def put_metadata(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def add_exception(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class NoTracing(BaseProvider):
    """The tracer's provider while tracing is off (outside Lambda, `POWERTOOLS_TRACE_DISABLED`): it
    records nothing, as the X-Ray SDK does then, without importing the SDK, which loads botocore's
    session for its sampler (100 to 250 ms of a cold start). With tracing on, the tracer keeps the
    X-Ray recorder."""

    @contextmanager
    def in_subsegment(self, *_args: Any, **_kwargs: Any) -> Iterator[BaseSegment]:
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, *_args: Any, **_kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield _NoSegment()

    def put_annotation(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def put_metadata(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def patch(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def patch_all(self) -> None:
        return None


def _tracer() -> Tracer:
    off = Tracer._is_tracer_disabled()  # the rule Powertools applies (env var, outside Lambda)
    return Tracer(provider=NoTracing()) if off else Tracer()


logger = Logger()
tracer = _tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)


def correlate(event: Mapping[str, Any]) -> None:
    """API Gateway's request id as the correlation id of the request's logs.

    Read directly: the Logger decorator's `correlation_id_path` runs a JMESPath search for it on
    every request (about 7 us, 2-3 % of the beacon function's own time)."""
    context = event.get("requestContext")
    logger.set_correlation_id(context.get("requestId") if isinstance(context, Mapping) else None)


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
