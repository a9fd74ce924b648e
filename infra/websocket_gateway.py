"""A local stand-in for the API Gateway WebSocket API: the template's `$connect`, `$disconnect` and
`$default` routes on localhost, invoking the live function (through the local run's invoker) with
the events API Gateway sends, plus the `@connections` side (posting to a connection) for the pusher.

Hand-written for the same reason as infra/gateway.py (no Docker for `sam local`); the WebSocket
protocol itself is the `websockets` library's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from infra.gateway import INTEGRATION_TIMEOUT_MS, Invoker, log_function_error
from infra.tables import load_template

_FAILED = "__invocation_failed"  # marks the answer of an invocation that raised (never a Lambda key)


def websocket_routes(template: dict[str, Any] | None = None) -> dict[str, tuple[str, str]]:
    """Route key ($connect, ...) -> (function logical id, handler), from the template's
    AWS::ApiGatewayV2::Route -> Integration -> function ARN."""
    template = template or load_template()
    resources = template["Resources"]
    globals_handler = template.get("Globals", {}).get("Function", {}).get("Handler")
    routes = {}
    for resource in resources.values():
        if resource.get("Type") != "AWS::ApiGatewayV2::Route":
            continue
        target = resource["Properties"].get("Target", {})
        joined = target.get("Fn::Join", ["", []])[1] if isinstance(target, dict) else []
        integration_id = next((part["Ref"] for part in joined if isinstance(part, dict) and "Ref" in part), None)
        if integration_id is None:
            continue
        uri = resources[integration_id]["Properties"]["IntegrationUri"]
        text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri)
        found = re.search(r"\$\{(\w+)\.Arn\}", text if isinstance(text, str) else text[0])
        if found:
            function = found.group(1)
            handler = resources[function]["Properties"].get("Handler", globals_handler)
            routes[resource["Properties"]["RouteKey"]] = (function, handler)
    return routes


class LocalWebSocketGateway:
    """WebSocket connections on host:port; `post()` is the management API's post_to_connection."""

    def __init__(
        self,
        invoker: Invoker,
        routes: dict[str, tuple[str, str]],
        host: str,
        port: int,
        timeouts_ms: Mapping[str, int] | None = None,
    ) -> None:
        self._invoker = invoker
        self._routes = routes
        self._timeouts_ms = dict(timeouts_ms or {})
        self._host, self._port = host, port
        self._connections: dict[str, ServerConnection] = {}
        self._ids: dict[int, str] = {}
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="websocket-gateway", daemon=True)

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        future.result(timeout=10)

    async def _serve(self) -> None:
        self._server = await serve(self._session, self._host, self._port, process_request=self._connect)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def _event(self, route_key: str, connection_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "requestContext": {
                "routeKey": route_key,
                "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key, "MESSAGE"),
                "connectionId": connection_id,
                "requestTimeEpoch": self._invoker.now_ms(),
                "domainName": f"localhost:{self._port}",
                "stage": "local",
                "apiId": "local",
                "requestId": uuid.uuid4().hex,
            },
            "isBase64Encoded": False,
            **extra,
        }

    async def _invoke(self, route_key: str, event: dict[str, Any]) -> dict[str, Any]:
        target = self._routes.get(route_key) or self._routes.get("$default")
        if target is None:
            return {"statusCode": 200}
        function, handler = target
        timeout_ms = self._timeouts_ms.get(function, INTEGRATION_TIMEOUT_MS)
        try:
            return await asyncio.to_thread(self._invoker.invoke, function, handler, event, timeout_ms)
        except Exception as error:  # logged like Lambda would; API Gateway answers its 500
            log_function_error(function, route_key, error, "")
            return {"statusCode": 500, _FAILED: True}

    async def _connect(self, connection: ServerConnection, request: Request) -> Response | None:
        connection_id = base64.b64encode(uuid.uuid4().bytes[:10]).decode()
        query = dict(parse_qsl(urlsplit(request.path).query))
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        answer = await self._invoke(
            "$connect", self._event("$connect", connection_id, queryStringParameters=query, headers=headers)
        )
        status = int(answer.get("statusCode", 200))
        if status != 200:
            return connection.respond(status, str(answer.get("body") or ""))
        self._ids[id(connection)] = connection_id
        return None

    async def _session(self, connection: ServerConnection) -> None:
        connection_id = self._ids.pop(id(connection))
        self._connections[connection_id] = connection
        try:
            async for message in connection:
                body = message if isinstance(message, str) else message.decode("utf-8", "replace")
                event = self._event("$default", connection_id, body=body)
                if (await self._invoke("$default", event)).get(_FAILED):
                    # What API Gateway sends the client when the integration failed.
                    failure = {
                        "message": "Internal server error",
                        "connectionId": connection_id,
                        "requestId": event["requestContext"]["requestId"],
                    }
                    await connection.send(json.dumps(failure))
        except ConnectionClosed:
            pass
        finally:
            self._connections.pop(connection_id, None)
            await self._invoke("$disconnect", self._event("$disconnect", connection_id))

    def post(self, connection_id: str, data: bytes) -> bool:
        """False when the connection is gone, as the management API's 410 says."""
        connection = self._connections.get(connection_id)
        if connection is None:
            return False
        future = asyncio.run_coroutine_threadsafe(connection.send(data.decode()), self._loop)
        try:
            future.result(timeout=5)
        except (ConnectionClosed, FutureTimeout):
            return False
        return True

    @property
    def open_connections(self) -> int:
        return len(self._connections)


def pusher_thread(tick: Callable[[], object], stop: threading.Event, period_s: float = 1.0) -> threading.Thread:
    """Ticks the live pusher once a second until `stop` is set (locally, instead of the schedule)."""

    def loop() -> None:
        while not stop.wait(period_s):
            try:
                tick()
            except Exception as error:  # the next tick tries again, as the next invocation would
                print(f"live push failed: {type(error).__name__}: {error}", flush=True)

    return threading.Thread(target=loop, name="live-pusher", daemon=True)
