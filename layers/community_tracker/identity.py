"""Who is visiting (README, "Identity"): verified tokens for users, keyed hashes for anonymous browsers.

A user id only ever comes from a verified token. Anonymous visitors are known by an HMAC of their
browser id (or, without one, of the day, their IP and User-Agent), so a raw session or client id is
never stored, logged or returned.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from community_tracker.aws.secrets import secret
from community_tracker.errors import IdentityProviderUnavailable, InvalidToken
from community_tracker.factories import cached_factory
from community_tracker.models import (
    DIVISION_ID_PATTERN,
    USER_ID_PATTERN,
    VisitorIdentity,
    anonymous_visitor_key,
    authenticated_visitor_key,
)
from community_tracker.settings import Settings, get_settings
from community_tracker.timeutil import bucket

_DIVISION = re.compile(DIVISION_ID_PATTERN)
_USER_ID = re.compile(USER_ID_PATTERN)
_LEEWAY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller."""

    user_id: str
    division_id: str | None
    roles: frozenset[str]
    is_admin: bool


_REFUSALS: list[tuple[type[jwt.InvalidTokenError], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.InvalidAudienceError, "the token's audience is not accepted"),
    (jwt.InvalidIssuerError, "the token's issuer is not accepted"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.DecodeError, "the token is malformed"),
]


class TokenVerifier:
    """Checks signature, algorithm, issuer, audience and expiry with PyJWT.

    Only one algorithm is ever accepted: HS256 with the shared secret, or RS256 with keys from the
    JWKS URL. A token claiming anything else (`none`, or HS256 signed with the RSA public key) is
    refused before its signature is even looked at.
    """

    def __init__(
        self,
        *,
        secret: str | None,
        jwks_url: str | None,
        issuer: str,
        audience: str,
        division_claim: str = "division_id",
        roles_claim: str = "roles",
        admin_role: str = "admin",
    ) -> None:
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self._secret = secret
        self._algorithms = ["RS256"] if jwks_url else ["HS256"]
        self._issuer = issuer
        self._audience = audience
        self._division_claim = division_claim
        self._roles_claim = roles_claim
        self._admin_role = admin_role

    def _key(self, token: str) -> Any:
        if self._jwks is None:
            return self._secret
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as error:
            raise IdentityProviderUnavailable("the identity provider's keys cannot be fetched") from error
        except (jwt.PyJWKClientError, jwt.DecodeError) as error:
            raise InvalidToken("the token's signing key is unknown") from error

    def verify(self, token: str) -> Principal:
        try:
            # Checked before anything else so a forged header never triggers a JWKS fetch.
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self._algorithms:
                raise InvalidToken("the token's algorithm is not accepted")
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as error:
            raise InvalidToken(_refusal(error)) from error
        user_id = claims["sub"]
        if not isinstance(user_id, str) or not _USER_ID.match(user_id):
            raise InvalidToken("the token's subject is not a valid user id")
        roles = _roles(claims.get(self._roles_claim))
        return Principal(
            user_id=user_id,
            division_id=valid_division(claims.get(self._division_claim)),
            roles=roles,
            is_admin=self._admin_role in roles,
        )


def _refusal(error: jwt.InvalidTokenError) -> str:
    for kind, message in _REFUSALS:
        if isinstance(error, kind):
            return message
    return "the token is not valid"


def _roles(claim: object) -> frozenset[str]:
    if isinstance(claim, str):
        return frozenset(claim.split())
    if isinstance(claim, list):
        return frozenset(role for role in claim if isinstance(role, str))
    return frozenset()


def valid_division(value: object) -> str | None:
    """A division id fit for keys and counts, or None (unknown) for anything else."""
    return value if isinstance(value, str) and _DIVISION.match(value) else None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer` header (header names are lower-case in API v2)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class VisitorHasher:
    """Keyed hashes (HMAC-SHA256, truncated to 128 bits) of anything that could identify a client."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def _digest(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def browser_key(self, visitor_id: str) -> str:
        """The person key of a browser's random id (the beacon script keeps it in localStorage,
        shared by every tab of the platform's origin)."""
        return anonymous_visitor_key(self._digest("browser", visitor_id))

    def cookieless_key(self, now_ms: int, source_ip: str, user_agent: str) -> str:
        """Without a browser id: the day in the message is the daily-rotating salt, so the same
        client gets a new, unlinkable key every UTC day."""
        day = bucket("day", now_ms).id
        return anonymous_visitor_key(self._digest("cookieless", day, client_network(source_ip), user_agent))

    def connection_key(self, connection_id: str) -> str:
        """The connection key of a tab's random id (sessionStorage: one per tab)."""
        return f"c:{self._digest('connection', connection_id)}"

    def client_key(self, source_ip: str) -> str:
        """The rate-limit key of a client: its address, an IPv6 one by its /64 (one subscriber's
        network, whose addresses a client may rotate at will)."""
        return self._digest("client", client_network(source_ip))[:16]


def location_division(headers: Mapping[str, str], settings: Settings) -> str | None:
    """An anonymous visitor's division from CloudFront's viewer-location headers, when trusted."""
    if not settings.trust_location_headers:
        return None
    country = headers.get("cloudfront-viewer-country", "")
    region = headers.get("cloudfront-viewer-country-region", "")
    for place in (f"{country}-{region}", country):
        division = settings.location_divisions.get(place)
        if division is not None:
            return valid_division(division)
    return None


def client_network(source_ip: str) -> str:
    """The address a client is known by: IPv4 as it is, IPv6 by its /64."""
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return source_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class BeaconIdentity:
    """Who a beacon is from (the person) and which of their connections (tabs) sent it.

    Without a tab id the connection is the browser's one connection (`c:<anonymous key>`).
    `alt_key`: the same cookieless person's key of the day before, during the first window of a
    day.
    """

    visitor: VisitorIdentity
    connection_key: str
    alt_key: str | None = None
    merges_anonymous: bool = False  # a logged-in beacon from a browser that was anonymous


def beacon_identity(
    *,
    principal: Principal | None,
    visitor_id: str | None,
    connection_id: str | None,
    source_ip: str,
    user_agent: str,
    location: str | None,
    hasher: VisitorHasher,
    now_ms: int,
    window_ms: int,
) -> BeaconIdentity:
    """Who a beacon is from: the verified user, else the hashed browser, else (no browser id)
    the hashed client of the day.

    The connection is the tab (its id), else the browser's one connection: so the anonymous
    person of a browser and the user it logs in as share it (the login merge). A user's beacon
    with neither id is the user's own connection: a client address and User-Agent are shared by
    many people behind one NAT, and must never merge two users.
    """
    if visitor_id:
        anonymous_key, alt_key = hasher.browser_key(visitor_id), None
    else:
        anonymous_key = hasher.cookieless_key(now_ms, source_ip, user_agent)
        day_start = bucket("day", now_ms).start_ms
        recent_midnight = now_ms - day_start < window_ms
        alt_key = hasher.cookieless_key(day_start - 1, source_ip, user_agent) if recent_midnight else None
    if connection_id:
        connection_key = hasher.connection_key(connection_id)
    elif principal is not None and not visitor_id:
        connection_key = f"c:{authenticated_visitor_key(principal.user_id)}"
    else:
        connection_key = f"c:{anonymous_key}"
    if principal is None:
        return BeaconIdentity(
            visitor=VisitorIdentity(key=anonymous_key, user_id=None, division_id=location, is_authenticated=False),
            connection_key=connection_key,
            alt_key=alt_key,
        )
    return BeaconIdentity(
        visitor=VisitorIdentity(
            key=authenticated_visitor_key(principal.user_id),
            user_id=principal.user_id,
            division_id=principal.division_id,
            is_authenticated=True,
        ),
        connection_key=connection_key,
        merges_anonymous=visitor_id is not None or connection_id is not None,
    )


@cached_factory
def get_token_verifier() -> TokenVerifier:
    settings = get_settings()
    return TokenVerifier(
        secret=None if settings.jwks_url else secret(settings.jwt_secret, settings.jwt_secret_param),
        jwks_url=settings.jwks_url,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        division_claim=settings.division_claim,
        roles_claim=settings.roles_claim,
        admin_role=settings.admin_role,
    )


@cached_factory
def get_visitor_hasher() -> VisitorHasher:
    settings = get_settings()
    return VisitorHasher(secret(settings.hash_key, settings.hash_key_param))
