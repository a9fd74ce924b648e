"""Who listens to which community over the WebSocket, and the pusher's lock, in Redis."""

from __future__ import annotations

from typing import cast

from community_tracker.factories import cached_factory
from community_tracker.redis.client import get_redis_client
from community_tracker.redis.errors import live_state_errors
from community_tracker.redis.keys import (
    LIVE_COMMUNITIES_KEY,
    PUSHER_LOCK_KEY,
    SUBSCRIPTION_IDLE_MS,
    SUBSCRIPTION_TTL_MS,
    CommunityKeys,
    subscription_key,
)
from community_tracker.redis.scripts import RedisClient


class ConnectionRegistry:
    """Who listens to which community, in Redis, each connection with an expiry."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    @live_state_errors
    def subscribe(self, connection_id: str, community_id: str, now_ms: int) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.set(subscription_key(connection_id), community_id, px=SUBSCRIPTION_TTL_MS)
        pipe.zadd(CommunityKeys(community_id).subscribers, {connection_id: now_ms + SUBSCRIPTION_IDLE_MS})
        pipe.zadd(LIVE_COMMUNITIES_KEY, {community_id: now_ms})
        pipe.execute()

    @live_state_errors
    def touch(self, connection_id: str, now_ms: int) -> bool:
        """A ping: the connection stays subscribed for another idle period. False: unknown."""
        community_id = cast(str | None, self._client.get(subscription_key(connection_id)))
        if community_id is None:
            return False
        self._client.zadd(
            CommunityKeys(community_id).subscribers, {connection_id: now_ms + SUBSCRIPTION_IDLE_MS}, xx=True
        )
        return True

    @live_state_errors
    def unsubscribe(self, connection_id: str) -> None:
        community_id = cast(str | None, self._client.get(subscription_key(connection_id)))
        self._client.delete(subscription_key(connection_id))
        if community_id is not None:
            self._client.zrem(CommunityKeys(community_id).subscribers, connection_id)

    @live_state_errors
    def connections(self, community_id: str, now_ms: int) -> list[str]:
        """Live connections of a community; expired ones are dropped on the way."""
        key = CommunityKeys(community_id).subscribers
        pipe = self._client.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", now_ms)
        pipe.zrange(key, 0, -1)
        _removed, connections = pipe.execute()
        return cast(list[str], connections)

    @live_state_errors
    def communities(self) -> list[str]:
        return cast(list[str], self._client.zrange(LIVE_COMMUNITIES_KEY, 0, -1))

    @live_state_errors
    def forget_community(self, community_id: str) -> None:
        self._client.zrem(LIVE_COMMUNITIES_KEY, community_id)

    @live_state_errors
    def acquire_pusher_lock(self, holder: str, ttl_ms: int) -> bool:
        """One pusher at a time (scheduled invocations may overlap by a few seconds)."""
        return bool(self._client.set(PUSHER_LOCK_KEY, holder, nx=True, px=ttl_ms))

    @live_state_errors
    def release_pusher_lock(self, holder: str) -> None:
        if self._client.get(PUSHER_LOCK_KEY) == holder:
            self._client.delete(PUSHER_LOCK_KEY)


@cached_factory
def get_subscriptions() -> ConnectionRegistry:
    return ConnectionRegistry(get_redis_client())
