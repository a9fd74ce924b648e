"""Fixtures shared by every test: real Redis servers (one node and a 3-master cluster)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from redis import Redis
from redis.cluster import RedisCluster

from community_tracker.aws.stores import get_stores
from community_tracker.factories import reset_factories
from community_tracker.models import Community
from community_tracker.redis.cleanup_index import CleanupIndex
from community_tracker.redis.live_state import VisitorTracker, get_tracker, tracker_for
from community_tracker.redis.scripts import RedisClient
from infra.redis_servers import RedisClusterProcesses, RedisProcess, start_cluster, start_redis
from infra.tables import create_visits_table


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of the test's own: for tests that kill it, or need an empty index."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


def connect(request: pytest.FixtureRequest, kind: str) -> RedisClient:
    if kind == "cluster":
        cluster: RedisClusterProcesses = request.getfixturevalue("redis_cluster")
        return RedisCluster.from_url(cluster.url, decode_responses=True)
    server: RedisProcess = request.getfixturevalue("redis_server")
    return Redis.from_url(server.url, decode_responses=True)


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def redis_client(request: pytest.FixtureRequest) -> Iterator[RedisClient]:
    """A client of a real Redis: once on a single node, once on the 3-master cluster."""
    client = connect(request, request.param)
    yield client
    client.close()


@pytest.fixture
def tracker(redis_client: RedisClient) -> VisitorTracker:
    return tracker_for(redis_client, window_seconds=300, dedup_seconds=600)


@pytest.fixture
def cleanup_index(redis_client: RedisClient) -> CleanupIndex:
    return CleanupIndex(redis_client, window_seconds=300)


@pytest.fixture
def community(function_env: None) -> Community:
    """A registered community of the "quebec" division, fresh for each test: in the directory and
    installed in Redis, as the admin route registers one."""
    registered = Community(
        community_id=f"qc-{uuid.uuid4().hex[:10]}", slug="quebec-city", name="Quebec City", division_id="quebec"
    )
    get_stores().communities.put(registered)
    get_tracker().install_community(registered, 0)
    return registered


@pytest.fixture
def community_id() -> str:
    """A fresh community per test, so tests never see each other's keys."""
    return f"c-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are parsed once per process; each test starts from its own environment."""
    reset_factories()
    yield
    reset_factories()


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so nothing can reach a real AWS account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def moto_table(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The visits table, created in moto from template.yaml's own definition."""
    table_name = "visits-test"
    monkeypatch.setenv("VT_TABLE_NAME", table_name)
    with mock_aws():
        reset_factories()
        create_visits_table(boto3.client("dynamodb", region_name="us-east-1"), table_name)
        yield table_name
    reset_factories()


@pytest.fixture
def function_env(moto_table: str, redis_server: RedisProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What the template gives a function, pointed at moto and the test Redis."""
    monkeypatch.setenv("VT_REDIS_URL", redis_server.url)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "test")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    reset_factories()
    yield
    reset_factories()
