"""Builds the Redis client from settings: one node (`redis://`, `rediss://`) or a cluster, with
Redis AUTH from a secret when `VT_REDIS_AUTH_SECRET` names one."""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.credentials import CredentialProvider
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError
from redis.retry import Retry

from community_tracker.aws.secrets import redis_credentials
from community_tracker.errors import SecretUnavailable
from community_tracker.factories import cached_factory
from community_tracker.redis.scripts import RedisClient
from community_tracker.settings import Settings, get_settings


class SecretCredentials(CredentialProvider):
    """Redis AUTH (username if the secret has one, and password) read for each new connection.

    The secret store keeps the value for its max age, so after an auth-token rotation the next
    connection uses the new token while open connections stay authenticated (ElastiCache's
    ROTATE strategy accepts both tokens meanwhile). A secret that cannot be read is a connection
    error, so the callers see Redis unavailable (`LiveStateUnavailable`) as for any outage."""

    def __init__(self, secret_name: str, max_age_seconds: int) -> None:
        self._secret_name = secret_name
        self._max_age_seconds = max_age_seconds

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        try:
            username, password = redis_credentials(self._secret_name, self._max_age_seconds)
        except SecretUnavailable as error:
            raise ConnectionError("the Redis auth token cannot be read") from error
        return (username, password) if username else (password,)


def create_redis_client(settings: Settings) -> RedisClient:
    """A client that reconnects by itself: one quick retry, then the error surfaces.

    Timeouts are short because a beacon must answer 503 well inside the function's 10 s timeout
    (README, "Deploying": the timeout budget: 1 s socket timeout, one retry); the caller decides
    what a Redis outage means (authenticated visits are still written to DynamoDB). Retrying is
    safe: every page view carries an event id, so a script that ran before its answer was lost
    counts once. `READONLY` (a node demoted by a failover) drops the connection and retries, so a
    client whose endpoint now points at the new primary reconnects to it by itself.
    """
    timeout = settings.redis_socket_timeout_seconds
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
    }
    if settings.redis_auth_secret:
        options["credential_provider"] = SecretCredentials(settings.redis_auth_secret, settings.secret_max_age_seconds)
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **options)
    return Redis.from_url(
        settings.redis_url,
        retry_on_error=[ConnectionError, TimeoutError, ReadOnlyError],
        health_check_interval=30,
        **options,
    )


@cached_factory
def get_redis_client() -> RedisClient:
    """The process's one Redis client (its pool is shared by the tracker, cleanup and live push)."""
    return create_redis_client(get_settings())
