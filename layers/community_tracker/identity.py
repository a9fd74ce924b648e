"""Who is visiting (README, "Identity"): verified tokens for users, keyed hashes for anonymous browsers.

A user id only ever comes from a verified token. Anonymous visitors are known by an HMAC of their
browser id (or, without one, of the day, their IP and User-Agent), so a raw session or client id is
never stored, logged or returned.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import jwt

from community_tracker.aws.secrets import rotating_secret
from community_tracker.errors import InvalidToken
from community_tracker.factories import cached_factory
from community_tracker.jwks import JwksKeys
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
LEEWAY_SECONDS = 30
# The current values of a secret, current first, then the previous one during a rotation; read on
# each use (the source keeps them for their max age), so a rotation needs no restart.
SecretValues = Callable[[], Sequence[str]]
DEFAULT_MAX_LIFETIME_SECONDS = 86_400
# `Authorization: Bearer <jwt>`: three base64url segments (an empty signature is an unsigned token,
# which is then refused for its algorithm). Anything else in the header is refused, never ignored.
_BEARER = re.compile(r"bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller."""

    user_id: str
    division_id: str | None
    roles: frozenset[str]
    is_admin: bool


_REFUSALS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.InvalidAudienceError, "the token's audience is not accepted"),
    (jwt.InvalidIssuerError, "the token's issuer is not accepted"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.DecodeError, "the token is malformed"),
    (jwt.exceptions.InvalidSubjectError, "the token's subject is not a valid user id"),
]


class TokenVerifier:
    """Checks signature, algorithm, issuer, audience, times and subject.

    Only one algorithm is ever accepted: HS256 with the shared secret(s), or RS256 with keys from
    the JWKS. A token claiming anything else (`none`, or HS256 signed with the RSA public key) is
    refused before its signature is even looked at. During a secret rotation every current
    secret verifies (current first, then the previous one), so no valid user is refused.

    Times are checked here rather than by PyJWT, which would read `"exp": "4102444800"` as a
    number: `exp`, `nbf` and `iat` must be JSON numbers, and a token may not live longer than
    `max_lifetime_seconds` (`exp - iat`, or `exp - now` without `iat`).
    """

    def __init__(
        self,
        *,
        secrets: SecretValues | None = None,
        jwks: JwksKeys | None = None,
        issuer: str,
        audience: str,
        max_lifetime_seconds: float = DEFAULT_MAX_LIFETIME_SECONDS,
        division_claim: str = "division_id",
        roles_claim: str = "roles",
        admin_role: str = "admin",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (secrets is None) == (jwks is None):
            raise ValueError("a verifier takes either HS256 secrets or a JWKS")
        self._secrets = secrets
        self._jwks = jwks
        self._algorithms = ["RS256"] if jwks is not None else ["HS256"]
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime_seconds
        self._division_claim = division_claim
        self._roles_claim = roles_claim
        self._admin_role = admin_role
        self._clock = clock

    def _decode(self, token: str, header: Mapping[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            "require": ["exp", "iss", "aud", "sub"],
            "verify_exp": False,  # checked in `_check_times`, strictly
            "verify_nbf": False,
            "verify_iat": False,
        }
        if self._jwks is not None:
            keys: Sequence[Any] = [self._jwks.signing_key(header.get("kid"))]
        else:
            assert self._secrets is not None
            keys = self._secrets()
        for index, key in enumerate(keys):
            try:
                return jwt.decode(
                    token,
                    key,
                    algorithms=self._algorithms,
                    audience=self._audience,
                    issuer=self._issuer,
                    options=options,  # type: ignore[arg-type]
                )
            except jwt.InvalidSignatureError:
                if index == len(keys) - 1:
                    raise
        raise jwt.InvalidSignatureError("no key to verify with")

    def verify(self, token: str) -> Principal:
        try:
            # Checked before anything else so a forged header never triggers a JWKS fetch.
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self._algorithms:
                raise InvalidToken("the token's algorithm is not accepted")
            claims = self._decode(token, header)
        except jwt.PyJWTError as error:
            raise InvalidToken(_refusal(error)) from error
        self._check_times(claims)
        user_id = claims["sub"]
        if not valid_user_id(user_id):
            raise InvalidToken("the token's subject is not a valid user id")
        roles = _roles(claims.get(self._roles_claim))
        return Principal(
            user_id=user_id,
            division_id=valid_division(claims.get(self._division_claim)),
            roles=roles,
            is_admin=self._admin_role in roles,
        )

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        expires = _numeric_date(claims, "exp")
        not_before = _numeric_date(claims, "nbf")
        issued = _numeric_date(claims, "iat")
        assert expires is not None  # required above
        if expires <= now - LEEWAY_SECONDS:
            raise InvalidToken("the token has expired")
        if not_before is not None and not_before > now + LEEWAY_SECONDS:
            raise InvalidToken("the token is not valid yet")
        if issued is not None and issued > now + LEEWAY_SECONDS:
            raise InvalidToken("the token is issued in the future")
        if expires - (issued if issued is not None else now) > self._max_lifetime:
            raise InvalidToken(f"the token lives longer than {self._max_lifetime:g} seconds")


def _numeric_date(claims: Mapping[str, Any], name: str) -> int | float | None:
    """A JSON number (RFC 7519 NumericDate), or None when absent; anything else is refused."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"the token's `{name}` is not a number")
    number: int | float = value
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidToken(f"the token's `{name}` is not a finite number")
    return number


def valid_user_id(value: object) -> TypeGuard[str]:
    """A token's `sub` fit to be a user id: the whole string matches (a trailing newline does not),
    and it is text that can be encoded (no lone surrogates)."""
    if not isinstance(value, str) or not _USER_ID.fullmatch(value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refusal(error: jwt.PyJWTError) -> str:
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
    return value if isinstance(value, str) and _DIVISION.fullmatch(value) else None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer <jwt>` header (header names are lower-case in API v2).

    No header (or an empty one): None, the caller is anonymous. Any other scheme, a bare token, an
    empty `Bearer ` or something that is not a JWT: `InvalidToken` (401), never anonymous."""
    value = headers.get("authorization")
    if not value:
        return None
    match = _BEARER.fullmatch(value.strip())
    if match is None:
        scheme = value.strip().partition(" ")[0].lower()
        if scheme != "bearer":
            raise InvalidToken("the Authorization header must be `Bearer <token>`")
        raise InvalidToken("the Authorization header carries no bearer token (a JWT)")
    return match.group(1)


def request_token(headers: Mapping[str, str], body_token: str | None) -> str | None:
    """The one token of a request: the `Authorization` header's, or (sendBeacon) the body's.

    Both present and different: `InvalidToken`, since the request cannot say who it is from.
    An empty body token is no token (the beacon script sends what the page gives it)."""
    header_token = bearer_token(headers)
    if header_token is not None and body_token and body_token != header_token:
        raise InvalidToken("the Authorization header and the body carry different tokens")
    return header_token or body_token or None


def fixed_secret(*values: str) -> SecretValues:
    """Secret values that never change (the local run and the tests)."""
    return lambda: values


class VisitorHasher:
    """Keyed hashes (HMAC-SHA256, truncated to 128 bits) of anything that could identify a client.

    The hash key rotates (README, "Identity"): `keys` gives the current key first, then the
    previous one while a rotation is under way. Every `*_key` method hashes with the current key;
    each `*_keys` method gives the candidates, current first, so the presence model can find a
    visitor still listed under the previous key's value and move it to the current one instead of
    counting one person twice. The rate-limit `client_key` uses only the current key: a rotation
    at worst restarts a client's count for the minute.
    """

    def __init__(self, key: str | SecretValues) -> None:
        self._keys: SecretValues = fixed_secret(key) if isinstance(key, str) else key
        self._encoded: tuple[tuple[str, ...], tuple[bytes, ...]] = ((), ())

    def _current_keys(self) -> tuple[bytes, ...]:
        keys = tuple(self._keys())
        if keys != self._encoded[0]:
            self._encoded = (keys, tuple(key.encode() for key in keys))
        return self._encoded[1]

    @staticmethod
    def _digest(key: bytes, *parts: str) -> str:
        message = "\x1f".join(parts).encode()
        # The one-shot C HMAC: the same digest as `hmac.new(...).hexdigest()` without an object.
        return hmac.digest(key, message, "sha256").hex()[:32]

    def _candidates(self, *parts: str) -> list[str]:
        return [self._digest(key, *parts) for key in self._current_keys()]

    def browser_key(self, visitor_id: str) -> str:
        """The person key of a browser's random id (the beacon script keeps it in localStorage,
        shared by every tab of the platform's origin), with the current hash key."""
        return self.browser_keys(visitor_id)[0]

    def browser_keys(self, visitor_id: str) -> list[str]:
        """`browser_key` under each current hash key: current first, then the previous one."""
        return [anonymous_visitor_key(digest) for digest in self._candidates("browser", visitor_id)]

    def cookieless_key(self, now_ms: int, source_ip: str, user_agent: str) -> str:
        """Without a browser id: the day in the message is the daily-rotating salt, so the same
        client gets a new, unlinkable key every UTC day."""
        return self.cookieless_keys(now_ms, source_ip, user_agent)[0]

    def cookieless_keys(self, now_ms: int, source_ip: str, user_agent: str) -> list[str]:
        """`cookieless_key` under each current hash key: current first, then the previous one."""
        day = bucket("day", now_ms).id
        network = client_network(source_ip)
        return [anonymous_visitor_key(d) for d in self._candidates("cookieless", day, network, user_agent)]

    def connection_key(self, connection_id: str) -> str:
        """The connection key of a tab's random id (sessionStorage: one per tab), current hash key."""
        return f"c:{self._digest(self._current_keys()[0], 'connection', connection_id)}"

    def client_key(self, source_ip: str) -> str:
        """The rate-limit key of a client: its address, an IPv6 one by its /64 (one subscriber's
        network, whose addresses a client may rotate at will); current hash key only."""
        return self._digest(self._current_keys()[0], "client", client_network(source_ip))[:16]


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
    if ":" not in source_ip:
        return source_ip  # IPv4 (or not an address): as it is, without parsing it
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
    # The alternative key is the same person under the previous hash key (a rotation), else
    # under yesterday's salt (just past midnight): a person live under it stays that person.
    if visitor_id:
        anonymous_key, *previous = hasher.browser_keys(visitor_id)
    else:
        anonymous_key, *previous = hasher.cookieless_keys(now_ms, source_ip, user_agent)
        day_start = bucket("day", now_ms).start_ms
        if not previous and now_ms - day_start < window_ms:
            previous = [hasher.cookieless_key(day_start - 1, source_ip, user_agent)]
    alt_key = previous[0] if previous else None
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
    """The process's verifier. It is built once, but its keys are not frozen in it: the HS256
    secrets are re-read on their max age, the JWKS on its own (README, "Identity")."""
    settings = get_settings()
    jwks = (
        JwksKeys(
            settings.jwks_url,
            max_age_seconds=settings.jwks_cache_seconds,
            refresh_interval_seconds=settings.jwks_refresh_interval_seconds,
            stale_seconds=settings.jwks_stale_seconds,
        )
        if settings.jwks_url
        else None
    )
    secrets = (
        None
        if jwks is not None
        else rotating_secret(settings.jwt_secret, settings.jwt_secret_param, settings.secret_max_age_seconds)
    )
    return TokenVerifier(
        secrets=secrets,
        jwks=jwks,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        division_claim=settings.division_claim,
        roles_claim=settings.roles_claim,
        admin_role=settings.admin_role,
    )


@cached_factory
def get_visitor_hasher() -> VisitorHasher:
    """The process's hasher; its hash keys are re-read on their max age."""
    settings = get_settings()
    return VisitorHasher(rotating_secret(settings.hash_key, settings.hash_key_param, settings.secret_max_age_seconds))
