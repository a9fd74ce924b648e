"""Creates the DynamoDB table from its definition in template.yaml (the single source of truth),
for moto in the tests and for the emulator in the local run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
TABLE_RESOURCE = "VisitsTable"
_CREATE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as a dict; intrinsic functions (!Ref, !Sub, ...) become their long form."""
    template: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return template


def table_properties(template: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = (template or load_template())["Resources"][TABLE_RESOURCE]["Properties"]
    return properties


def create_visits_table(dynamodb: Any, table_name: str) -> None:
    """CreateTable with the template's keys and index, then TTL and point-in-time recovery as
    explicit calls (emulators ignore those when given inside a template)."""
    properties = table_properties()
    dynamodb.create_table(TableName=table_name, **{key: properties[key] for key in _CREATE_KEYS})
    dynamodb.get_waiter("table_exists").wait(TableName=table_name)
    ttl = properties["TimeToLiveSpecification"]
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]},
    )
    dynamodb.update_continuous_backups(
        TableName=table_name,
        PointInTimeRecoverySpecification=properties["PointInTimeRecoverySpecification"],
    )
