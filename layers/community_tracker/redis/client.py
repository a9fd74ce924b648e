"""Builds the Redis client from settings: one node (`redis://`, `rediss://`) or a cluster."""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

from community_tracker.factories import cached_factory
from community_tracker.redis.scripts import RedisClient
from community_tracker.settings import Settings, get_settings


def create_redis_client(settings: Settings) -> RedisClient:
    """A client that reconnects by itself: a couple of quick retries, then the error surfaces.

    Timeouts are short because a beacon must answer fast; the caller decides what a Redis outage
    means (README, "Beacon API": authenticated visits are still written to DynamoDB).
    """
    timeout = settings.redis_socket_timeout_seconds
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
    }
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **options)
    return Redis.from_url(
        settings.redis_url, retry_on_error=[ConnectionError, TimeoutError], health_check_interval=30, **options
    )


@cached_factory
def get_redis_client() -> RedisClient:
    """The process's one Redis client (its pool is shared by the tracker, cleanup and live push)."""
    return create_redis_client(get_settings())
