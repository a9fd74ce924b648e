"""A stand-in for the API Gateway management API on loopback: `POST /<stage>/@connections/{id}`
answered after a delay, with the status chosen per connection, each request's SigV4 signature
checked the way API Gateway checks it (recomputed with botocore from the headers it names).

moto accepts `post_to_connection` but never answers 410 or 429 and checks no signature; this does
both, over real HTTP/1.1 keep-alive connections. Used by the live tests (in a thread, so they can
set answers and read what arrived) and by the fan-out benchmark (`python -m
infra.fake_management_api --delay-ms 30` in a process of its own, printing its endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ERROR_TYPES = {
    403: "ForbiddenException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
    500: "InternalServerErrorException",
}


@dataclass(frozen=True)
class Received:
    connection_id: str
    body: bytes
    signature_valid: bool


@dataclass
class FakeManagementApi:
    delay_s: float = 0.0
    stage: str = "live"
    region: str = "us-east-1"
    # The fake credentials every test and benchmark sets (AWS_ACCESS_KEY_ID=testing, ...).
    access_key: str = "testing"
    secret_key: str = "testing"  # noqa: S105 (a fake's fake credentials)
    token: str | None = "testing"  # noqa: S105
    check_signatures: bool = True
    # Lean: every post answered 200 after the delay, nothing parsed beyond its length, nothing kept
    # (the benchmark's fake, which must not compete with the pusher for the machine's CPU).
    lean: bool = False
    # Per connection id: the status to answer (200 unless set), and a delay of its own.
    answers: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    connections_opened: int = 0
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _port: int = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}/{self.stage}"

    def start(self) -> str:
        """Serves from a thread of this process; returns the endpoint (what VT_WEBSOCKET_ENDPOINT holds)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-management-api", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self.endpoint

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = None

    def drop_connections(self) -> None:
        """Closes every open client connection, as a server does with idle keep-alive connections."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(timeout=10)

    def bodies(self, connection_id: str) -> list[bytes]:
        return [r.body for r in self.received if r.connection_id == connection_id]

    async def _serve(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", port, backlog=4096)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _drop(self) -> None:
        for writer in list(self._open):
            writer.close()

    async def _close(self) -> None:
        await self._drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_opened += 1
        self._open.add(writer)
        try:
            while self.lean:
                head = await reader.readuntil(b"\r\n\r\n")
                start = head.lower().find(b"content-length:") + 15
                await reader.readexactly(int(head[start : head.find(b"\r\n", start)]) if start >= 15 else 0)
                await asyncio.sleep(self.delay_s)
                writer.write(_OK)
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _version = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                writer.write(await self._answer(method, path, headers, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()

    async def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        prefix = f"/{self.stage}/@connections/"
        if method != "POST" or not path.startswith(prefix):
            return _response(404, "NotFoundException")
        connection_id = unquote(path.removeprefix(prefix))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delays.get(connection_id, self.delay_s))
        finally:
            self.in_flight -= 1
        valid = not self.check_signatures or self._signature_valid(path, headers, body)
        self.received.append(Received(connection_id, body, valid))
        if not valid:
            return _response(403, "InvalidSignatureException")
        status = self.answers.get(connection_id, 200)
        return _response(status, ERROR_TYPES.get(status, "Exception"))

    def _signature_valid(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        """Recomputes the signature over the headers the request says it signed (botocore's SigV4)."""
        authorization = headers.get("authorization", "")
        parts = dict(part.strip().split("=", 1) for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(","))
        signed = parts.get("SignedHeaders", "").split(";")
        if not {"host", "x-amz-date"} <= set(signed):
            return False
        request = AWSRequest(
            method="POST", url=f"http://{headers['host']}{path}", data=body, headers={n: headers[n] for n in signed}
        )
        request.context["timestamp"] = headers["x-amz-date"]
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key, self.token), "execute-api", self.region)
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        scope = f"{self.access_key}/{headers['x-amz-date'][:8]}/{self.region}/execute-api/aws4_request"
        return parts.get("Signature") == expected and parts.get("Credential") == scope


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-amzn-RequestId: fake\r\n\r\n"


def _response(status: int, error_type: str) -> bytes:
    if status == 200:
        return _OK
    body = b'{"message": null}'
    return (
        f"HTTP/1.1 {status} Error\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"x-amzn-ErrorType: {error_type}\r\nx-amzn-RequestId: fake\r\n\r\n"
    ).encode() + body


def main() -> None:
    """A fake of its own process: prints `ENDPOINT <url>`, then serves until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-ms", type=float, default=30.0)
    parser.add_argument("--lean", action="store_true", help="answer 200 to every post, check and keep nothing")
    options = parser.parse_args()
    api = FakeManagementApi(delay_s=options.delay_ms / 1000, check_signatures=not options.lean, lean=options.lean)

    async def serve() -> None:
        await api._serve()
        print(f"ENDPOINT {api.endpoint}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
