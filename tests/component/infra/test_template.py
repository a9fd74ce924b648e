"""template.yaml: lint-clean as written and as CloudFormation receives it after the SAM transform,
and keeping the facts the code relies on (routes and handlers, the cleanup budget, the layer's
layout, least-privilege roles, settings, the Redis cluster's network)."""

from __future__ import annotations

import copy
import importlib
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.config import ManualArgs
from samtranslator.translator.transform import transform

from community_tracker.settings import Settings
from infra.tables import TEMPLATE, load_template

ROOT = TEMPLATE.parent
SAMCONFIG = ROOT / "samconfig.toml"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"

# The policies SAM attaches by itself (logs, X-Ray with Tracing: Active, ENIs with VpcConfig).
# None of them grants anything on DynamoDB or SSM.
SAM_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaVPCAccessExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
}

# Exactly what each function does with the table and the secrets (see layers/community_tracker/aws/
# stores.py and secrets.py); a new call means a deliberate change here and in the template.
EXPECTED_ACTIONS = {
    "TrackVisitFunction": {"dynamodb:GetItem", "dynamodb:PutItem", "ssm:GetParameter"},
    "StatsFunction": {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "ssm:GetParameter",
    },
    "CleanupFunction": {"dynamodb:PutItem"},
    "LiveConnectionsFunction": {"dynamodb:GetItem", "ssm:GetParameter"},
    "LivePushFunction": {"execute-api:ManageConnections"},
}
SECRET_PARAMETERS = {"JwtSecretParameterName", "HashKeyParameterName"}


def deploy_region() -> str:
    config = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))
    return str(config["default"]["deploy"]["parameters"]["region"])


# The region of samconfig.toml, and us-east-1 (the settings' default and AWS's first region).
LINT_REGIONS = sorted({deploy_region(), "us-east-1"})


def lint_problems(template_text: str) -> list[str]:
    """cfn-lint's errors and warnings. No rule is ignored, and warnings fail too: the template has
    none. Should one ever have to be accepted, exclude that rule by id here, with the reason.
    Informational findings (not enabled by default) are advice, not defects."""
    matches = lint(template_text, config=ManualArgs(regions=LINT_REGIONS))
    return [
        f"{match.rule.id} line {match.linenumber}: {match.message}"
        for match in matches
        if match.rule.severity in {"error", "warning"}
    ]


class StaticManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader, which asks IAM (ListPolicies) for the ARN
    of every AWS managed policy: a fixed map, so translating never calls AWS."""

    def load(self) -> dict[str, str]:
        return dict(SAM_MANAGED_POLICIES)


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """The template as `sam package` hands it to CloudFormation: local code and layer directories
    replaced by the S3 objects they were uploaded to."""
    result = copy.deepcopy(template)
    targets = [(name, resource.get("Properties", {})) for name, resource in result["Resources"].items()]
    targets += [(f"Globals{name}", section) for name, section in result.get("Globals", {}).items()]
    for name, properties in targets:
        for key in ("CodeUri", "ContentUri"):
            value = properties.get(key)
            if isinstance(value, str) and not value.startswith("s3://"):
                properties[key] = f"s3://sam-artifacts-bucket/{name}/{key.lower()}.zip"
    return result


def sam_transform(template: dict[str, Any]) -> dict[str, Any]:
    """What the AWS::Serverless-2016-10-31 transform makes of the template, computed offline."""
    with pytest.MonkeyPatch.context() as patch:
        # The translator builds ARNs from the boto3 session's region; no credentials are needed.
        patch.setenv("AWS_DEFAULT_REGION", deploy_region())
        patch.delenv("AWS_PROFILE", raising=False)
        translated: dict[str, Any] = transform(packaged(template), {}, StaticManagedPolicies())
    return translated


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return sam_transform(template)


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> properties of every serverless function."""
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == SERVERLESS_FUNCTION
    }


def policy_statement(template: dict[str, Any], function: str, sid: str) -> dict[str, Any]:
    for policy in template["Resources"][function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []):
            if isinstance(statement, dict) and statement.get("Sid") == sid:
                return statement
    raise AssertionError(f"{function} has no policy statement {sid}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The statements of a policy document, both branches of any Fn::If included."""
    pending = list(as_list(document["Statement"]))
    while pending:
        item = pending.pop()
        if "Fn::If" in item:
            pending.extend(branch for branch in item["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"})
        else:
            yield item


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


def test_cleanup_runs_every_minute_with_a_60_second_budget(template: dict[str, Any]) -> None:
    cleanup = template["Resources"]["CleanupFunction"]["Properties"]
    assert cleanup["Handler"] == "cleanup.handler.lambda_handler"
    assert cleanup["Timeout"] == 60  # tests/component/cleanup run the pass against this budget
    schedules = [event for event in cleanup["Events"].values() if event["Type"] in {"Schedule", "ScheduleV2"}]
    assert len(schedules) == 1
    properties = schedules[0]["Properties"]
    assert (properties.get("Schedule") or properties.get("ScheduleExpression")) == "rate(1 minute)"


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


# ---------------------------------------------------------------- IAM


def function_role(translated: dict[str, Any], function: str) -> dict[str, Any]:
    role_ref = translated["Resources"][function]["Properties"]["Role"]
    role_id = role_ref["Fn::GetAtt"][0]
    role: dict[str, Any] = translated["Resources"][role_id]["Properties"]
    return role


def test_function_roles_are_least_privilege(template: dict[str, Any], translated: dict[str, Any]) -> None:
    """Checked on the translated roles, so SAM policy templates are covered as well."""
    for function in functions(template):
        role = function_role(translated, function)
        assert set(role.get("ManagedPolicyArns", [])) <= set(SAM_MANAGED_POLICIES.values()), function
        actions: set[str] = set()
        for policy in role.get("Policies", []):
            for statement in statements(policy["PolicyDocument"]):
                assert statement["Effect"] == "Allow"
                assert "NotAction" not in statement
                assert "NotResource" not in statement
                statement_actions = {str(action) for action in as_list(statement["Action"])}
                resources = json.dumps(statement["Resource"])
                assert not any("*" in action for action in statement_actions), (function, statement_actions)
                if any(action.startswith("dynamodb:") for action in statement_actions):
                    assert "*" not in resources, (function, resources)
                    assert all("VisitsTable" in json.dumps(r) for r in as_list(statement["Resource"])), function
                if any(action.startswith("ssm:") for action in statement_actions):
                    for resource in as_list(statement["Resource"]):
                        assert any(name in json.dumps(resource) for name in SECRET_PARAMETERS), (function, resource)
                actions |= statement_actions - {"kms:Decrypt"}  # only with a customer managed key
        assert actions == EXPECTED_ACTIONS.get(function), function
    assert set(EXPECTED_ACTIONS) == set(functions(template))


# ---------------------------------------------------------------- settings


def environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    merged.update(template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


def test_environment_names_only_real_settings(template: dict[str, Any]) -> None:
    known = {f"VT_{name.upper()}" for name in Settings.model_fields}
    services = set()
    for function in functions(template):
        variables = environment(template, function)
        assert {name for name in variables if name.startswith("VT_")} <= known, function
        # Secrets come from SSM only, never as plain environment values.
        assert "VT_JWT_SECRET" not in variables
        assert "VT_HASH_KEY" not in variables
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


# ---------------------------------------------------------------- network


def test_redis_is_a_tls_cluster_reachable_only_from_the_functions(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    redis = resources["RedisReplicationGroup"]["Properties"]
    assert redis["CacheParameterGroupName"].endswith(".cluster.on")
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
        r["Properties"]["VpcEndpointType"]: r["Properties"]["ServiceName"]["Fn::Sub"]
        for r in resources.values()
        if r["Type"] == "AWS::EC2::VPCEndpoint"
    }
    assert endpoints == {
        "Gateway": "com.amazonaws.${AWS::Region}.dynamodb",
        "Interface": "com.amazonaws.${AWS::Region}.ssm",
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
