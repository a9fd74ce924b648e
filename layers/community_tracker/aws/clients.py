"""boto3 clients, built on first use and reused for the life of the process.

boto3 and botocore are imported by the first client built, not by importing this module: a
function whose requests never reach AWS (or not before the first one that does) does not load
them for nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from community_tracker.factories import cached_factory
from community_tracker.settings import Settings, get_settings

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource


# Connections a client keeps open at once: a history page reads this many partitions together
# (stores.HISTORY_READERS); botocore's default is 10.
CONNECTIONS_PER_CLIENT = 16


@cached_factory
def _client_config() -> Config:
    """Sized to the functions' 10 s timeout (README, "Deploying": the timeout budget): a beacon's
    DynamoDB write takes at most two attempts of 1 s to connect and 1 s to read, backed off on
    throttling (standard mode), then the error reaches the caller, which answers 503 rather than
    pretending a visit was kept."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": 2},
        connect_timeout=1,
        read_timeout=1,
        max_pool_connections=CONNECTIONS_PER_CLIENT,
    )


def _session_kwargs(settings: Settings, service: str) -> dict[str, Any]:
    if not settings.use_localstack:
        return {"region_name": settings.aws_region, "config": _client_config()}
    # Only imported for local runs: localstack-client turns AWS_ENDPOINT_URL / LOCALSTACK_HOST
    # into the endpoint, so moto_server and a real LocalStack are reached the same way.
    from localstack_client.config import get_service_endpoint

    return {
        "region_name": settings.aws_region,
        "config": _client_config(),
        "endpoint_url": get_service_endpoint(service),
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }


@cached_factory
def dynamodb_resource() -> DynamoDBServiceResource:
    import boto3

    return boto3.resource("dynamodb", **_session_kwargs(get_settings(), "dynamodb"))


@cached_factory
def aws_client(service: str) -> Any:
    import boto3

    return boto3.client(service, **_session_kwargs(get_settings(), service))  # type: ignore[call-overload]
