"""Identity: tokens (HS256 secret, RS256 through a real JWKS endpoint) and keyed hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from community_tracker.errors import IdentityProviderUnavailable, InvalidToken
from community_tracker.identity import (
    BeaconIdentity,
    Principal,
    TokenVerifier,
    VisitorHasher,
    beacon_identity,
    bearer_token,
    fixed_secret,
    location_division,
    request_token,
)
from community_tracker.jwks import JwksKeys
from community_tracker.settings import Settings
from infra.redis_servers import free_port
from tests.builders import T0

ISSUER = "https://issuer.test"
AUDIENCE = "tracker-test"
SECRET = "a-test-secret-that-is-long-enough-0123"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "u-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **overrides}


def hs256_verifier(**kwargs: Any) -> TokenVerifier:
    return TokenVerifier(secrets=fixed_secret(SECRET), issuer=ISSUER, audience=AUDIENCE, **kwargs)


def test_hs256_token_gives_user_division_and_roles() -> None:
    token = jwt.encode(claims(division_id="laval", roles=["member", "admin"]), SECRET, algorithm="HS256")

    principal = hs256_verifier().verify(token)

    assert (principal.user_id, principal.division_id, principal.is_admin) == ("u-1", "laval", True)


def test_claim_names_and_admin_role_are_configurable() -> None:
    token = jwt.encode(claims(home="montreal", groups="staff ops"), SECRET, algorithm="HS256")

    principal = hs256_verifier(division_claim="home", roles_claim="groups", admin_role="ops").verify(token)

    assert principal.division_id == "montreal"
    assert principal.roles == frozenset({"staff", "ops"})
    assert principal.is_admin


def test_a_division_claim_unfit_for_keys_is_unknown() -> None:
    token = jwt.encode(claims(division_id="mont|real{x}"), SECRET, algorithm="HS256")

    assert hs256_verifier().verify(token).division_id is None


@pytest.mark.parametrize(
    ("token_claims", "message"),
    [
        (claims(exp=int(time.time()) - 120), "expired"),
        (claims(aud="other"), "audience"),
        (claims(iss="https://other"), "issuer"),
        ({k: v for k, v in claims().items() if k != "exp"}, "required claim"),
        (claims(sub=""), "subject"),
        (claims(sub="x" * 200), "subject"),
    ],
)
def test_refusals_say_why(token_claims: dict[str, Any], message: str) -> None:
    token = jwt.encode(token_claims, SECRET, algorithm="HS256")

    with pytest.raises(InvalidToken, match=message):
        hs256_verifier().verify(token)


def test_bearer_header_parsing() -> None:
    assert bearer_token({"authorization": "Bearer abc.def.ghi"}) == "abc.def.ghi"
    assert bearer_token({"authorization": "bearer   abc.d-f.g_i "}) == "abc.d-f.g_i"
    assert bearer_token({"authorization": ""}) is None
    assert bearer_token({}) is None


@pytest.mark.parametrize(
    "value",
    [
        "Basic dXNlcjpwdw==",
        "Token abc.def.ghi",
        "abc.def.ghi",  # a bare token
        "Bearer ",
        "Bearer",
        "   ",
        "Bearer abc",  # not a JWT
        "Bearer abc.def.ghi extra",
        "Bearer abc.def.ghi.jkl",
        "Bearer\tabc.def.ghi",
        "Bearer abc.d+f.ghi",  # not base64url
    ],
)
def test_a_malformed_authorization_header_is_refused_never_ignored(value: str) -> None:
    with pytest.raises(InvalidToken, match="Authorization"):
        bearer_token({"authorization": value})


def test_header_and_body_tokens_must_agree() -> None:
    header = {"authorization": "Bearer abc.def.ghi"}

    assert request_token(header, None) == request_token(header, "") == "abc.def.ghi"
    assert request_token(header, "abc.def.ghi") == "abc.def.ghi"
    assert request_token({}, "abc.def.ghi") == "abc.def.ghi"
    assert request_token({}, "") is None
    with pytest.raises(InvalidToken, match="different tokens"):
        request_token(header, "xyz.def.ghi")


# -- RS256 through a JWKS endpoint -------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A real HTTP JWKS endpoint on loopback, as an identity provider would serve it."""
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "key-1", "use": "sig", "alg": "RS256"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def rs256_verifier(url: str) -> TokenVerifier:
    return TokenVerifier(jwks=JwksKeys(url), issuer=ISSUER, audience=AUDIENCE)


def test_rs256_token_verified_with_the_jwks(rsa_key: rsa.RSAPrivateKey, jwks_url: str) -> None:
    token = jwt.encode(claims(division_id="quebec"), rsa_key, algorithm="RS256", headers={"kid": "key-1"})

    principal = rs256_verifier(jwks_url).verify(token)

    assert (principal.user_id, principal.division_id) == ("u-1", "quebec")


def test_algorithm_confusion_is_refused(rsa_key: rsa.RSAPrivateKey, jwks_url: str) -> None:
    # An attacker signs HS256 with the *public* key as the HMAC secret, hoping it is used as such
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = _hs256_with_raw_key(claims(), public_pem)

    with pytest.raises(InvalidToken, match="algorithm"):
        rs256_verifier(jwks_url).verify(forged)


def _hs256_with_raw_key(payload: dict[str, Any], key: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses to HMAC-sign with a PEM key, which is the point."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT", "kid": "key-1"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_alg_none_is_refused_with_a_jwks(jwks_url: str) -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]

    with pytest.raises(InvalidToken, match="algorithm"):
        rs256_verifier(jwks_url).verify(unsigned)


def test_unknown_signing_key_is_refused(jwks_url: str) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "key-2"})

    with pytest.raises(InvalidToken, match="signing key"):
        rs256_verifier(jwks_url).verify(token)


def test_unreachable_jwks_is_an_outage_not_a_bad_token(rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "key-1"})

    with pytest.raises(IdentityProviderUnavailable):
        rs256_verifier(f"http://127.0.0.1:{free_port()}/jwks.json").verify(token)


# -- anonymous identities ----------------------------------------------------------------------


def test_hashes_are_keyed_stable_and_not_the_raw_value() -> None:
    hasher = VisitorHasher("key-one")

    key = hasher.browser_key("tab-12345678")

    assert key == hasher.browser_key("tab-12345678")
    assert key != VisitorHasher("key-two").browser_key("tab-12345678")
    assert key.startswith("a:")
    assert "tab-12345678" not in key
    assert len(key) == 2 + 32


def test_cookieless_key_rotates_every_day() -> None:
    hasher = VisitorHasher("key")
    day = 86_400_000

    today = hasher.cookieless_key(T0, "198.51.100.1", "UA")

    assert today == hasher.cookieless_key(T0 + 3_600_000, "198.51.100.1", "UA")
    assert today != hasher.cookieless_key(T0 + day, "198.51.100.1", "UA")
    assert today != hasher.cookieless_key(T0, "198.51.100.2", "UA")


def identify(
    hasher: VisitorHasher,
    *,
    principal: Principal | None = None,
    visitor_id: str | None = None,
    connection_id: str | None = None,
    location: str | None = None,
    now_ms: int = T0,
) -> BeaconIdentity:
    return beacon_identity(
        principal=principal,
        visitor_id=visitor_id,
        connection_id=connection_id,
        source_ip="198.51.100.1",
        user_agent="UA",
        location=location,
        hasher=hasher,
        now_ms=now_ms,
        window_ms=300_000,
    )


def test_login_carries_the_browser_connection_to_merge() -> None:
    hasher = VisitorHasher("key")
    principal = hs256_verifier().verify(jwt.encode(claims(sub="u-9"), SECRET, algorithm="HS256"))

    anonymous = identify(hasher, visitor_id="tab-merge-001")
    identity = identify(hasher, principal=principal, visitor_id="tab-merge-001", location="laval")

    assert identity.visitor.key == "u:u-9"
    assert identity.visitor.division_id is None  # a user's division comes from the token only
    # Without a tab id, the browser's one connection moves from its anonymous person to the user
    assert identity.connection_key == anonymous.connection_key == f"c:{hasher.browser_key('tab-merge-001')}"
    assert identity.merges_anonymous


def test_a_tab_id_is_a_connection_of_the_browser_person() -> None:
    hasher = VisitorHasher("key")

    first = identify(hasher, visitor_id="browser-0001", connection_id="tab-0001")
    second = identify(hasher, visitor_id="browser-0001", connection_id="tab-0002")

    assert first.visitor.key == second.visitor.key == hasher.browser_key("browser-0001")
    assert first.connection_key != second.connection_key
    assert "tab-0001" not in first.connection_key


def test_ipv6_clients_are_known_by_their_64() -> None:
    hasher = VisitorHasher("key")

    assert hasher.client_key("2001:db8:1:2::1") == hasher.client_key("2001:db8:1:2:ffff::9")
    assert hasher.client_key("2001:db8:1:2::1") != hasher.client_key("2001:db8:1:3::1")
    assert hasher.client_key("::ffff:198.51.100.7") == hasher.client_key("198.51.100.7")


def test_a_cookieless_person_keeps_yesterdays_key_just_past_midnight() -> None:
    hasher = VisitorHasher("key")
    midnight = T0 - T0 % 86_400_000 + 86_400_000

    before = identify(hasher, now_ms=midnight - 1)
    after = identify(hasher, now_ms=midnight + 1)
    later = identify(hasher, now_ms=midnight + 400_000)

    assert after.visitor.key != before.visitor.key
    assert after.alt_key == before.visitor.key
    assert later.alt_key is None


def test_location_headers_count_only_when_trusted() -> None:
    headers = {"cloudfront-viewer-country": "CA", "cloudfront-viewer-country-region": "QC"}
    mapping = {"CA-QC": "quebec", "CA": "canada"}

    assert location_division(headers, Settings(location_divisions=mapping)) is None
    trusted = Settings(location_divisions=mapping, trust_location_headers=True)
    assert location_division(headers, trusted) == "quebec"
    assert location_division({"cloudfront-viewer-country": "CA"}, trusted) == "canada"
    assert location_division({"cloudfront-viewer-country": "FR"}, trusted) is None


def test_a_hash_key_rotation_keeps_a_person_under_the_previous_key() -> None:
    # Given a browser known under the old hash key, then a rotation (new key current, old kept)
    before = identify(VisitorHasher("old-key"), visitor_id="browser-0007")
    during = identify(VisitorHasher(fixed_secret("new-key", "old-key")), visitor_id="browser-0007")

    # Then its beacons name the old key as the alternative, which the record script keeps while
    # that person is live (one person, not two)
    assert during.visitor.key != before.visitor.key
    assert during.alt_key == before.visitor.key
