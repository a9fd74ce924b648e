"""Helpers of the template tests: cfn-lint, the offline SAM transform, and ways to read the parsed
or translated template (functions, policy statements, environments, conditions)."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.config import ManualArgs
from samtranslator.translator.transform import transform

from infra.tables import TEMPLATE

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


def function_role(translated: dict[str, Any], function: str) -> dict[str, Any]:
    role_ref = translated["Resources"][function]["Properties"]["Role"]
    role_id = role_ref["Fn::GetAtt"][0]
    role: dict[str, Any] = translated["Resources"][role_id]["Properties"]
    return role


def environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    merged.update(template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


def _parameter_value(template: dict[str, Any], name: str, given: dict[str, Any]) -> Any:
    if name in given:
        return given[name]
    parameter = template["Parameters"][name]
    if "Default" not in parameter:
        raise AssertionError(f"parameter {name} has no default: give it")
    default = parameter["Default"]
    if parameter["Type"] == "CommaDelimitedList" or parameter["Type"].startswith("List<"):
        return [item.strip() for item in str(default).split(",")]
    return default


def _value(template: dict[str, Any], node: Any, given: dict[str, Any], conditions: dict[str, bool]) -> Any:
    """The value of a condition's operand: parameters (given or default), Fn::Join, literals."""
    if isinstance(node, dict) and len(node) == 1:
        (function, argument), *_ = node.items()
        if function == "Ref":
            return _parameter_value(template, argument, given)
        if function == "Fn::Join":
            separator, items = argument
            parts = _value(template, items, given, conditions)
            return separator.join(str(part) for part in as_list(parts))
        if function in {"Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"}:
            return _condition(template, node, given, conditions)
        raise AssertionError(f"{function} is not evaluated by these tests")
    if isinstance(node, list):
        return [_value(template, item, given, conditions) for item in node]
    return node


def _condition(template: dict[str, Any], node: Any, given: dict[str, Any], conditions: dict[str, bool]) -> bool:
    (function, argument), *_ = node.items()
    if function == "Condition":
        return _named_condition(template, argument, given, conditions)
    if function == "Fn::Equals":
        left, right = (_value(template, side, given, conditions) for side in argument)
        return str(left) == str(right)
    if function == "Fn::Not":
        return not _condition(template, argument[0], given, conditions)
    if function == "Fn::And":
        return all(_condition(template, item, given, conditions) for item in argument)
    if function == "Fn::Or":
        return any(_condition(template, item, given, conditions) for item in argument)
    raise AssertionError(f"{function} is not a condition function")


def _named_condition(template: dict[str, Any], name: str, given: dict[str, Any], known: dict[str, bool]) -> bool:
    if name not in known:
        known[name] = _condition(template, template["Conditions"][name], given, known)
    return known[name]


def conditions_for(
    template: dict[str, Any], given: dict[str, Any], known: dict[str, bool] | None = None
) -> dict[str, bool]:
    """Every condition of the template, for these parameter values (the others at their default)."""
    known = {} if known is None else known
    for name in template.get("Conditions", {}):
        _named_condition(template, name, given, known)
    return known


def created(template: dict[str, Any], given: dict[str, Any]) -> set[str]:
    """Logical ids of the resources (and outputs, prefixed `Outputs.`) created for these values."""
    conditions = conditions_for(template, given)
    names = {name for name, r in template["Resources"].items() if conditions.get(r.get("Condition", ""), True)}
    outputs = {
        f"Outputs.{n}" for n, o in template.get("Outputs", {}).items() if conditions.get(o.get("Condition", ""), True)
    }
    return names | outputs
