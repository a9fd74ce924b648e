"""Tokens for the identity tests, and an identity provider's JWKS endpoint on loopback that the
tests rotate, revoke and take down."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from infra.redis_servers import free_port

ISSUER = "https://issuer.test"
AUDIENCE = "tracker-test"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "u-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **overrides}


class JwksServer:
    """Serves `{"keys": [...]}` of the published keys; `down` answers 503, `body` overrides it."""

    def __init__(self) -> None:
        self.published: dict[str, rsa.RSAPrivateKey] = {}
        self.down = False
        self.body: bytes | None = None
        self.requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests += 1
                    down, body = server.down, server.document()
                if down:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        self._http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_port}/.well-known/jwks.json"

    def document(self) -> bytes:
        if self.body is not None:
            return self.body
        keys = [
            {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig", "alg": "RS256"}
            for kid, key in self.published.items()
        ]
        return json.dumps({"keys": keys}).encode()

    def publish(self, **keys: rsa.RSAPrivateKey) -> None:
        """The set becomes exactly these keys (a key left out is revoked)."""
        with self._lock:
            self.published = dict(keys)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


def rs256(key: rsa.RSAPrivateKey, kid: str, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
