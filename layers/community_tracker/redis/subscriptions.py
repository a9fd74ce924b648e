"""Who listens to which community over the WebSocket, and the pusher's lock, in Redis."""

from __future__ import annotations

from typing import cast

from redis.exceptions import WatchError

from community_tracker.factories import cached_factory
from community_tracker.live import Lease
from community_tracker.redis.client import get_redis_client
from community_tracker.redis.errors import live_state_errors
from community_tracker.redis.keys import (
    LIVE_COMMUNITIES_KEY,
    LIVE_RECONNECT_KEY,
    PUSHER_LOCK_KEY,
    RECONNECT_KEY_MS,
    SUBSCRIPTION_IDLE_MS,
    SUBSCRIPTION_TTL_MS,
    CommunityKeys,
    subscription_key,
)
from community_tracker.redis.scripts import RedisClient

# The lease record outlives the lease itself, so the next holder can tell whether someone else held
# it since (`Lease.HELD` vs `Lease.TAKEN`); an expired record is simply taken.
LEASE_RECORD_MS = 10 * 60_000


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
        """A ping: the connection stays subscribed for another idle period, and is subscribed again
        if its subscription had expired meanwhile (a ping means the socket is open, and its
        `$connect` was checked). False: nothing is known of it any more; it is queued to be told to
        reconnect (`take_reconnects`), since the browser never sees a `$default` answer."""
        community_id = cast(str | None, self._client.get(subscription_key(connection_id)))
        pipe = self._client.pipeline(transaction=False)
        if community_id is None:
            pipe.zadd(LIVE_RECONNECT_KEY, {connection_id: now_ms})
            pipe.pexpire(LIVE_RECONNECT_KEY, RECONNECT_KEY_MS)
            pipe.execute()
            return False
        pipe.zadd(CommunityKeys(community_id).subscribers, {connection_id: now_ms + SUBSCRIPTION_IDLE_MS})
        pipe.zadd(LIVE_COMMUNITIES_KEY, {community_id: now_ms})
        pipe.execute()
        return True

    @live_state_errors
    def take_reconnects(self, limit: int = 1000) -> list[str]:
        """The connections to tell to reconnect, each handed out once (`ZPOPMIN`)."""
        popped = cast(list[tuple[str, float]], self._client.zpopmin(LIVE_RECONNECT_KEY, limit))
        return [connection_id for connection_id, _when in popped]

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
    def hold_pusher_lease(self, holder: str, now_ms: int, lease_ms: int) -> Lease:
        """The lease is `holder expires_ms` in one key, changed in a WATCH/MULTI transaction (one
        key, so one slot on a cluster): taken when absent or expired, renewed when `holder`'s."""
        with self._client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(PUSHER_LOCK_KEY)
                owner, expires_ms = _lease(cast(str | None, pipe.get(PUSHER_LOCK_KEY)))
                if owner not in (None, holder) and expires_ms > now_ms:
                    return Lease.REFUSED
                pipe.multi()
                pipe.set(PUSHER_LOCK_KEY, f"{holder} {now_ms + lease_ms}", px=lease_ms + LEASE_RECORD_MS)
                pipe.execute()
            except WatchError:  # another pusher changed it between our read and our write: theirs
                return Lease.REFUSED
        return Lease.HELD if owner == holder else Lease.TAKEN

    @live_state_errors
    def release_pusher_lease(self, holder: str) -> None:
        """Expires `holder`'s lease now, keeping the record of who held it last."""
        with self._client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(PUSHER_LOCK_KEY)
                owner, _expires_ms = _lease(cast(str | None, pipe.get(PUSHER_LOCK_KEY)))
                if owner != holder:
                    return
                pipe.multi()
                pipe.set(PUSHER_LOCK_KEY, f"{holder} 0", px=LEASE_RECORD_MS)
                pipe.execute()
            except WatchError:  # taken meanwhile: not ours to release any more
                return


def _lease(record: str | None) -> tuple[str | None, int]:
    if not record:
        return None, 0
    owner, _, expires_ms = record.partition(" ")
    return owner, int(expires_ms or 0)


@cached_factory
def get_subscriptions() -> ConnectionRegistry:
    return ConnectionRegistry(get_redis_client())
