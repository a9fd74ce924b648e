"""Redis AUTH from a secret: real redis-servers started with `requirepass` (by this test, stopped by
their pid), the auth token in moto Secrets Manager or SSM, one node and a cluster."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from community_tracker.aws.secrets import is_ssm_parameter
from community_tracker.errors import LiveStateUnavailable
from community_tracker.factories import reset_factories
from community_tracker.redis.client import create_redis_client, get_redis_client
from community_tracker.redis.live_state import tracker_for
from community_tracker.settings import Settings
from infra.processes import stop_process
from infra.redis_servers import free_port, redis_server_binary
from tests.builders import T0, anonymous, visit

TOKEN = "first-auth-token-0123456789abcdef"
SECRET_NAME = "vt-test/redis-auth"


@dataclass
class PasswordRedis:
    port: int
    process: subprocess.Popen[bytes]
    password: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def admin(self) -> Redis:
        return Redis(port=self.port, password=self.password, decode_responses=True)


def start_password_redis(directory: Path, password: str, *, cluster: bool = False) -> PasswordRedis:
    port = free_port(cluster=cluster)
    directory.mkdir(parents=True, exist_ok=True)
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password]
    args += ["--save", "", "--appendonly", "no", "--dir", str(directory), "--daemonize", "no"]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = PasswordRedis(port=port, process=process, password=password)
    deadline = time.monotonic() + 20
    while True:
        try:
            with server.admin() as client:
                client.ping()
            break
        except RedisConnectionError:
            if time.monotonic() > deadline:
                stop_process(process)
                raise
            time.sleep(0.05)
    if cluster:
        with server.admin() as client:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
            while client.cluster("INFO")["cluster_state"] != "ok":
                time.sleep(0.05)
    return server


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[PasswordRedis]:
    server = start_password_redis(tmp_path / "redis-auth", TOKEN)
    yield server
    stop_process(server.process)


@pytest.fixture
def password_cluster(tmp_path: Path) -> Iterator[PasswordRedis]:
    server = start_password_redis(tmp_path / "redis-auth-cluster", TOKEN, cluster=True)
    yield server
    stop_process(server.process)


@pytest.fixture
def secret_stores(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        reset_factories()
        yield
    reset_factories()


def put_secret(value: str, name: str = SECRET_NAME) -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    try:
        client.put_secret_value(SecretId=name, SecretString=value)
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=name, SecretString=value)


def records_a_visit(client: Redis | RedisCluster) -> bool:
    tracker = tracker_for(client)
    return tracker.add_visitor(visit(f"auth-{time.time_ns()}", anonymous("s1")), T0).status == "counted"


def test_without_the_token_the_server_refuses(password_redis: PasswordRedis) -> None:
    """What the secret is for: the server really requires AUTH."""
    client = create_redis_client(Settings(redis_url=password_redis.url))

    with pytest.raises(LiveStateUnavailable):
        tracker_for(client).get_visitor_stats("c-1", T0)


@pytest.mark.parametrize(
    "secret",
    [
        TOKEN,
        json.dumps({"password": TOKEN}),
        json.dumps({"token": TOKEN}),
        json.dumps({"username": "default", "password": TOKEN}),
    ],
)
def test_the_auth_token_comes_from_secrets_manager(
    password_redis: PasswordRedis, secret_stores: None, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    put_secret(secret)
    monkeypatch.setenv("VT_REDIS_URL", password_redis.url)
    monkeypatch.setenv("VT_REDIS_AUTH_SECRET", SECRET_NAME)
    reset_factories()

    assert records_a_visit(get_redis_client())


def test_the_auth_token_can_be_an_ssm_securestring(password_redis: PasswordRedis, secret_stores: None) -> None:
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/vt-test/redis-auth", Value=TOKEN, Type="SecureString"
    )

    client = create_redis_client(Settings(redis_url=password_redis.url, redis_auth_secret="/vt-test/redis-auth"))

    assert records_a_visit(client)


def test_a_user_and_password_reach_an_acl_user(password_redis: PasswordRedis, secret_stores: None) -> None:
    with password_redis.admin() as admin:
        admin.acl_setuser(
            "tracker", enabled=True, passwords=["+tracker-pass-0123456789"], keys=["*"], commands=["+@all"]
        )
    put_secret(json.dumps({"username": "tracker", "password": "tracker-pass-0123456789"}))

    client = create_redis_client(Settings(redis_url=password_redis.url, redis_auth_secret=SECRET_NAME))

    assert records_a_visit(client)
    assert client.acl_whoami() == "tracker"


def test_the_cluster_client_authenticates_too(password_cluster: PasswordRedis, secret_stores: None) -> None:
    put_secret(json.dumps({"password": TOKEN}))

    client = create_redis_client(
        Settings(redis_url=password_cluster.url, redis_cluster=True, redis_auth_secret=SECRET_NAME)
    )

    assert isinstance(client, RedisCluster)
    assert records_a_visit(client)


def test_a_rotated_token_is_used_by_the_next_connection(password_redis: PasswordRedis, secret_stores: None) -> None:
    put_secret(TOKEN)
    client = create_redis_client(
        Settings(redis_url=password_redis.url, redis_auth_secret=SECRET_NAME, secret_max_age_seconds=1)
    )
    assert records_a_visit(client)

    # The token rotates: the server takes the new one, the secret holds it
    rotated = "second-auth-token-0123456789abcdef"
    with password_redis.admin() as admin:
        admin.config_set("requirepass", rotated)
    put_secret(rotated)
    time.sleep(1.1)
    # and the client's connections are dropped (a failover, an idle timeout)
    with Redis(port=password_redis.port, password=rotated) as admin:
        admin.client_kill_filter(_type="normal", skipme=True)

    assert records_a_visit(client)


@pytest.mark.parametrize("secret", ["wrong-token", json.dumps({"user": "x"})])
def test_a_wrong_or_unreadable_token_is_redis_unavailable_not_a_crash(
    password_redis: PasswordRedis, secret_stores: None, secret: str
) -> None:
    put_secret(secret)
    client = create_redis_client(Settings(redis_url=password_redis.url, redis_auth_secret=SECRET_NAME))

    with pytest.raises(LiveStateUnavailable) as raised:
        tracker_for(client).get_visitor_stats("c-1", T0)
    assert isinstance(raised.value.__cause__, AuthenticationError | ResponseError | RedisConnectionError)


def test_a_missing_secret_is_redis_unavailable(password_redis: PasswordRedis, secret_stores: None) -> None:
    client = create_redis_client(Settings(redis_url=password_redis.url, redis_auth_secret="vt-test/no-such-secret"))

    with pytest.raises(LiveStateUnavailable):
        tracker_for(client).get_visitor_stats("c-1", T0)


@pytest.mark.parametrize(
    ("name", "is_ssm"),
    [
        ("/vt/redis-auth", True),
        ("arn:aws:ssm:ca-central-1:123456789012:parameter/vt/redis-auth", True),
        ("arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/vt/redis-auth", True),
        ("vt/redis-auth", False),
        ("arn:aws:secretsmanager:ca-central-1:123456789012:secret:vt/redis-auth-AbCdEf", False),
    ],
)
def test_the_secret_name_says_which_store_holds_it(name: str, is_ssm: bool) -> None:
    assert is_ssm_parameter(name) is is_ssm
