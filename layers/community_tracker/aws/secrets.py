"""Secrets from SSM Parameter Store through Powertools Parameters (cached for their max age)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parameters import SSMProvider

from community_tracker.aws.clients import aws_client
from community_tracker.factories import cached_factory


@cached_factory
def _ssm_provider() -> SSMProvider:
    return SSMProvider(boto3_client=aws_client("ssm"))


def secret(value: str, parameter_name: str | None) -> str:
    """A secret from its SSM parameter when one is named (cached 5 minutes), else the value itself."""
    if parameter_name is None:
        return value
    return str(_ssm_provider().get(parameter_name, decrypt=True, max_age=300))
