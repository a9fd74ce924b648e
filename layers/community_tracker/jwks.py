"""The identity provider's RS256 signing keys, from its JWKS (README, "Identity").

The whole set is kept for `max_age_seconds` and then fetched again, so a key removed from the set
stops verifying within that time. A token naming a key the set lacks (a key rotated in) refetches
the set, at most once per `refresh_interval_seconds` whatever the tokens say. When the set cannot
be fetched, the last good one is kept for at most `stale_seconds` past its age, and the logs say
so; after that, or with no set ever fetched, RS256 tokens cannot be checked (503).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from community_tracker.errors import IdentityProviderUnavailable, InvalidToken
from community_tracker.observability import logger

JWKS_TIMEOUT_SECONDS = 2.0  # a beacon must answer fast; an identity provider slower than this is down


class _FetchFailed(Exception):
    """The JWKS could not be fetched or was not a JWKS (the cause says why)."""


def _signing_keys(document: Mapping[str, Any]) -> dict[str, Any]:
    """kid → public key of every RSA signing key in a JWKS document; unusable entries are skipped.

    A well-formed set with no usable key is an empty set (every key revoked), not a failure."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise _FetchFailed("the JWKS has no `keys` list")
    keys: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("alg") not in (None, "RS256"):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("use") not in (None, "sig"):
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm="RS256").key
        except jwt.PyJWTError:
            continue
    return keys


class JwksKeys:
    """The current signing keys of one JWKS URL, refreshed on their age and on unknown kids."""

    def __init__(
        self,
        url: str,
        *,
        max_age_seconds: float = 300,
        refresh_interval_seconds: float = 30,
        stale_seconds: float = 3600,
        timeout_seconds: float = JWKS_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # PyJWKClient only for its fetch (http(s) only, no redirects, a timeout): its own caches are
        # off, since its per-kid cache never forgets a key and its set cache has no outage mode.
        self._client = jwt.PyJWKClient(url, cache_keys=False, cache_jwk_set=False, timeout=timeout_seconds)
        self._max_age = max_age_seconds
        self._refresh_interval = refresh_interval_seconds
        self._stale = stale_seconds
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # the last good fetch
        self._attempted_at: float | None = None  # the last fetch, good or not
        self._last_failed = False
        self._lock = threading.Lock()

    def signing_key(self, kid: object) -> Any:
        """The public key for `kid`; `InvalidToken` when the set does not have it."""
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no signing key")
        with self._lock:
            now = self._clock()
            if self._expired(now) and (not self._last_failed or self._may_fetch(now)):
                self._refresh(now)
            if self._fetched_at is None or now - self._fetched_at >= self._max_age + self._stale:
                raise IdentityProviderUnavailable("the identity provider's keys cannot be fetched")
            key = self._keys.get(kid)
            if key is None and self._may_fetch(now):
                self._refresh(now)
                key = self._keys.get(kid)
            if key is None:
                if self._last_failed:
                    raise IdentityProviderUnavailable("the identity provider's keys cannot be fetched")
                raise InvalidToken("the token's signing key is unknown")
            return key

    def _expired(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._max_age

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._refresh_interval

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            keys = self._fetch()
        except _FetchFailed as error:
            self._last_failed = True
            cause = type(error.__cause__ or error).__name__
            if self._fetched_at is not None and now - self._fetched_at < self._max_age + self._stale:
                logger.warning(
                    "JWKS cannot be fetched: keeping the last good key set",
                    extra={
                        "error": cause,
                        "key_set_age_seconds": round(now - self._fetched_at),
                        "kept_for_seconds_more": round(self._fetched_at + self._max_age + self._stale - now),
                    },
                )
            else:
                logger.error("JWKS cannot be fetched and no key set is young enough to keep", extra={"error": cause})
            return
        if self._last_failed:
            logger.info("JWKS fetched again after an outage", extra={"keys": len(keys)})
        self._keys, self._fetched_at, self._last_failed = keys, now, False

    def _fetch(self) -> dict[str, Any]:
        try:
            document = self._client.fetch_data()
        except (jwt.PyJWKClientError, OSError, ValueError) as error:
            raise _FetchFailed("the JWKS cannot be fetched") from error
        return _signing_keys(document)
