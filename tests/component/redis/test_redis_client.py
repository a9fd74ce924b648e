"""The client factory: a setting picks one node (plain or TLS) or a Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis
from redis.cluster import RedisCluster

from community_tracker.redis.client import create_redis_client
from community_tracker.redis.live_state import tracker_for
from community_tracker.settings import Settings
from infra.redis_servers import RedisClusterProcesses, RedisProcess, start_redis
from tests.builders import T0, anonymous, visit


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = start_redis(tmp_path_factory.mktemp("redis-tls"), tls=True)
    yield server
    server.stop()


def _records_a_visit(client: Redis | RedisCluster) -> bool:
    tracker = tracker_for(client)
    community = f"factory-{T0}"
    return tracker.add_visitor(visit(community, anonymous("s1")), T0).status in {"counted", "duplicate"}


def test_single_node(redis_server: RedisProcess) -> None:
    client = create_redis_client(Settings(redis_url=redis_server.url))

    assert isinstance(client, Redis)
    assert _records_a_visit(client)


def test_tls_single_node(tls_redis: RedisProcess) -> None:
    assert tls_redis.url.startswith("rediss://")

    client = create_redis_client(Settings(redis_url=tls_redis.url))

    assert isinstance(client, Redis)
    assert _records_a_visit(client)


def test_cluster_mode_setting_picks_the_cluster_client(redis_cluster: RedisClusterProcesses) -> None:
    client = create_redis_client(Settings(redis_url=redis_cluster.url, redis_cluster=True))

    assert isinstance(client, RedisCluster)
    assert len(client.get_primaries()) == 3  # type: ignore[no-untyped-call]
    assert _records_a_visit(client)


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VT_REDIS_URL", "rediss://cache.example:6379/0")
    monkeypatch.setenv("VT_REDIS_CLUSTER", "true")
    monkeypatch.setenv("VT_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("VT_LOCATION_DIVISIONS", '{"CA-QC": "quebec"}')

    settings = Settings()

    assert settings.redis_url == "rediss://cache.example:6379/0"
    assert settings.redis_cluster is True
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.location_divisions == {"CA-QC": "quebec"}
    assert Settings.model_fields["active_window_seconds"].default == 300
