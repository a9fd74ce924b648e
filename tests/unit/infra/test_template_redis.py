"""The Redis cluster's own settings: a parameter group of the engine's family with cluster mode on and
an eviction policy chosen so that the live state and the history keys are the last to go."""

from __future__ import annotations

from typing import Any


def redis_group(template: dict[str, Any]) -> dict[str, Any]:
    group = template["Resources"]["RedisParameterGroup"]
    assert group["Type"] == "AWS::ElastiCache::ParameterGroup"
    properties: dict[str, Any] = group["Properties"]
    return properties


def test_the_parameter_group_matches_the_engine_and_cluster_mode(template: dict[str, Any]) -> None:
    redis = template["Resources"]["RedisReplicationGroup"]["Properties"]
    assert redis["CacheParameterGroupName"] == {"Ref": "RedisParameterGroup"}
    group = redis_group(template)
    major = str(redis["EngineVersion"]).split(".")[0]
    assert group["CacheParameterGroupFamily"] == f"{redis['Engine']}{major}"  # redis7 for 7.x
    # Node groups (NumNodeGroups) need cluster mode on in the group, or the stack fails to create.
    assert "NumNodeGroups" in redis
    assert group["Properties"]["cluster-enabled"] == "yes"


def test_eviction_takes_the_shortest_lived_keys_first_never_the_live_state(template: dict[str, Any]) -> None:
    """volatile-*: keys without a TTL (the live sets, counts, the index) are never evicted;
    -ttl: of the rest, those closest to expiring (rate counters, dedup markers) go first, not the
    least recently used (the peaks and sketches of quiet communities, which volatile-lru, the
    default, would take)."""
    policy = redis_group(template)["Properties"]["maxmemory-policy"]
    assert policy == "volatile-ttl"
    assert policy != "volatile-lru"
