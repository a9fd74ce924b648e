"""Secrets that rotate, in moto SSM: the HS256 secret and the hash key are re-read on their max
age, a rotation list verifies both secrets, and an SSM that cannot be read is a 503, never a 500."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import jwt
import pytest
from botocore.retries.standard import ExponentialBackoff

from community_tracker.aws.clients import aws_client
from community_tracker.errors import InvalidToken, SecretUnavailable
from community_tracker.factories import reset_factories
from community_tracker.identity import get_token_verifier, get_visitor_hasher
from community_tracker.models import Community
from community_tracker.settings import get_settings
from tests.helpers import aws_error, beacon

JWT_PARAM = "/vt-test/jwt-secret"
HASH_PARAM = "/vt-test/hash-key"
OLD, NEW = "old-secret-0123456789-0123456789-abcdef", "new-secret-0123456789-0123456789-abcdef"


def put(name: str, value: str) -> None:
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=name, Value=value, Type="SecureString", Overwrite=True
    )


def signed(secret: str, user_id: str = "u-1") -> str:
    settings = get_settings()
    now = int(time.time())
    payload = {"sub": user_id, "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "iat": now, "exp": now + 600}
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture
def secrets_in_ssm(function_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The functions' environment, with both secrets in SSM and a 1 s max age."""
    monkeypatch.setenv("VT_JWT_SECRET_PARAM", JWT_PARAM)
    monkeypatch.setenv("VT_HASH_KEY_PARAM", HASH_PARAM)
    monkeypatch.setenv("VT_SECRET_MAX_AGE_SECONDS", "1")
    put(JWT_PARAM, OLD)
    put(HASH_PARAM, "hash-key-one-0123456789")
    reset_factories()
    yield
    reset_factories()


def test_a_rotated_hs256_secret_is_picked_up_and_both_verify_during_the_rotation(secrets_in_ssm: None) -> None:
    assert get_token_verifier().verify(signed(OLD)).user_id == "u-1"

    # Rotation, step 1: the new secret first, the previous one still listed
    put(JWT_PARAM, json.dumps([NEW, OLD]))
    time.sleep(1.1)

    assert get_token_verifier().verify(signed(NEW)).user_id == "u-1"
    assert get_token_verifier().verify(signed(OLD)).user_id == "u-1"  # nobody signed in before is refused

    # Rotation, step 2: the previous secret is dropped once its tokens have expired
    put(JWT_PARAM, NEW)
    time.sleep(1.1)

    assert get_token_verifier().verify(signed(NEW)).user_id == "u-1"
    with pytest.raises(InvalidToken, match="signature"):
        get_token_verifier().verify(signed(OLD))


def test_the_hash_key_rotates_and_offers_the_previous_keys_value(secrets_in_ssm: None) -> None:
    before = get_visitor_hasher().browser_key("tab-12345678")
    cookieless_before = get_visitor_hasher().cookieless_key(0, "198.51.100.7", "UA")

    put(HASH_PARAM, json.dumps(["hash-key-two-0123456789", "hash-key-one-0123456789"]))
    time.sleep(1.1)

    hasher = get_visitor_hasher()
    after = hasher.browser_key("tab-12345678")
    assert after != before
    # the candidates, current first: a visitor listed under the previous key can be found and moved
    assert hasher.browser_keys("tab-12345678") == [after, before]
    assert hasher.cookieless_keys(0, "198.51.100.7", "UA")[1] == cookieless_before


@pytest.mark.parametrize("value", ["[not json", "[]", '["ok", 3]', '[""]'])
def test_a_malformed_rotation_list_is_unavailable_not_guessed(secrets_in_ssm: None, value: str) -> None:
    put(JWT_PARAM, value)

    with pytest.raises(SecretUnavailable):
        get_token_verifier().verify(signed(OLD))


@pytest.mark.parametrize("caller", ["authenticated", "anonymous"])
def test_ssm_failing_is_503_with_retry_after_never_500(
    secrets_in_ssm: None,
    community: Community,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    caller: str,
) -> None:
    # Given SSM answering every GetParameter with a server error (botocore retries as configured;
    # only its backoff sleeps are skipped to keep the test quick)
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda _self, _context: 0)
    failures: list[str] = []

    def fail(**kwargs: Any) -> Any:
        failures.append(kwargs["request"].url)
        return aws_error(500, "InternalServerError", json_type="AmazonSSM")

    aws_client("ssm").meta.events.register("before-send.ssm.GetParameter", fail)
    headers = {"authorization": f"Bearer {signed(OLD)}"} if caller == "authenticated" else {}

    # When a beacon needs a secret
    answer = beacon(
        community.community_id, {"url": "https://x.example/", "visitor_id": "tab-12345678"}, headers=headers
    )

    # Then the failure reached the code, and the answer is an outage, not a crash
    assert failures, "the injected SSM failure was never reached"
    assert answer.status == 503, answer.body
    assert answer.headers["retry-after"]
    assert answer.json()["error"]["code"] == "identity_unavailable"
    assert any(record.getMessage() == "secret unavailable" for record in caplog.records)
