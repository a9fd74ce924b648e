"""What `make run` prints is what the README tells a new user to paste."""

from __future__ import annotations

import re

import pytest

from infra.local_run import ROOT, print_banner


def banner_field(text: str, label: str) -> str:
    found = re.search(rf"^\s+{label}\s+(\S+)", text, re.MULTILINE)
    assert found, f"no {label!r} line in the banner:\n{text}"
    return found.group(1)


def test_the_banner_base_url_is_the_readme_base(capsys: pytest.CaptureFixture[str]) -> None:
    print_banner(3000, "ws://localhost:3001", "redis://127.0.0.1:6379/0", "localhost:4566", "moto_server", 6)
    banner = capsys.readouterr().out
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme_base = re.search(r"^BASE=(\S+)$", readme, re.MULTILINE)

    assert readme_base, "the README sets no BASE"
    assert banner_field(banner, "API base URL") == readme_base.group(1)
    # Every call of the README and of the banner puts the version prefix itself, once.
    assert "$BASE/v1/" in readme
    assert "/v1/v1" not in banner
