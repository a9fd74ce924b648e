"""Share links on record in the single table: `PK=COMMUNITY#<id>`, `SK=SHARE#<link_id>`, kept
until their expiry (TTL `expires_at`, epoch seconds), revoked by a flag. The signing key comes
from settings or SSM (`secret`). botocore's errors leave as `HistoryUnavailable`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from community_tracker.aws.clients import dynamodb_resource
from community_tracker.aws.secrets import rotating_secret
from community_tracker.aws.stores import _community_pk, _translated
from community_tracker.errors import HistoryUnavailable
from community_tracker.factories import cached_factory
from community_tracker.settings import get_settings
from community_tracker.sharing import ShareLink, ShareSigner
from community_tracker.timeutil import to_datetime

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SHARE_SK_PREFIX = "SHARE#"
_FIELDS = set(ShareLink.model_fields)


def _link_of(item: dict[str, Any]) -> ShareLink:
    fields = {k: v for k, v in item.items() if k in _FIELDS}
    return ShareLink.model_validate({**fields, "expires_at": expiry_iso(int(item["expires_at"]))})


class DynamoShareLinks:
    def __init__(self, table: Table) -> None:
        self._table = table

    def put(self, link: ShareLink, expires_s: int) -> None:
        with _translated(HistoryUnavailable, "share links"):
            self._table.put_item(
                Item={
                    "PK": _community_pk(link.community_id),
                    "SK": f"{SHARE_SK_PREFIX}{link.link_id}",
                    "entity": "share_link",
                    **link.model_dump(exclude_none=True, exclude={"expires_at"}),
                    "expires_at": expires_s,  # the table's TTL attribute, epoch seconds
                }
            )

    def get(self, community_id: str, link_id: str) -> ShareLink | None:
        with _translated(HistoryUnavailable, "share links"):
            item = self._table.get_item(
                Key={"PK": _community_pk(community_id), "SK": f"{SHARE_SK_PREFIX}{link_id}"}, ConsistentRead=True
            ).get("Item")
        return _link_of(item) if item else None

    def links(self, community_id: str) -> list[ShareLink]:
        with _translated(HistoryUnavailable, "share links"):
            answer = self._table.query(
                KeyConditionExpression=Key("PK").eq(_community_pk(community_id))
                & Key("SK").begins_with(SHARE_SK_PREFIX),
                Limit=500,
            )
        return [_link_of(item) for item in answer["Items"]]

    def revoke(self, community_id: str, link_id: str) -> bool:
        """False: there is no such link."""
        try:
            with _translated(HistoryUnavailable, "share links"):
                self._table.update_item(
                    Key={"PK": _community_pk(community_id), "SK": f"{SHARE_SK_PREFIX}{link_id}"},
                    UpdateExpression="SET revoked = :yes",
                    ExpressionAttributeValues={":yes": True},
                    ConditionExpression=Attr("PK").exists(),
                )
        except HistoryUnavailable as error:
            cause = error.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def expiry_iso(expires_s: int) -> str:
    return to_datetime(expires_s * 1000).strftime("%Y-%m-%dT%H:%M:%SZ")


@cached_factory
def get_share_links() -> DynamoShareLinks:
    return DynamoShareLinks(dynamodb_resource().Table(get_settings().table_name))


@cached_factory
def get_share_signer() -> ShareSigner:
    settings = get_settings()
    key = rotating_secret(settings.share_key, settings.share_key_param, settings.secret_max_age_seconds)
    return ShareSigner(key()[0])
