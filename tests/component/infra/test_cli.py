"""`vt`, the operator's command line: tokens and the bulk import of communities."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest

from community_tracker.aws.stores import get_stores
from community_tracker.settings import get_settings
from infra.cli import main


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
