"""Typed settings, parsed once per process from `VT_*` environment variables.

Every field has a default that works for the local run and the tests; the template sets the
production values. Secrets have two forms: the value itself (local runs, tests) or the name of an
SSM parameter holding it (`*_PARAM`, resolved through Powertools Parameters in AWS).

The environment is read here, as pydantic-settings would read it (`VT_` and the field's name, in
any case; JSON for dicts and lists, unless a field takes its text as it is), without importing
pydantic-settings and its sources (YAML, TOML, dotenv, cloud secret stores: about 90 ms of
every cold start).
"""

from __future__ import annotations

import json
import os
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from community_tracker.factories import cached_factory
from community_tracker.timeutil import is_time_zone

ENV_PREFIX = "VT_"


class AsText:
    """Marks a field whose environment value is passed as it is (not JSON), for its validator."""


class Settings(BaseModel):
    """The settings: the values given, else `VT_<FIELD>` from the environment, else the default."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**_from_environment(), **values})

    # Redis: one node (`redis://`, `rediss://` for TLS) or a cluster entry point.
    redis_url: str = "redis://localhost:6379/0"
    redis_cluster: bool = False
    redis_socket_timeout_seconds: float = 1.0
    # Redis AUTH: a Secrets Manager secret (name or ARN) or an SSM SecureString (a `/path` or its
    # ARN) holding the auth token, or JSON with "password" (or "token") and optionally "username".
    redis_auth_secret: str | None = None

    # DynamoDB single table; `use_localstack` sends AWS calls to the endpoint that
    # localstack-client derives from AWS_ENDPOINT_URL / LOCALSTACK_HOST (moto_server locally).
    table_name: str = "community-visits"
    use_localstack: bool = False
    aws_region: str = "us-east-1"

    # Presence rules (README, "Presence").
    active_window_seconds: int = Field(default=300, ge=10)
    # "Present now": a connection heard within this (two heartbeat intervals and some slack).
    presence_seconds: int = Field(default=65, ge=5)
    # A connection's leave takes effect after this, so the next page of the same visit cancels it.
    leave_grace_seconds: int = Field(default=15, ge=0)
    dedup_seconds: int = Field(default=600, ge=1)
    # Beacons per minute per client address (IPv6 by /64) per community: high enough for a
    # shared NAT of real viewers; one abusive client is held by the per-connection limit and by
    # the cap on new anonymous people it may create. 0 turns a limit off.
    rate_limit_per_minute: int = Field(default=3000, ge=0)
    connection_rate_limit_per_minute: int = Field(default=120, ge=0)
    anonymous_people_per_client: int = Field(default=1000, ge=0)
    index_refresh_seconds: int = Field(default=60, ge=1)
    index_shards: int = Field(default=16, ge=1, le=1024)
    community_cache_seconds: float = Field(default=60.0, ge=0)
    # The time zone of a community registered without one (IANA name): its days, weeks and months.
    default_time_zone: str = "UTC"
    visit_retention_days: int = Field(default=0, ge=0)  # 0 keeps visit events forever

    # Identity (README, "Identity"). HS256 with a shared secret unless a JWKS URL is set (then RS256).
    jwt_secret: str = "dev-only-secret-change-me-0123456789"  # noqa: S105 (local default, documented)
    jwt_secret_param: str | None = None
    jwks_url: str | None = None
    jwks_cache_seconds: float = Field(default=300, gt=0)  # a key removed from the JWKS is refused within this
    jwks_refresh_interval_seconds: float = Field(default=30, ge=0)  # at most one fetch per this for unknown kids
    jwks_stale_seconds: float = Field(default=3600, ge=0)  # JWKS down: the last good set is kept this long past its age
    jwt_max_lifetime_seconds: int = Field(default=86_400, ge=60)  # exp - iat (or exp - now without iat)
    jwt_issuer: str = "https://auth.community.local"
    jwt_audience: str = "community-visitor-tracker"
    division_claim: str = "division_id"
    roles_claim: str = "roles"
    admin_role: str = "admin"
    hash_key: str = "dev-only-hash-key-change-me-0123456789"
    hash_key_param: str | None = None
    # Secrets from SSM (`*_PARAM`) are re-read after this many seconds, so a rotation is picked up.
    secret_max_age_seconds: int = Field(default=300, ge=1)
    # CloudFront viewer-location headers are only trustworthy behind CloudFront, which overwrites
    # them; directly exposed, any client could set them, so they are ignored unless this is on.
    trust_location_headers: bool = False
    location_divisions: dict[str, str] = Field(default_factory=dict)  # "CA-QC" -> "quebec-city"

    # Live context (README, "Live context"): distinct values kept per dimension (a new value beyond
    # is counted as "(other)"), and how many of the largest the summary and the live push show.
    context_values: int = Field(default=500, ge=1, le=10_000)
    context_top: int = Field(default=10, ge=1, le=100)

    # HTTP surface.
    cors_origins: Annotated[list[str], AsText()] = Field(
        default_factory=lambda: ["http://localhost:3000", "http://127.0.0.1:3000"]
    )
    max_body_bytes: int = Field(default=4096, ge=256)
    public_counts: bool = False

    # Live push: the management endpoint of the WebSocket API stage (https://<api>.execute-api.<region>.amazonaws.com/<stage>).
    websocket_endpoint: str | None = None
    # One pusher at a time: its lease, renewed at every (1 s) tick; a pusher that died holding it
    # blocks the next one for at most this long.
    live_lease_ms: int = Field(default=5000, ge=2000)
    # Posts in flight at once to the management API (each on a keep-alive connection of its own),
    # and how long one may take before it counts as failed (tried again at the next tick). At 30 ms
    # a post, 512 in flight take 5,000 posts in about 0.3 s of waiting (benchmarks/fanout.py).
    live_post_concurrency: int = Field(default=512, ge=1, le=1000)
    live_post_timeout_seconds: float = Field(default=1.0, gt=0)

    # Cleanup.
    cleanup_batch_size: int = Field(default=200, ge=1)
    cleanup_margin_ms: int = Field(default=3000, ge=0)
    # Cleanup saves a community's open peaks and unique-visitor sketches to DynamoDB at most this
    # often, when they changed: what a Redis restart can lose. 0 turns checkpoints off.
    checkpoint_seconds: int = Field(default=300, ge=0)

    # Alerts (README, "Spike and drop alerts"): the EventBridge bus they are put on, and how long
    # the alert history keeps them (DynamoDB TTL).
    event_bus_name: str = "default"
    alert_history_days: int = Field(default=90, ge=1)

    # Sharing (README, "Sharing without opening the API"): the badge shows counts below this as
    # "fewer than N" (0: exact counts); share links are signed with this key (or the SSM parameter).
    badge_min_count: int = Field(default=5, ge=0)
    share_key: str = "dev-only-share-key-change-me-0123456789"
    share_key_param: str | None = None

    @field_validator("default_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not is_time_zone(value):
            raise ValueError(f"VT_DEFAULT_TIME_ZONE: not an IANA time zone: {value!r}")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value


def _from_environment() -> dict[str, Any]:
    """The `VT_*` variables that name a field (names in any case), decoded for it."""
    fields = Settings.model_fields
    values: dict[str, Any] = {}
    for name, raw in os.environ.items():
        if len(name) <= len(ENV_PREFIX) or name[: len(ENV_PREFIX)].upper() != ENV_PREFIX:
            continue
        field_name = name[len(ENV_PREFIX) :].lower()
        field = fields.get(field_name)
        if field is None:
            continue
        decode = typing.get_origin(field.annotation) in (dict, list) and not any(
            isinstance(marker, AsText) for marker in field.metadata
        )
        try:
            values[field_name] = json.loads(raw) if decode else raw
        except ValueError as error:
            raise ValueError(f"{name} is not valid JSON") from error
    return values


@cached_factory
def get_settings() -> Settings:
    """The process's settings; tests clear this cache after changing the environment."""
    return Settings()
