"""template.yaml: lint-clean as written and as CloudFormation receives it after the SAM transform,
and keeping the facts the code relies on (routes and handlers, the cleanup and alerts budgets, the
alerts bus and its webhook, the layer's layout, least-privilege roles, settings, the Redis cluster's
network)."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from community_tracker.alerts import DETAIL_TYPES, EVENT_SOURCE, run_alert_pass
from community_tracker.settings import Settings
from infra.tables import TEMPLATE
from tests.component.infra.sam_template import (
    ROOT,
    SAMCONFIG,
    conditions_for,
    created,
    environment,
    functions,
    lint_problems,
    packaged,
    policy_statement,
    sam_transform,
)

# ---------------------------------------------------------------- lint


def test_template_lints_clean() -> None:
    assert lint_problems(TEMPLATE.read_text(encoding="utf-8")) == []


def test_translated_template_lints_clean(translated: dict[str, Any]) -> None:
    """cfn-lint alone does not see into SAM resources (a bad runtime in Globals, a misspelt Ref
    in Policies); after the transform they are plain CloudFormation it checks fully."""
    assert not [r for r in translated["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]
    assert lint_problems(json.dumps(translated, indent=1)) == []


def _bad_runtime(template: dict[str, Any]) -> None:
    template["Globals"]["Function"]["Runtime"] = "python3.99"


def _misspelt_table_in_policy(template: dict[str, Any]) -> None:
    policy_statement(template, "CleanupFunction", "PeakRollups")["Resource"] = {"Fn::GetAtt": ["VisitTable", "Arn"]}


def _misspelt_parameter_in_policy(template: dict[str, Any]) -> None:
    statement = policy_statement(template, "StatsFunction", "Secrets")
    statement["Resource"] = [
        {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${JwtParam}"}
    ]


@pytest.mark.parametrize(
    ("mutate", "culprit"),
    [
        pytest.param(_bad_runtime, "python3.99", id="runtime-in-globals"),
        pytest.param(_misspelt_table_in_policy, "VisitTable", id="getatt-in-policies"),
        pytest.param(_misspelt_parameter_in_policy, "JwtParam", id="sub-in-policies"),
    ],
)
def test_linting_the_translation_catches_mistakes_inside_sam_resources(
    template: dict[str, Any], mutate: Callable[[dict[str, Any]], None], culprit: str
) -> None:
    broken = copy.deepcopy(template)
    mutate(broken)
    problems = lint_problems(json.dumps(sam_transform(broken)))
    assert any(culprit in problem for problem in problems), problems


# ---------------------------------------------------------------- routes and handlers


def handler_module(handler: str) -> Any:
    module_name, _, attribute = handler.rpartition(".")
    assert attribute == "lambda_handler", handler
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute, None)), f"{handler} is not a function"
    return module


def resolver_route_keys(module: Any) -> set[str]:
    """`METHOD /path/{param}` of every route of a handler module's Powertools resolver (`app`).
    Powertools has no public list of routes; these two lists are where it keeps them."""
    app = module.app
    return {f"{route.method} {route.openapi_path}" for route in [*app._static_routes, *app._dynamic_routes]}


def test_every_http_route_reaches_a_handler_that_serves_it(template: dict[str, Any]) -> None:
    """Each HttpApi event is a route of its function's resolver and vice versa: a typo in a path
    would be a 404 in AWS, a route without an event unreachable."""
    seen: list[str] = []
    http_functions = 0
    for logical_id, properties in functions(template).items():
        events = [event for event in properties.get("Events", {}).values() if event["Type"] == "HttpApi"]
        if not events:
            continue
        http_functions += 1
        module = handler_module(properties["Handler"])
        keys = set()
        for event in events:
            assert event["Properties"]["ApiId"] == {"Ref": "HttpApi"}, logical_id
            keys.add(f"{event['Properties']['Method'].upper()} {event['Properties']['Path']}")
        assert len(keys) == len(events), f"{logical_id} declares a route twice"
        assert keys == resolver_route_keys(module), logical_id
        seen.extend(keys)
    assert http_functions >= 2
    assert len(seen) == len(set(seen)), "two functions declare the same route"


def test_every_function_imports_as_on_lambda(template: dict[str, Any]) -> None:
    """CodeUri functions/ and Handler `<package>.handler.lambda_handler`: the import names of the
    tests and the local runner."""
    for logical_id, properties in functions(template).items():
        assert properties["CodeUri"] == "functions/", logical_id
        package = properties["Handler"].split(".")[0]
        assert (ROOT / "functions" / package / "handler.py").is_file(), logical_id
        handler_module(properties["Handler"])


@pytest.mark.parametrize(
    ("function", "handler"),
    [("CleanupFunction", "cleanup.handler.lambda_handler"), ("AlertsFunction", "alerts.handler.lambda_handler")],
)
def test_each_pass_runs_every_minute_with_a_60_second_budget_and_no_retry(
    template: dict[str, Any], function: str, handler: str
) -> None:
    """A failed or missed pass is not retried: the next one, a minute later, does the same work."""
    properties = template["Resources"][function]["Properties"]
    assert properties["Handler"] == handler
    assert properties["Timeout"] == 60  # tests/component/cleanup run the pass against this budget
    assert properties["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    schedules = [event for event in properties["Events"].values() if event["Type"] in {"Schedule", "ScheduleV2"}]
    assert len(schedules) == 1
    schedule = schedules[0]["Properties"]
    assert (schedule.get("Schedule") or schedule.get("ScheduleExpression")) == "rate(1 minute)"
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] == 0
    assert "VpcConfig" not in properties  # the Globals' subnets and security group: Redis


def test_the_alerts_lock_is_released_before_the_next_pass_could_need_it(template: dict[str, Any]) -> None:
    """One pass at a time: a pass killed at its timeout leaves the lock to expire before the next
    minute's pass, and a pass within its timeout never outlives its own lock."""
    lock_ms = inspect.signature(run_alert_pass).parameters["lock_ms"].default
    timeout_ms = template["Resources"]["AlertsFunction"]["Properties"]["Timeout"] * 1000
    assert lock_ms < timeout_ms <= 60_000


# ---------------------------------------------------------------- alerts bus and webhook


def test_alerts_go_to_the_stack_s_own_bus(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    bus = resources["AlertsEventBus"]
    assert bus["Type"] == "AWS::Events::EventBus"
    assert "Condition" not in bus
    assert bus["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-alerts"}
    assert environment(template, "AlertsFunction")["VT_EVENT_BUS_NAME"] == {"Ref": "AlertsEventBus"}
    assert policy_statement(template, "AlertsFunction", "PutAlertEvents")["Resource"] == {
        "Fn::GetAtt": ["AlertsEventBus", "Arn"]
    }
    # Only the alerts function puts events: the others are not told the bus.
    for function in functions(template):
        if function != "AlertsFunction":
            assert "VT_EVENT_BUS_NAME" not in environment(template, function), function


WEBHOOK = {
    "AlertWebhookConnection",
    "AlertWebhookDestination",
    "AlertWebhookRole",
    "AlertWebhookRule",
    "AlertWebhookFailedInvocationsAlarm",
}


def test_the_webhook_exists_only_with_its_url(template: dict[str, Any]) -> None:
    assert template["Parameters"]["AlertWebhookUrl"]["Default"] == ""
    assert not conditions_for(template, {})["SendAlertWebhook"]
    assert not created(template, {}) & WEBHOOK
    given = {"AlertWebhookUrl": "https://hooks.example.org/visitor-alerts"}
    assert created(template, given) >= WEBHOOK
    assert {name for name, r in template["Resources"].items() if r.get("Condition") == "SendAlertWebhook"} == WEBHOOK
    assert re.fullmatch(template["Parameters"]["AlertWebhookUrl"]["AllowedPattern"], given["AlertWebhookUrl"])
    assert not re.fullmatch(template["Parameters"]["AlertWebhookUrl"]["AllowedPattern"], "http://plain.example")


def test_the_webhook_gets_exactly_the_alert_events_the_code_puts(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    rule = resources["AlertWebhookRule"]["Properties"]
    assert rule["EventBusName"] == {"Ref": "AlertsEventBus"}
    assert set(rule["EventPattern"]) == {"source", "detail-type"}
    assert rule["EventPattern"]["source"] == [EVENT_SOURCE]
    assert sorted(rule["EventPattern"]["detail-type"]) == sorted(DETAIL_TYPES.values())
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["AlertWebhookDestination", "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": ["AlertWebhookRole", "Arn"]}
    destination = resources["AlertWebhookDestination"]["Properties"]
    assert destination["HttpMethod"] == "POST"
    assert destination["InvocationEndpoint"] == {"Ref": "AlertWebhookUrl"}
    assert destination["ConnectionArn"] == {"Fn::GetAtt": ["AlertWebhookConnection", "Arn"]}
    assert 0 < destination["InvocationRateLimitPerSecond"] <= 300  # EventBridge's own ceiling is 300
    connection = resources["AlertWebhookConnection"]["Properties"]
    assert connection["AuthorizationType"] == "API_KEY"
    key = connection["AuthParameters"]["ApiKeyAuthParameters"]
    assert key["ApiKeyName"] == {"Ref": "AlertWebhookApiKeyName"}
    # The key comes from Secrets Manager when the stack is deployed: never a template value.
    assert key["ApiKeyValue"] == {"Fn::Sub": "{{resolve:secretsmanager:${AlertWebhookApiKeySecretName}}}"}


# ---------------------------------------------------------------- layer and runtime


def test_layer_is_built_from_layers_for_the_functions_runtime(template: dict[str, Any]) -> None:
    layer = template["Resources"]["SharedLayer"]
    function_globals = template["Globals"]["Function"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/"
    build_method = layer["Metadata"]["BuildMethod"]
    assert re.fullmatch(r"python3\.\d+", build_method)
    assert build_method == function_globals["Runtime"]
    assert build_method in layer["Properties"]["CompatibleRuntimes"]
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}]
    assert (ROOT / "layers" / "requirements.txt").is_file()
    assert (ROOT / "layers" / "community_tracker" / "redis" / "live_state.py").is_file()
    for logical_id, properties in functions(template).items():
        assert "Runtime" not in properties, f"{logical_id} overrides the Globals runtime"
        assert "Layers" not in properties, f"{logical_id} overrides the Globals layers"


# ---------------------------------------------------------------- settings


def test_environment_names_only_real_settings(template: dict[str, Any]) -> None:
    # Settings the template already gives and the code is about to read (named in the README).
    pending = {"VT_REDIS_AUTH_SECRET"}
    known = {f"VT_{name.upper()}" for name in Settings.model_fields} | pending
    services = set()
    for function in functions(template):
        variables = environment(template, function)
        assert {name for name in variables if name.startswith("VT_")} <= known, function
        # Secrets come from SSM or Secrets Manager only, never as plain environment values.
        assert "VT_JWT_SECRET" not in variables
        assert "VT_HASH_KEY" not in variables
        assert "VT_SHARE_KEY" not in variables
        assert "resolve:" not in str(variables)
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "CommunityVisitorTracker"
        services.add(variables["POWERTOOLS_SERVICE_NAME"])
    assert len(services) == len(functions(template))

    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["VT_REDIS_URL"]["Fn::Sub"].startswith("rediss://${RedisReplicationGroup.ConfigurationEndPoint.")
    assert variables["VT_REDIS_CLUSTER"] == "true"
    assert variables["VT_TABLE_NAME"] == {"Ref": "VisitsTable"}
    assert variables["VT_JWT_SECRET_PARAM"] == {"Ref": "JwtSecretParameterName"}
    assert variables["VT_HASH_KEY_PARAM"] == {"Ref": "HashKeyParameterName"}
    assert variables["VT_AWS_REGION"] == {"Ref": "AWS::Region"}
    for name in ("VT_JWT_ISSUER", "VT_JWT_AUDIENCE", "VT_CORS_ORIGINS"):
        assert name in variables
    # Share links are minted and checked by the stats function only.
    assert environment(template, "StatsFunction")["VT_SHARE_KEY_PARAM"] == {"Ref": "ShareKeyParameterName"}
    assert [f for f in functions(template) if "VT_SHARE_KEY_PARAM" in environment(template, f)] == ["StatsFunction"]


# ---------------------------------------------------------------- network


def test_redis_is_a_tls_cluster_reachable_only_from_the_functions(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    redis = resources["RedisReplicationGroup"]["Properties"]
    assert redis["CacheParameterGroupName"] == {"Ref": "RedisParameterGroup"}  # test_template_redis.py
    assert redis["NumNodeGroups"] == {"Ref": "NumShards"}
    assert redis["TransitEncryptionEnabled"] is True
    assert redis["AtRestEncryptionEnabled"] is True
    assert "SecurityGroupIngress" not in resources["RedisSecurityGroup"]["Properties"]
    redis_sg = {"Fn::GetAtt": ["RedisSecurityGroup", "GroupId"]}
    ingress = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress" and r["Properties"]["GroupId"] == redis_sg
    ]
    assert ingress == [
        {
            "GroupId": redis_sg,
            "Description": ingress[0]["Description"],
            "IpProtocol": "tcp",
            "FromPort": 6379,
            "ToPort": 6379,
            "SourceSecurityGroupId": {"Fn::GetAtt": ["LambdaSecurityGroup", "GroupId"]},
        }
    ]
    assert template["Globals"]["Function"]["VpcConfig"]["SecurityGroupIds"] == [{"Ref": "LambdaSecurityGroup"}]
    endpoints = {
        (r["Properties"]["VpcEndpointType"], r["Properties"]["ServiceName"]["Fn::Sub"])
        for r in resources.values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
    }
    assert endpoints == {
        ("Gateway", "com.amazonaws.${AWS::Region}.dynamodb"),
        ("Interface", "com.amazonaws.${AWS::Region}.ssm"),
        ("Interface", "com.amazonaws.${AWS::Region}.secretsmanager"),
        ("Interface", "com.amazonaws.${AWS::Region}.events"),  # the alerts' PutEvents
    }


# ---------------------------------------------------------------- deploy configuration


def test_samconfig_deploys_with_a_changeset_review() -> None:
    config = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))["default"]
    deploy = config["deploy"]["parameters"]
    assert config["global"]["parameters"]["stack_name"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True


def test_table_definition_is_where_the_local_tables_read_it(template: dict[str, Any]) -> None:
    table = template["Resources"]["VisitsTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    indexes = {index["IndexName"] for index in table["Properties"]["GlobalSecondaryIndexes"]}
    assert indexes == {"ByUser"}


def test_packaged_replaces_every_local_path(template: dict[str, Any]) -> None:
    text = json.dumps(packaged(template))
    assert '"functions/"' not in text
    assert '"layers/"' not in text


def test_samconfig_names_every_parameter(template: dict[str, Any]) -> None:
    """The deployer's guide in samconfig.toml lists each parameter, the required ones (no default)
    among the required."""
    comments = "\n".join(line for line in SAMCONFIG.read_text(encoding="utf-8").splitlines() if line.startswith("#"))
    required_part, _, optional_part = comments.partition("Optional")
    for name, parameter in template["Parameters"].items():
        part = optional_part if "Default" in parameter else required_part
        assert re.search(rf"\b{name}\b", part), f"samconfig.toml does not mention {name} where it belongs"
