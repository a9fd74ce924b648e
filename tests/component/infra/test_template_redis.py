"""The Redis cluster's own settings: a parameter group of the engine's family with cluster mode on and
an eviction policy chosen so that the live state and the history keys are the last to go."""

from __future__ import annotations

from typing import Any

from tests.component.infra.sam_template import environment, functions


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


def test_redis_requires_an_auth_token_generated_into_secrets_manager(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    secret = resources["RedisAuthSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generated = secret["Properties"]["GenerateSecretString"]
    assert "SecretString" not in secret["Properties"]  # never a value written in the template
    # ElastiCache: 16 to 128 printable characters, none of / " @; a plain string, not JSON.
    assert 16 <= generated["PasswordLength"] <= 128
    assert generated["ExcludePunctuation"] is True
    assert generated["IncludeSpace"] is False
    assert "SecretStringTemplate" not in generated
    redis = resources["RedisReplicationGroup"]["Properties"]
    assert redis["TransitEncryptionEnabled"] is True  # AUTH needs TLS
    assert redis["AuthToken"] == {"Fn::Sub": "{{resolve:secretsmanager:${RedisAuthSecret}}}"}


def test_every_function_is_told_which_secret_holds_the_token(template: dict[str, Any]) -> None:
    """The name travels in VT_REDIS_AUTH_SECRET (the ARN); the token itself never does. Each role
    may read exactly that secret (test_function_roles_are_least_privilege)."""
    assert template["Globals"]["Function"]["Environment"]["Variables"]["VT_REDIS_AUTH_SECRET"] == {
        "Ref": "RedisAuthSecret"
    }
    for function in functions(template):
        assert environment(template, function)["VT_REDIS_AUTH_SECRET"] == {"Ref": "RedisAuthSecret"}, function


def test_secrets_manager_is_reachable_without_a_nat(template: dict[str, Any]) -> None:
    endpoint = template["Resources"]["SecretsManagerEndpoint"]
    assert endpoint["Condition"] == "MakeSecretsManagerEndpoint"
    properties = endpoint["Properties"]
    assert properties["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.secretsmanager"}
    assert properties["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
    assert properties["PrivateDnsEnabled"] is True  # boto3's default endpoint name resolves to it
    assert template["Parameters"]["CreateSecretsManagerEndpoint"]["Default"] == "true"
