"""The live tests' registry: the session's Redis, with the keys every community shares (the list of
communities with subscribers, the pusher's lock) emptied first, so no test sees another's."""

from __future__ import annotations

import pytest

from community_tracker.redis.client import get_redis_client
from community_tracker.redis.keys import LIVE_COMMUNITIES_KEY, PUSHER_LOCK_KEY
from community_tracker.redis.subscriptions import ConnectionRegistry, get_subscriptions


@pytest.fixture
def registry(function_env: None) -> ConnectionRegistry:
    get_redis_client().delete(LIVE_COMMUNITIES_KEY, PUSHER_LOCK_KEY)
    return get_subscriptions()
