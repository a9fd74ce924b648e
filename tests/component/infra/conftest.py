"""Fixtures of the template tests: the parsed template and its SAM translation, made once."""

from __future__ import annotations

from typing import Any

import pytest

from infra.tables import load_template
from tests.component.infra.sam_template import sam_transform


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return sam_transform(template)
