"""Secrets from SSM Parameter Store and Secrets Manager through Powertools Parameters.

Every read goes through the provider, which keeps a value for its max age and then reads it again,
so a rotated secret is picked up within that time without a restart (README, "Identity"). A store
that cannot be read is `SecretUnavailable` (503), never a crash and never a guessed value.

Rotation format: a parameter holds either one secret, or a JSON array of strings, the current
secret first and then the previous one (`["new", "old"]`), while a rotation is under way. A value
that starts with `[` must be such an array.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from community_tracker.aws.clients import aws_client
from community_tracker.errors import SecretUnavailable
from community_tracker.factories import cached_factory

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

DEFAULT_MAX_AGE_SECONDS = 300


# Powertools Parameters (and boto3 under it) are imported by the first secret read: a function
# configured with its secrets' values (the local run, the tests) never loads them.
@cached_factory
def _ssm_provider() -> SSMProvider:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    return SSMProvider(boto3_client=aws_client("ssm"))


@cached_factory
def _secrets_provider() -> SecretsProvider:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=aws_client("secretsmanager"))


_SSM_ARN = re.compile(r"arn:aws[a-z-]*:ssm:")


def is_ssm_parameter(name: str) -> bool:
    """An SSM parameter is named by a path (`/app/secret`) or its ARN; anything else names a
    Secrets Manager secret (a name or an `arn:aws:secretsmanager:` ARN)."""
    return name.startswith("/") or _SSM_ARN.match(name) is not None


def read_secret(name: str, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> str:
    """The raw value of an SSM SecureString or a Secrets Manager secret, cached for its max age."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

    try:
        if is_ssm_parameter(name):
            value: Any = _ssm_provider().get(name, decrypt=True, max_age=max_age_seconds)
        else:
            value = _secrets_provider().get(name, max_age=max_age_seconds)
    except (GetParameterError, TransformParameterError) as error:
        raise SecretUnavailable("a secret cannot be read from its store") from error
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError as error:
            raise SecretUnavailable("a secret is not text") from error
    if not isinstance(value, str) or not value:
        raise SecretUnavailable("a secret is empty")
    return value


def secret_values(raw: str) -> tuple[str, ...]:
    """One secret, or `["current", "previous", ...]`: the values, current first."""
    if not raw.lstrip().startswith("["):
        return (raw,)
    try:
        values = json.loads(raw)
    except ValueError as error:
        raise SecretUnavailable("a secret's rotation list is not JSON") from error
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise SecretUnavailable("a secret's rotation list must be a non-empty JSON array of strings")
    return tuple(values)


def rotating_secret(value: str, parameter_name: str | None, max_age_seconds: int) -> Callable[[], tuple[str, ...]]:
    """The current values of a secret, read on each call (the provider keeps them for their max
    age): from its parameter when one is named, else the value itself (local runs, tests)."""
    if parameter_name is None:
        fixed = (value,)
        return lambda: fixed
    name = parameter_name
    parsed: list[tuple[str, tuple[str, ...]]] = []  # the last raw value and its parse

    def current() -> tuple[str, ...]:
        raw = read_secret(name, max_age_seconds)
        if not parsed or parsed[0][0] != raw:
            parsed[:] = [(raw, secret_values(raw))]
        return parsed[0][1]

    return current


def redis_credentials(name: str, max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS) -> tuple[str | None, str]:
    """(username or None, password) for Redis AUTH from a secret: either the token itself, or JSON
    with a `password` (or `token`) key and optionally `username` (what ElastiCache rotation stores)."""
    raw = read_secret(name, max_age_seconds)
    if not raw.lstrip().startswith("{"):
        return None, raw
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise SecretUnavailable("the Redis auth secret is not valid JSON") from error
    password = document.get("password") or document.get("token") if isinstance(document, dict) else None
    username = document.get("username") if isinstance(document, dict) else None
    if not isinstance(password, str) or not password:
        raise SecretUnavailable('the Redis auth secret has no "password" or "token"')
    if username is not None and (not isinstance(username, str) or not username):
        raise SecretUnavailable('the Redis auth secret\'s "username" is not a name')
    return username, password
