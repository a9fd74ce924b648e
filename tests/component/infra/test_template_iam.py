"""Each function's role grants exactly what its code calls (layers/community_tracker/aws/stores.py,
aws/alert_stores.py, aws/share_links.py, aws/events.py, aws/secrets.py, identity.py, live.py and the
handlers), on exactly the resources it calls it on: no wildcard action, no wildcard resource beyond
the one API Gateway's @connections ARN needs. Checked on the translated roles, so whatever SAM adds
is covered as well; the webhook's role (EventBridge's, not a function's) likewise."""

from __future__ import annotations

import json
from typing import Any

from tests.component.infra.sam_template import SAM_MANAGED_POLICIES, as_list, function_role, functions, statements

TABLE, USER_INDEX = "table", "index/ByUser"
JWT, HASH_KEY = "ssm:JwtSecretParameterName", "ssm:HashKeyParameterName"
SHARE_KEY = "ssm:ShareKeyParameterName"
ALERTS_BUS = "bus:AlertsEventBus"
REDIS_AUTH = ("secretsmanager:GetSecretValue", "secret:RedisAuthSecret")  # every function uses Redis
CONNECTIONS = "execute-api:@connections of the live stage"

EXPECTED_GRANTS: dict[str, set[tuple[str, str]]] = {
    # Community lookup (GetItem), registration (PutItem), and a visit as one TransactWriteItems of
    # two conditional Puts, the guard EVENT#<event_id> and the visit: TransactWriteItems has no IAM
    # action, each element is authorized as its own action (PutItem for a Put).
    "TrackVisitFunction": {
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:PutItem", TABLE),
        ("ssm:GetParameter", JWT),
        ("ssm:GetParameter", HASH_KEY),
        REDIS_AUTH,
    },
    # Community lookup, an alert rule and a share link (GetItem), histories, peak rollups, the alert
    # history and a community's share links (Query on the table), a user's visits (Query on ByUser),
    # erasure (batch writer: BatchWriteItem; DeleteItem), an alert rule and a new share link
    # (PutItem), a revoked link (conditional UpdateItem), token checks (JWT secret) and share links
    # (share key; no hash key).
    "StatsFunction": {
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:Query", TABLE),
        ("dynamodb:Query", USER_INDEX),
        ("dynamodb:BatchWriteItem", TABLE),
        ("dynamodb:DeleteItem", TABLE),
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
        ("ssm:GetParameter", JWT),
        ("ssm:GetParameter", SHARE_KEY),
        REDIS_AUTH,
    },
    # Closed peak buckets (conditional PutItem); no secret besides Redis.
    "CleanupFunction": {("dynamodb:PutItem", TABLE), REDIS_AUTH},
    # The rules of a batch of communities (BatchGetItem), a new alert (PutItem), an ended one
    # (conditional UpdateItem), the events on the alerts bus; no secret besides Redis.
    "AlertsFunction": {
        ("dynamodb:BatchGetItem", TABLE),
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:UpdateItem", TABLE),
        ("events:PutEvents", ALERTS_BUS),
        REDIS_AUTH,
    },
    # $connect: community lookup and the token check.
    "LiveConnectionsFunction": {("dynamodb:GetItem", TABLE), ("ssm:GetParameter", JWT), REDIS_AUTH},
    # post_to_connection on the live stage (410s only unsubscribe in Redis: no DELETE).
    "LivePushFunction": {("execute-api:ManageConnections", CONNECTIONS), REDIS_AUTH},
}
CONNECTIONS_ARN = (
    "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${WebSocketStage}"
    "/POST/@connections/*"
)
SSM_ARN = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${%s}"


def resource_name(resource: Any) -> str:
    """A short name for each resource a role may name; anything else fails the test."""
    if resource == {"Fn::GetAtt": ["VisitsTable", "Arn"]}:
        return TABLE
    if resource == {"Fn::Sub": "${VisitsTable.Arn}/index/ByUser"}:
        return USER_INDEX
    if resource == {"Ref": "RedisAuthSecret"}:
        return REDIS_AUTH[1]
    if resource == {"Ref": "SecretsKmsKeyArn"}:
        return "kms:SecretsKmsKeyArn"
    if resource == {"Fn::Sub": CONNECTIONS_ARN}:
        return CONNECTIONS
    if resource == {"Fn::GetAtt": ["AlertsEventBus", "Arn"]}:
        return ALERTS_BUS
    if resource == {"Fn::GetAtt": ["AlertWebhookDestination", "Arn"]}:
        return "api-destination:AlertWebhookDestination"
    for parameter in ("JwtSecretParameterName", "HashKeyParameterName", "ShareKeyParameterName"):
        if resource == {"Fn::Sub": SSM_ARN % parameter}:
            return f"ssm:{parameter}"
    raise AssertionError(f"a role names an unexpected resource: {json.dumps(resource)}")


def grants(translated: dict[str, Any], function: str) -> tuple[set[tuple[str, str]], list[dict[str, Any]]]:
    """(action, resource) pairs of the function's role, and its statements."""
    role = function_role(translated, function)
    assert set(role.get("ManagedPolicyArns", [])) <= set(SAM_MANAGED_POLICIES.values()), function
    pairs: set[tuple[str, str]] = set()
    found: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
        for statement in statements(policy["PolicyDocument"]):
            found.append(statement)
            assert statement["Effect"] == "Allow", function
            assert "NotAction" not in statement, function
            assert "NotResource" not in statement, function
            for action in as_list(statement["Action"]):
                assert "*" not in str(action), (function, action)
                for resource in as_list(statement["Resource"]):
                    pairs.add((str(action), resource_name(resource)))
    return pairs, found


def test_every_role_grants_exactly_what_its_function_calls(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    assert set(EXPECTED_GRANTS) == set(functions(template))
    for function, expected in EXPECTED_GRANTS.items():
        pairs, _ = grants(translated, function)
        decrypt = {pair for pair in pairs if pair[0] == "kms:Decrypt"}
        assert pairs - decrypt == expected, function
        if decrypt:  # only with a customer managed key, and only for the functions reading SSM
            assert decrypt == {("kms:Decrypt", "kms:SecretsKmsKeyArn")}, function
            assert any(action == "ssm:GetParameter" for action, _ in expected), function


def test_no_wildcard_resource_except_the_connection_ids(translated: dict[str, Any]) -> None:
    """The only `*` in any resource is the connection id of @connections on one stage (the ids are
    made per browser); the kms key is used only by way of SSM."""
    for function in EXPECTED_GRANTS:
        _, found = grants(translated, function)
        for statement in found:
            for resource in as_list(statement["Resource"]):
                if "*" in json.dumps(resource):
                    assert resource == {"Fn::Sub": CONNECTIONS_ARN}, (function, resource)
            if statement["Action"] == "kms:Decrypt":
                via = statement["Condition"]["StringEquals"]["kms:ViaService"]
                assert via == {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}, function


def test_the_webhook_role_may_only_invoke_the_webhook(translated: dict[str, Any]) -> None:
    """EventBridge assumes it for the webhook rule (only in this account), and it may call that one
    API destination, nothing else."""
    resource = translated["Resources"]["AlertWebhookRole"]
    assert resource["Condition"] == "SendAlertWebhook"
    role = resource["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "ManagedPolicyArns" not in role
    pairs = {
        (str(action), resource_name(target))
        for policy in role["Policies"]
        for statement in statements(policy["PolicyDocument"])
        for action in as_list(statement["Action"])
        for target in as_list(statement["Resource"])
    }
    assert pairs == {("events:InvokeApiDestination", "api-destination:AlertWebhookDestination")}
