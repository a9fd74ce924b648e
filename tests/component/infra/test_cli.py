"""`vt`, the operator's command line: tokens and the bulk import of communities."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jwt
import pytest

from community_tracker.aws.stores import get_stores
from community_tracker.settings import get_settings
from infra import run_state
from infra.cli import find_local_run, main
from infra.redis_servers import free_port
from infra.run_state import LocalRunState


def test_token_prints_a_verifiable_development_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--sub", "alice", "--division", "montreal", "--admin"]) == 0

    settings = get_settings()
    claims = jwt.decode(
        capsys.readouterr().out.strip(),
        settings.jwt_secret,
        algorithms=["HS256"],
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    assert (claims["sub"], claims["division_id"], claims["roles"]) == ("alice", "montreal", ["admin"])


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_import_communities_from_csv_or_json(
    function_env: None, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {
            "community_id": "trois-rivieres",
            "slug": "trois-rivieres",
            "name": "Trois-Rivières",
            "division_id": "mauricie",
        },
        {"community_id": "rimouski", "slug": "rimouski", "name": "Rimouski", "division_id": ""},
    ]
    path = tmp_path / f"communities{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        header = "community_id,slug,name,division_id"
        lines = [header, *(",".join(row[key] for key in header.split(",")) for row in rows)]
        path.write_text("\n".join(lines), encoding="utf-8")

    assert main(["import-communities", str(path)]) == 0

    assert "registered 2 communities" in capsys.readouterr().out
    stored = get_stores().communities.get("trois-rivieres")
    assert stored is not None
    assert (stored.name, stored.division_id) == ("Trois-Rivières", "mauricie")
    rimouski = get_stores().communities.get("rimouski")
    assert rimouski is not None
    assert rimouski.division_id is None


def test_import_refuses_an_invalid_entry_and_names_it(function_env: None, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"community_id": "{bad}", "slug": "s", "name": "n"}]), encoding="utf-8")

    with pytest.raises(SystemExit, match="entry 1 is not a valid community"):
        main(["import-communities", str(path)])
    assert get_stores().communities.get("{bad}") is None


def test_cleanup_says_what_to_set_when_redis_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("VT_REDIS_URL", dead)

    code = main(["cleanup"])

    err = capsys.readouterr().err
    assert code == 1
    assert f"cannot reach Redis at {dead}" in err
    assert "VT_REDIS_URL" in err
    assert "make run" in err
    assert "Traceback" not in err


def test_a_password_in_the_redis_url_is_never_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VT_REDIS_URL", f"redis://user:s3cret-pw@127.0.0.1:{free_port()}/0")

    assert main(["cleanup"]) == 1

    err = capsys.readouterr().err
    assert "s3cret-pw" not in err
    assert "redis://user:***@127.0.0.1:" in err


def local_run_state(port: int, pid: int, redis_url: str = "redis://127.0.0.1:1/0") -> LocalRunState:
    return LocalRunState(
        pid=pid,
        port=port,
        ws_port=port + 1,
        bind_host="127.0.0.1",
        redis_url=redis_url,
        emulator_host="127.0.0.1:4566",
        table_name="community-visits",
        redis_pid=None,
        emulator_pid=None,
    )


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty .run/ of the test's own."""
    monkeypatch.setattr(run_state, "RUN_DIR", tmp_path)
    return tmp_path


def test_a_running_local_run_is_found_when_no_endpoint_is_set(run_dir: Path) -> None:
    gone = subprocess.Popen(["true"])  # a pid that is gone: the file of a run that was killed
    gone.wait()
    run_state.write_state(local_run_state(3000, os.getpid(), "redis://127.0.0.1:7001/0"))
    run_state.write_state(local_run_state(3100, gone.pid, "redis://127.0.0.1:7002/0"))

    chosen = find_local_run({"HOME": "/home/someone"})

    assert chosen is not None
    assert chosen.port == 3000
    environment = chosen.environment()
    assert environment["VT_REDIS_URL"] == "redis://127.0.0.1:7001/0"
    assert environment["VT_USE_LOCALSTACK"] == "true"
    assert environment["LOCALSTACK_HOST"] == "127.0.0.1:4566"
    assert environment["VT_TABLE_NAME"] == "community-visits"


@pytest.mark.parametrize("variable", ["VT_REDIS_URL", "LOCALSTACK_HOST", "AWS_ENDPOINT_URL", "VT_USE_LOCALSTACK"])
def test_explicit_endpoints_win_over_a_running_local_run(run_dir: Path, variable: str) -> None:
    run_state.write_state(local_run_state(3000, os.getpid()))

    assert find_local_run({variable: "set by the user"}) is None


def test_several_local_runs_need_vt_port_to_choose(run_dir: Path) -> None:
    run_state.write_state(local_run_state(3000, os.getpid()))
    run_state.write_state(local_run_state(3100, os.getpid(), "redis://127.0.0.1:7100/0"))

    with pytest.raises(SystemExit, match=r"3000, 3100.*VT_PORT"):
        find_local_run({})
    chosen = find_local_run({"VT_PORT": "3100"})

    assert chosen is not None
    assert chosen.redis_url == "redis://127.0.0.1:7100/0"


def test_no_local_run_is_no_local_run(run_dir: Path) -> None:
    assert find_local_run({}) is None
    assert find_local_run({"VT_PORT": "3000"}) is None
