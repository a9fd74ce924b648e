"""Integration tests reach a real emulator endpoint (moto_server) through localstack-client,
exactly as the local run does and as a real LocalStack would be reached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from community_tracker.aws.clients import aws_client
from community_tracker.factories import reset_factories
from community_tracker.settings import get_settings
from infra.aws_emulator import EmulatorProcess, start_moto_server
from infra.redis_servers import RedisProcess, free_port
from infra.tables import create_visits_table


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = start_moto_server(f"127.0.0.1:{free_port()}", tmp_path_factory.mktemp("moto") / "moto.log")
    yield process
    process.stop()


@pytest.fixture
def emulated_aws(
    emulator: EmulatorProcess, redis_server: RedisProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """The functions' environment against the emulator; a fresh table per test."""
    table_name = f"visits-{tmp_path.name[-12:].lower().replace('_', '-')}"
    for name, value in {
        "VT_USE_LOCALSTACK": "true",
        "LOCALSTACK_HOST": emulator.host,
        "VT_TABLE_NAME": table_name,
        "VT_REDIS_URL": redis_server.url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "integration",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    reset_factories()
    create_visits_table(aws_client("dynamodb"), get_settings().table_name)
    yield table_name
    reset_factories()
