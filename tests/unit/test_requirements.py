"""The runtime dependency floors keep out the releases with known security defects."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REQUIREMENTS = Path(__file__).resolve().parents[2] / "layers" / "requirements.txt"

# Releases that must never be installed, and why.
KNOWN_BAD = {
    "pyjwt": {
        "2.10.0": "CVE-2024-53861: an issuer given as a string matched any substring of it",
        "2.11.0": "CVE-2026-32597: unknown `crit` header extensions accepted",
        "2.12.1": "CVE-2026-48522 (PyJWKClient scheme allowlist bypass) and four more, fixed in 2.13.0",
    },
    "cryptography": {"48.0.0": "GHSA-537c-gmf6-5ccf: wheels statically linked a vulnerable OpenSSL"},
}


def requirements() -> dict[str, Requirement]:
    lines = [line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    parsed = [Requirement(line) for line in lines if line]
    return {requirement.name.lower(): requirement for requirement in parsed}


@pytest.mark.parametrize(
    ("package", "release", "why"),
    [(package, release, why) for package, releases in KNOWN_BAD.items() for release, why in releases.items()],
)
def test_known_bad_releases_are_excluded(package: str, release: str, why: str) -> None:
    requirement = requirements()[package]

    assert release not in requirement.specifier, why


@pytest.mark.parametrize("package", sorted(KNOWN_BAD))
def test_the_installed_release_is_allowed(package: str) -> None:
    assert version(package) in requirements()[package].specifier
