"""RS256 keys that rotate: a real JWKS endpoint on loopback rotates keys in, revokes them and goes
down; the verifier follows within the set's cache period, refetches at a bounded rate, and keeps
the last good set through an outage for a bounded time, saying so in the logs."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from community_tracker.errors import IdentityProviderUnavailable, InvalidToken
from community_tracker.factories import reset_factories
from community_tracker.identity import TokenVerifier, get_token_verifier
from community_tracker.jwks import JwksKeys
from tests.component.identity.tokens import AUDIENCE, ISSUER, Clock, JwksServer, rs256

Keys = dict[str, rsa.RSAPrivateKey]


def verifier_with(server: JwksServer, clock: Clock, **options: float) -> TokenVerifier:
    jwks = JwksKeys(server.url, clock=clock, **options)
    return TokenVerifier(jwks=jwks, issuer=ISSUER, audience=AUDIENCE)


def test_a_revoked_key_is_refused_within_the_cache_period(
    jwks_server: JwksServer, rsa_keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the process's verifier, configured from the environment with a 1 s JWKS cache period
    for name, value in {
        "VT_JWKS_URL": jwks_server.url,
        "VT_JWT_ISSUER": ISSUER,
        "VT_JWT_AUDIENCE": AUDIENCE,
        "VT_JWKS_CACHE_SECONDS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    reset_factories()
    token = rs256(rsa_keys["a"], "key-a")
    assert get_token_verifier().verify(token).user_id == "u-1"

    # When the provider rotates to key-b and drops key-a from its set
    jwks_server.publish(**{"key-b": rsa_keys["b"]})
    time.sleep(1.2)

    # Then key-a's tokens are refused once the period is over, and key-b's verify
    with pytest.raises(InvalidToken, match="signing key is unknown"):
        get_token_verifier().verify(token)
    assert get_token_verifier().verify(rs256(rsa_keys["b"], "key-b")).user_id == "u-1"


def test_within_the_cache_period_the_set_is_not_fetched_again(jwks_server: JwksServer, rsa_keys: Keys) -> None:
    clock = Clock()
    verifier = verifier_with(jwks_server, clock, max_age_seconds=300)
    token = rs256(rsa_keys["a"], "key-a")

    for _ in range(20):
        verifier.verify(token)
        clock.advance(10)

    assert jwks_server.requests == 1  # 200 s < 300 s

    clock.advance(100)
    verifier.verify(token)
    assert jwks_server.requests == 2


def test_a_key_rotated_in_is_fetched_at_once(jwks_server: JwksServer, rsa_keys: Keys) -> None:
    clock = Clock()
    verifier = verifier_with(jwks_server, clock, refresh_interval_seconds=30)
    verifier.verify(rs256(rsa_keys["a"], "key-a"))
    clock.advance(31)

    # The provider adds key-b (key-a still published) and starts signing with it
    jwks_server.publish(**{"key-a": rsa_keys["a"], "key-b": rsa_keys["b"]})

    assert verifier.verify(rs256(rsa_keys["b"], "key-b")).user_id == "u-1"
    assert jwks_server.requests == 2


def test_unknown_kids_refetch_at_a_bounded_rate(jwks_server: JwksServer, rsa_keys: Keys) -> None:
    clock = Clock()
    verifier = verifier_with(jwks_server, clock, refresh_interval_seconds=30)
    verifier.verify(rs256(rsa_keys["a"], "key-a"))

    # A flood of tokens naming made-up keys, over 60 s
    for _ in range(120):
        with pytest.raises(InvalidToken, match="signing key is unknown"):
            verifier.verify(rs256(rsa_keys["c"], f"forged-{uuid.uuid4().hex}"))
        clock.advance(0.5)

    # Then the set was fetched at most once per 30 s: the first fetch, and two refreshes
    assert jwks_server.requests <= 3
    assert verifier.verify(rs256(rsa_keys["a"], "key-a")).user_id == "u-1"


def test_an_outage_keeps_the_last_good_set_for_a_bounded_time_and_says_so(
    jwks_server: JwksServer, rsa_keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    verifier = verifier_with(jwks_server, clock, max_age_seconds=300, stale_seconds=600, refresh_interval_seconds=30)
    token = rs256(rsa_keys["a"], "key-a")
    verifier.verify(token)

    # When the endpoint goes down and the set is past its cache period
    jwks_server.down = True
    clock.advance(301)

    # Then the last good set still verifies, and the log says it is being kept, and for how long
    assert verifier.verify(token).user_id == "u-1"
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.getMessage() == "JWKS cannot be fetched: keeping the last good key set"
    assert warning.__dict__["kept_for_seconds_more"] == 599
    assert jwks_server.requests == 2

    # During the outage the endpoint is retried at most once per refresh interval
    for _ in range(10):
        clock.advance(1)
        verifier.verify(token)
    assert jwks_server.requests == 2

    # A kid the stale set does not know cannot be checked: an outage, not a bad token
    clock.advance(30)
    with pytest.raises(IdentityProviderUnavailable):
        verifier.verify(rs256(rsa_keys["b"], "key-b"))

    # Past cache period + stale time, nothing is trusted any more
    clock.advance(600)
    with pytest.raises(IdentityProviderUnavailable):
        verifier.verify(token)
    assert caplog.records[-1].levelno == logging.ERROR

    # And when the endpoint is back, the fresh set is used
    jwks_server.down = False
    jwks_server.publish(**{"key-b": rsa_keys["b"]})
    clock.advance(30)
    assert verifier.verify(rs256(rsa_keys["b"], "key-b")).user_id == "u-1"
    with pytest.raises(InvalidToken, match="signing key is unknown"):
        verifier.verify(token)


def test_a_provider_down_from_the_start_is_an_outage_retried_at_a_bounded_rate(
    jwks_server: JwksServer, rsa_keys: Keys
) -> None:
    clock = Clock()
    jwks_server.down = True
    verifier = verifier_with(jwks_server, clock, refresh_interval_seconds=30)
    token = rs256(rsa_keys["a"], "key-a")

    for _ in range(10):
        with pytest.raises(IdentityProviderUnavailable):
            verifier.verify(token)
        clock.advance(1)

    assert jwks_server.requests == 1
    jwks_server.down = False
    clock.advance(30)
    assert verifier.verify(token).user_id == "u-1"


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[]", b'{"keys": "none"}'])
def test_an_answer_that_is_not_a_jwks_is_treated_as_an_outage(
    jwks_server: JwksServer, rsa_keys: Keys, body: bytes
) -> None:
    clock = Clock()
    verifier = verifier_with(jwks_server, clock)
    token = rs256(rsa_keys["a"], "key-a")
    verifier.verify(token)

    jwks_server.body = body
    clock.advance(301)

    assert verifier.verify(token).user_id == "u-1"  # the last good set is kept


def test_an_empty_set_revokes_every_key(jwks_server: JwksServer, rsa_keys: Keys) -> None:
    clock = Clock()
    verifier = verifier_with(jwks_server, clock)
    token = rs256(rsa_keys["a"], "key-a")
    verifier.verify(token)

    jwks_server.publish()
    clock.advance(301)

    with pytest.raises(InvalidToken, match="signing key is unknown"):
        verifier.verify(token)


@pytest.mark.parametrize("kid", [None, "", 7, ["key-a"], {"k": 1}])
def test_a_token_without_a_usable_kid_is_refused_without_a_fetch(
    jwks_server: JwksServer, rsa_keys: Keys, kid: object
) -> None:
    clock = Clock()
    verifier = verifier_with(jwks_server, clock)
    header = {"alg": "RS256", "typ": "JWT"} if kid is None else {"alg": "RS256", "typ": "JWT", "kid": kid}
    # PyJWT will not sign such a header: the header segment of a signed token is swapped for it
    _, payload, signature = rs256(rsa_keys["a"], "key-a").split(".")
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    token = f"{encoded}.{payload}.{signature}"

    with pytest.raises(InvalidToken):
        verifier.verify(token)
    assert jwks_server.requests == 0
