"""The API Gateway management API (`POST /@connections/{id}`): posting to WebSocket connections,
thousands a second.

boto3 spends about a millisecond of CPU on each call (serialising, signing, parsing, retry
bookkeeping; measured in `benchmarks/fanout.py`), so a tick to thousands of subscribers would be
CPU-bound whatever the number of threads. This adapter keeps botocore for the credentials, signs
with the SigV4 rules it is tested against (`tests/component/live/test_management_api.py` checks the
signature against botocore's), and posts itself: HTTP/1.1 on keep-alive connections from one
asyncio loop of its own, at most `concurrency` posts in flight, each with a short timeout and no
retry (the pusher tries a failed connection again at its next tick, a second later).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import boto3
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import BotoCoreError
from botocore.httpsession import get_cert_path

from community_tracker.errors import PostFailed
from community_tracker.live import Delivery, Outcome, Result
from community_tracker.settings import Settings

GONE = 410


class SigV4Signer:
    """AWS Signature Version 4 for a POST without a query string to one service in one region,
    as botocore's `SigV4Auth` signs it (path URI-encoded once more, `host`, `x-amz-date` and the
    session token signed), with the signing key derived once per day and secret."""

    def __init__(self, service: str, region: str) -> None:
        self._service, self._region = service, region
        self._keys: dict[tuple[str, str], bytes] = {}

    @staticmethod
    def canonical_path(path: str) -> str:
        """The path as signed: the (already encoded) path encoded once more, as for every service but S3."""
        return quote(path, safe="/~")

    def headers(
        self, *, host: str, canonical_path: str, payload_sha256: str, credentials: ReadOnlyCredentials, amz_date: str
    ) -> list[tuple[str, str]]:
        day = amz_date[:8]
        token = credentials.token
        secret = credentials.secret_key or ""  # checked by the caller
        signed = "host;x-amz-date;x-amz-security-token" if token else "host;x-amz-date"
        canonical_headers = f"host:{host}\nx-amz-date:{amz_date}\n" + (
            f"x-amz-security-token:{token}\n" if token else ""
        )
        canonical = f"POST\n{canonical_path}\n\n{canonical_headers}\n{signed}\n{payload_sha256}"
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key(secret, day), to_sign.encode(), hashlib.sha256).hexdigest()
        headers = [("X-Amz-Date", amz_date)]
        if token:
            headers.append(("X-Amz-Security-Token", token))
        headers.append(
            (
                "Authorization",
                f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                f"SignedHeaders={signed}, Signature={signature}",
            )
        )
        return headers

    def _key(self, secret: str, day: str) -> bytes:
        key = self._keys.get((secret, day))
        if key is None:
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(secret, day): key}  # one day's key (rotated credentials replace it)
        return key


class _NoAnswer(Exception):
    """The request got no HTTP answer (refused, reset, timed out)."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def close(self) -> None:
        self.writer.close()


class ManagementApiPoster:
    """Posts to the connections of one WebSocket API stage (`endpoint_url`, e.g.
    `https://abc123.execute-api.ca-central-1.amazonaws.com/live`): a `BatchPoster` (a whole tick
    at once, `concurrency` posts in flight) and a `Poster` (one message)."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str,
        credentials: Callable[[], ReadOnlyCredentials],
        concurrency: int,
        timeout_seconds: float,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint_url!r}")
        self._secure = parts.scheme == "https"
        self._hostname = parts.hostname
        self._port = parts.port or (443 if self._secure else 80)
        self._host = self._hostname if parts.port in (None, 80 if not self._secure else 443) else parts.netloc
        self._prefix = parts.path.rstrip("/") + "/@connections/"
        self._signer = SigV4Signer("execute-api", region)
        self._credentials = credentials
        self._concurrency = max(1, concurrency)
        self._timeout = timeout_seconds
        self._ssl = ssl.create_default_context(cafile=get_cert_path(True)) if self._secure else None
        self._idle: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def post(self, connection_id: str, data: bytes) -> bool:
        """One message: True sent, False gone (410); `PostFailed` otherwise."""
        [result] = self.post_all([Delivery(connection_id, (data,))])
        if result.outcome is Outcome.FAILED:
            raise PostFailed(result.reason)
        return result.outcome is Outcome.SENT

    def post_all(self, deliveries: Sequence[Delivery]) -> list[Result]:
        if not deliveries:
            return []
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(self._post_all(deliveries))

    def close(self) -> None:
        with self._lock:
            for connection in self._idle:
                connection.close()
            self._idle.clear()
            if self._loop is not None:
                self._loop.run_until_complete(asyncio.sleep(0))  # let the transports close
                self._loop.close()
                self._loop = None

    async def _post_all(self, deliveries: Sequence[Delivery]) -> list[Result]:
        try:
            credentials = self._credentials()  # once per tick: refreshed by botocore when due
        except BotoCoreError as error:
            return [Result(Outcome.FAILED, 0, f"credentials: {type(error).__name__}") for _ in deliveries]
        if not credentials.access_key or not credentials.secret_key:
            return [Result(Outcome.FAILED, 0, "credentials: none") for _ in deliveries]
        results: list[Result] = [Result(Outcome.FAILED, 0, "not posted")] * len(deliveries)
        work = iter(enumerate(deliveries))  # shared by the workers; one loop thread, so no lock
        hashes: dict[bytes, str] = {}  # a community's message is the same bytes for all its subscribers

        async def worker() -> None:
            for index, delivery in work:
                results[index] = await self._deliver(delivery, credentials, hashes)

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(deliveries)))))
        return results

    async def _deliver(self, delivery: Delivery, credentials: ReadOnlyCredentials, hashes: dict[bytes, str]) -> Result:
        path = self._prefix + quote(delivery.connection_id, safe="")
        canonical_path = SigV4Signer.canonical_path(path)
        sent = 0
        for data in delivery.messages:
            payload_sha256 = hashes.get(data) or hashes.setdefault(data, hashlib.sha256(data).hexdigest())
            try:
                status, error_type = await self._post(path, canonical_path, data, payload_sha256, credentials)
            except _NoAnswer as failure:
                return Result(Outcome.FAILED, sent, str(failure))
            if status == GONE:
                return Result(Outcome.GONE, sent)
            if not 200 <= status < 300:
                return Result(Outcome.FAILED, sent, f"{status} {error_type}".strip())
            sent += 1
        return Result(Outcome.SENT, sent)

    async def _post(
        self, path: str, canonical_path: str, data: bytes, payload_sha256: str, credentials: ReadOnlyCredentials
    ) -> tuple[int, str]:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        signed = self._signer.headers(
            host=self._host,
            canonical_path=canonical_path,
            payload_sha256=payload_sha256,
            credentials=credentials,
            amz_date=amz_date,
        )
        head = f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nContent-Length: {len(data)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in signed)
        request = head.encode() + b"\r\n" + data
        for attempt in (1, 2):
            connection: _Connection | None = None
            try:
                async with asyncio.timeout(self._timeout):
                    connection = await self._checkout()
                    status, headers = await self._exchange(connection, request)
            except TimeoutError as error:
                if connection is not None:
                    connection.close()  # an answer may still be on its way: never reuse it
                raise _NoAnswer("timeout") from error
            except (OSError, EOFError, asyncio.LimitOverrunError, ValueError) as error:
                if connection is not None:
                    connection.close()
                    # A keep-alive connection the server had closed meanwhile: once more, on a new one.
                    if connection.reused and attempt == 1 and isinstance(error, OSError | EOFError):
                        continue
                raise _NoAnswer(type(error).__name__) from error
            if headers.get("connection", "").lower() == "close":
                connection.close()
            else:
                connection.reused = True
                self._idle.append(connection)
            return status, headers.get("x-amzn-errortype", "").split(":")[0]
        raise _NoAnswer("connection closed")  # the second attempt returns or raises

    async def _checkout(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.writer.is_closing() and not connection.reader.at_eof():
                return connection
            connection.close()
        reader, writer = await asyncio.open_connection(
            self._hostname, self._port, ssl=self._ssl, server_hostname=self._hostname if self._ssl else None
        )
        return _Connection(reader, writer)

    async def _exchange(self, connection: _Connection, request: bytes) -> tuple[int, dict[str, str]]:
        """Writes one request, reads its answer (status, headers), leaving the connection at the next."""
        connection.writer.write(request)
        head = await connection.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while size := int((await connection.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await connection.reader.readexactly(size + 2)
            while await connection.reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
        elif "content-length" in headers:
            await connection.reader.readexactly(int(headers["content-length"]))
        elif status >= 200 and status not in (204, 304):
            await connection.reader.read()  # delimited by the end of the connection
            headers["connection"] = "close"
        return status, headers


def management_api_poster(settings: Settings) -> ManagementApiPoster:
    """The poster of the pusher function: the stage's endpoint and the function's own credentials."""
    if not settings.websocket_endpoint:
        raise ValueError("VT_WEBSOCKET_ENDPOINT is not set: the pusher has no WebSocket API to post to")
    if settings.use_localstack:
        static = Credentials("test", "test").get_frozen_credentials()

        def credentials() -> ReadOnlyCredentials:
            return static
    else:
        found = boto3.Session().get_credentials()
        if found is None:
            raise ValueError("no AWS credentials for the pusher")

        def credentials() -> ReadOnlyCredentials:
            return found.get_frozen_credentials()

    return ManagementApiPoster(
        settings.websocket_endpoint,
        region=settings.aws_region,
        credentials=credentials,
        concurrency=settings.live_post_concurrency,
        timeout_seconds=settings.live_post_timeout_seconds,
    )
