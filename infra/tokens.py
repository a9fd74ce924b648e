"""Development tokens (HS256 with the local secret), for the local run, the tests and curl."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt

from community_tracker.settings import Settings


def mint_token(
    settings: Settings,
    user_id: str,
    *,
    division_id: str | None = None,
    roles: Iterable[str] = (),
    ttl_seconds: int = 3600,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": user_id,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
        settings.roles_claim: list(roles),
    }
    if division_id is not None:
        payload[settings.division_claim] = division_id
    payload.update(claims)
    return jwt.encode(payload, settings.jwt_secret, algorithm="HS256")
