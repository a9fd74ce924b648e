"""The automation adapter against a real Redis (one node and the cluster)."""

from __future__ import annotations

from community_tracker.redis.automation import AutomationTracker
from community_tracker.redis.keys import AUTOMATION_MAX_NAMES, CommunityKeys
from community_tracker.redis.scripts import RedisClient
from tests.builders import MINUTE, SECOND, T0


def test_distinct_clients_per_class_and_name_within_the_window(redis_client: RedisClient, community_id: str) -> None:
    automation = AutomationTracker(redis_client, window_seconds=300)
    automation.record(community_id, "ai_agent", "GPTBot", "client-a", T0)
    automation.record(community_id, "ai_agent", "GPTBot", "client-a", T0 + SECOND)  # the same client again
    automation.record(community_id, "ai_agent", "GPTBot", "client-b", T0 + 2 * SECOND)
    automation.record(community_id, "ai_agent", "ClaudeBot", "client-c", T0 + 3 * SECOND)
    automation.record(community_id, "bot", "Googlebot", "client-d", T0 + 4 * SECOND)

    now = automation.live_counts(community_id, T0 + 5 * SECOND)

    assert now.model_dump() == {
        "community_id": community_id,
        "window_seconds": 300,
        "bots": {"clients": 1, "names": [{"name": "Googlebot", "clients": 1}]},
        "ai_agents": {
            "clients": 3,
            "names": [{"name": "GPTBot", "clients": 2}, {"name": "ClaudeBot", "clients": 1}],
        },
        "timestamp": "2031-03-05T12:00:05.000Z",
    }


def test_clients_leave_the_counts_after_the_window(redis_client: RedisClient, community_id: str) -> None:
    automation = AutomationTracker(redis_client, window_seconds=300)
    automation.record(community_id, "bot", "curl", "client-a", T0)
    automation.record(community_id, "bot", "curl", "client-b", T0 + 2 * MINUTE)

    # Exactly like visitors: live while younger than the window
    assert automation.live_counts(community_id, T0 + 5 * MINUTE - 1).bots.clients == 2
    assert automation.live_counts(community_id, T0 + 5 * MINUTE).bots.clients == 1
    assert automation.live_counts(community_id, T0 + 7 * MINUTE).bots.model_dump() == {"clients": 0, "names": []}


def test_keys_expire_and_names_are_capped(redis_client: RedisClient, community_id: str) -> None:
    automation = AutomationTracker(redis_client, window_seconds=300)
    for i in range(AUTOMATION_MAX_NAMES + 5):
        automation.record(community_id, "bot", f"bot-{i:04d}", "client-a", T0 + i)

    keys = CommunityKeys(community_id)
    assert redis_client.zcard(keys.automation_names("bot")) == AUTOMATION_MAX_NAMES
    assert redis_client.zscore(keys.automation_names("bot"), "bot-0000") is None  # the oldest went first
    assert 0 < redis_client.pttl(keys.automation_names("bot")) <= 6 * MINUTE
    assert 0 < redis_client.pttl(keys.automation_clients("bot", "bot-0204")) <= 6 * MINUTE


def test_a_limit_keeps_the_names_with_most_clients(redis_client: RedisClient, community_id: str) -> None:
    automation = AutomationTracker(redis_client, window_seconds=300)
    for name, clients in (("a", 1), ("b", 3), ("c", 2)):
        for i in range(clients):
            automation.record(community_id, "bot", name, f"client-{i}", T0)

    now = automation.live_counts(community_id, T0 + SECOND, limit=2)

    assert now.bots.clients == 6
    assert [n.name for n in now.bots.names] == ["b", "c"]
