"""Fixtures of the identity tests: RSA keys, and a JWKS endpoint started and stopped per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.component.identity.tokens import JwksServer


@pytest.fixture(scope="session")
def rsa_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {name: rsa.generate_private_key(public_exponent=65537, key_size=2048) for name in ("a", "b", "c")}


@pytest.fixture
def jwks_server(rsa_keys: dict[str, rsa.RSAPrivateKey]) -> Iterator[JwksServer]:
    """A fresh endpoint per test, publishing key "key-a"."""
    server = JwksServer()
    server.publish(**{"key-a": rsa_keys["a"]})
    server.start()
    yield server
    server.stop()
