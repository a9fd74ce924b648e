"""Alert rules and the alert history in the single table (README, "Spike and drop alerts").

`PK=COMMUNITY#<id>`, `SK=ALERT_RULE`: the community's rule (none: the default applies).
`PK=COMMUNITY#<id>`, `SK=ALERT#<alert_id>`: one alert (alert ids sort by time), kept
`VT_ALERT_HISTORY_DAYS` (TTL `expires_at`). botocore's errors leave as `HistoryUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from community_tracker.alerts import Alert, AlertRule
from community_tracker.aws.clients import dynamodb_resource
from community_tracker.aws.stores import _community_pk, _translated, decode_cursor, encode_cursor
from community_tracker.errors import HistoryUnavailable, InvalidCursor
from community_tracker.factories import cached_factory
from community_tracker.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource

RULE_SK = "ALERT_RULE"
ALERT_SK_PREFIX = "ALERT#"
BATCH_GET_KEYS = 100  # BatchGetItem's limit
_RULE_FIELDS = set(AlertRule.model_fields)


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: ints stay ints, the rest floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _dynamo(value: Any) -> Any:
    """Floats are not accepted by boto3's DynamoDB serializer: Decimal (through str, exactly)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    return value


def _rule_of(item: dict[str, Any]) -> AlertRule:
    return AlertRule.model_validate({k: _plain(v) for k, v in item.items() if k in _RULE_FIELDS})


class DynamoAlertRules:
    def __init__(self, resource: DynamoDBServiceResource, table_name: str) -> None:
        self._resource = resource
        self._table_name = table_name
        self._table = resource.Table(table_name)

    def get(self, community_id: str) -> AlertRule | None:
        with _translated(HistoryUnavailable, "alert rules"):
            item = self._table.get_item(Key={"PK": _community_pk(community_id), "SK": RULE_SK}).get("Item")
        return _rule_of(item) if item else None

    def put(self, community_id: str, rule: AlertRule) -> None:
        with _translated(HistoryUnavailable, "alert rules"):
            self._table.put_item(
                Item={
                    "PK": _community_pk(community_id),
                    "SK": RULE_SK,
                    "entity": "alert_rule",
                    "community_id": community_id,
                    **_dynamo(rule.model_dump()),
                }
            )

    def custom_rules(self, community_ids: Sequence[str]) -> dict[str, AlertRule]:
        """The rules set by an admin, of those communities that have one."""
        found: dict[str, AlertRule] = {}
        for start in range(0, len(community_ids), BATCH_GET_KEYS):
            keys: list[dict[str, Any]] = [
                {"PK": _community_pk(cid), "SK": RULE_SK} for cid in community_ids[start : start + BATCH_GET_KEYS]
            ]
            request: dict[str, Any] = {self._table_name: {"Keys": keys}}
            for attempt in range(5):
                with _translated(HistoryUnavailable, "alert rules"):
                    answer = self._resource.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table_name, []):
                    found[str(item["community_id"])] = _rule_of(item)
                request = dict(answer.get("UnprocessedKeys") or {})
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise HistoryUnavailable("alert rules unavailable (unprocessed keys after retries)")
        return found


class DynamoAlertHistory:
    def __init__(self, resource: DynamoDBServiceResource, table_name: str, retention_days: int) -> None:
        self._table = resource.Table(table_name)
        self._retention_seconds = retention_days * 86_400

    def put_alert(self, alert: Alert) -> None:
        """Idempotent: a pass run again writes the same item."""
        with _translated(HistoryUnavailable, "alert history"):
            self._table.put_item(
                Item={
                    "PK": _community_pk(alert.community_id),
                    "SK": f"{ALERT_SK_PREFIX}{alert.alert_id}",
                    "entity": "alert",
                    "expires_at": int(time.time()) + self._retention_seconds,
                    **_dynamo(alert.model_dump(exclude_none=True)),
                }
            )

    def end_alert(self, community_id: str, alert_id: str, ended_at: str) -> None:
        try:
            with _translated(HistoryUnavailable, "alert history"):
                self._table.update_item(
                    Key={"PK": _community_pk(community_id), "SK": f"{ALERT_SK_PREFIX}{alert_id}"},
                    UpdateExpression="SET ended_at = :ended",
                    ExpressionAttributeValues={":ended": ended_at},
                    ConditionExpression=Attr("PK").exists(),
                )
        except HistoryUnavailable as error:
            cause = error.__cause__
            if not (
                isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ConditionalCheckFailedException"
            ):
                raise  # an alert the history lost (expired) has nothing to end

    def alerts(self, community_id: str, *, limit: int, cursor: str | None) -> tuple[list[Alert], str | None]:
        """Newest first."""
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(_community_pk(community_id))
            & Key("SK").begins_with(ALERT_SK_PREFIX),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        start = decode_cursor(cursor, {"PK", "SK"})
        if start is not None and (start["PK"] != _community_pk(community_id) or not start["SK"].startswith("ALERT#")):
            raise InvalidCursor("the cursor is not one this API handed out")
        if start is not None:
            query["ExclusiveStartKey"] = start
        with _translated(HistoryUnavailable, "alert history"):
            answer = self._table.query(**query)
        alerts = [
            Alert.model_validate({k: _plain(v) for k, v in item.items() if k in Alert.model_fields})
            for item in answer["Items"]
        ]
        return alerts, encode_cursor(answer.get("LastEvaluatedKey"))


@cached_factory
def get_alert_rules() -> DynamoAlertRules:
    return DynamoAlertRules(dynamodb_resource(), get_settings().table_name)


@cached_factory
def get_alert_history() -> DynamoAlertHistory:
    settings = get_settings()
    return DynamoAlertHistory(dynamodb_resource(), settings.table_name, settings.alert_history_days)
