"""Claims are read strictly: NumericDates are JSON numbers, `sub` is a user id in full, a token has
a maximum lifetime, and no claim of a well-signed token can make verification crash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from community_tracker.errors import InvalidToken
from community_tracker.identity import get_token_verifier
from community_tracker.settings import get_settings


def signed(**overrides: Any) -> str:
    """An HS256 token of the process's settings (the development secret), valid unless overridden."""
    config = get_settings()
    now = int(time.time())
    payload = {"sub": "u-1", "iss": config.jwt_issuer, "aud": config.jwt_audience, "iat": now, "exp": now + 600}
    payload.update(overrides)
    return hs256({k: v for k, v in payload.items() if v is not ...}, config.jwt_secret)


def hs256(payload: dict[str, Any], secret: str) -> str:
    """HS256 by hand: PyJWT will not encode some of the claims these tests send (a non-string `iss`)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def in_days(days: float) -> int:
    return int(time.time() + days * 86_400)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": str(in_days(0.01))}, "`exp` is not a number"),
        ({"exp": True}, "`exp` is not a number"),
        ({"exp": [in_days(0.01)]}, "`exp` is not a number"),
        ({"exp": float("inf")}, "`exp` is not a finite number"),
        ({"exp": float("nan")}, "`exp` is not a finite number"),
        ({"nbf": str(int(time.time()))}, "`nbf` is not a number"),
        ({"iat": str(int(time.time()))}, "`iat` is not a number"),
        ({"iat": None}, "`iat` is not a number"),
        ({"nbf": in_days(0.5)}, "not valid yet"),
        ({"iat": in_days(0.5)}, "issued in the future"),
        ({"exp": in_days(365 * 975)}, "lives longer than 86400 seconds"),  # the year 3000
        ({"exp": in_days(2), "iat": ...}, "lives longer than 86400 seconds"),  # no iat: exp - now
        ({"exp": 10**400}, "lives longer"),
        ({"exp": in_days(-0.01)}, "expired"),
        ({"sub": "alice\n"}, "subject"),
        ({"sub": "\ud800"}, "subject"),
        ({"sub": "ali\udc00ce"}, "subject"),
        ({"sub": 42}, "subject"),
        ({"sub": ["alice"]}, "subject"),
        ({"sub": "x" * 129}, "subject"),
    ],
)
def test_loose_claims_are_refused(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidToken, match=message):
        get_token_verifier().verify(signed(**claims))


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "auth0|abc"},
        {"sub": "google-oauth2|1234567890"},
        {"sub": "Émilie Gagnon"},
        {"exp": time.time() + 600.5, "iat": time.time()},  # fractional NumericDates
        {"exp": in_days(0.9)},  # under a day
        {"exp": in_days(0.9), "iat": ...},
        {"nbf": int(time.time()) - 10},
    ],
)
def test_well_formed_claims_still_verify(claims: dict[str, Any]) -> None:
    assert get_token_verifier().verify(signed(**claims)).user_id == claims.get("sub", "u-1")


def test_the_maximum_lifetime_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    token = signed(exp=in_days(3))
    with pytest.raises(InvalidToken, match="lives longer"):
        get_token_verifier().verify(token)

    monkeypatch.setenv("VT_JWT_MAX_LIFETIME_SECONDS", str(7 * 86_400))
    from community_tracker.factories import reset_factories

    reset_factories()
    assert get_token_verifier().verify(token).user_id == "u-1"


def test_a_division_claim_with_a_trailing_newline_is_unknown() -> None:
    assert get_token_verifier().verify(signed(division_id="montreal\n")).division_id is None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
CLAIMS = ["sub", "exp", "nbf", "iat", "iss", "aud", "roles", "division_id", "jti"]
KEEP = object()  # the claim keeps its valid value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({name: st.one_of(st.just(KEEP), st.just(...), JSON_VALUES) for name in CLAIMS}))
def test_no_claim_of_a_well_signed_token_crashes_verification(claims: dict[str, Any]) -> None:
    token = signed(**{name: value for name, value in claims.items() if value is not KEEP})
    try:
        principal = get_token_verifier().verify(token)
    except InvalidToken:
        return
    # what got through is a usable user id
    principal.user_id.encode("utf-8")
    assert "\n" not in principal.user_id
