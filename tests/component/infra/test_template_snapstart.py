"""SnapStart on every function (Python 3.12+ on arm64), and nothing that invokes $LATEST: routes,
schedules and the WebSocket integration all go to the published alias, where the snapshot is."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.component.infra.sam_template import functions


def alias_name(template: dict[str, Any]) -> str:
    return str(template["Globals"]["Function"]["AutoPublishAlias"])


def aliases(translated: dict[str, Any]) -> set[str]:
    return {name for name, r in translated["Resources"].items() if r["Type"] == "AWS::Lambda::Alias"}


def test_snapstart_on_published_versions_of_every_function(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    function_globals = template["Globals"]["Function"]
    assert function_globals["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function_globals["AutoPublishAlias"]  # SnapStart needs published versions
    # SnapStart exists for Python from 3.12, on x86_64 and arm64 alike: Graviton stays.
    major, minor = map(int, function_globals["Runtime"].removeprefix("python").split("."))
    assert (major, minor) >= (3, 12)
    assert function_globals["Architectures"] == ["arm64"]
    for name, properties in functions(template).items():
        assert "SnapStart" not in properties, f"{name} overrides SnapStart"
        assert "AutoPublishAlias" not in properties, f"{name} overrides the alias"
        # What SnapStart cannot be combined with.
        assert "ProvisionedConcurrencyConfig" not in properties, name
        assert "FileSystemConfigs" not in properties, name
        assert properties.get("EphemeralStorage", {}).get("Size", 512) <= 512, name
    lambdas = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert lambdas
    assert all(r["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"} for r in lambdas)
    assert len(aliases(translated)) == len(lambdas)


def test_routes_and_schedules_invoke_the_alias(template: dict[str, Any], translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    published = aliases(translated)
    # HTTP routes: the OpenAPI integrations SAM writes into the HTTP API.
    body = resources["HttpApi"]["Properties"]["Body"]
    uris = [
        operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        for path in body["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "x-amazon-apigateway-integration" in operation
    ]
    assert uris
    for uri in uris:
        (target,) = re.findall(r"/functions/\$\{(\w+)\}/invocations", uri)
        assert target in published, uri
    # Schedules, the invoke permissions and the async invoke settings. A rule that is no schedule
    # (the alert webhook's) targets no function at all.
    lambdas = {name for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    for name, resource in resources.items():
        properties = resource["Properties"]
        if resource["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in properties:
            assert all(target["Arn"]["Ref"] in published for target in properties["Targets"]), name
        elif resource["Type"] == "AWS::Events::Rule":
            named = json.dumps(properties["Targets"])
            assert not [f for f in lambdas if f'"{f}"' in named], name
        if resource["Type"] == "AWS::Lambda::Permission":
            assert properties["FunctionName"]["Ref"] in published, name
        if resource["Type"] == "AWS::Lambda::EventInvokeConfig":
            assert properties["Qualifier"] == alias_name(template), name


def test_the_websocket_integration_invokes_the_alias(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    uri = resources["LiveIntegration"]["Properties"]["IntegrationUri"]["Fn::Sub"]
    assert uri.endswith(f"/functions/${{LiveConnectionsFunction.Arn}}:{alias_name(template)}/invocations")
    assert resources["LiveInvokePermission"]["Properties"]["FunctionName"] == {"Ref": "LiveConnectionsFunction.Alias"}
    assert json.dumps(resources).count("LiveConnectionsFunction.Arn") == 1  # nothing else calls $LATEST
