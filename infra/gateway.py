"""A local stand-in for API Gateway (HTTP API, payload 2.0) that calls the handlers on this machine.

Hand-written because `sam local start-api` needs Docker, which these machines do not have. It
routes exactly the `HttpApi` events declared in template.yaml (the single source of truth), builds
the same v2 events API Gateway would (infra/http_api_events.py), and writes the handler's answer
back. Who runs the handler is the invoker's business: in this process one at a time (`Invoker`),
or, in the local run, in execution environments side by side (infra/execution_environments.py).
"""

from __future__ import annotations

import base64
import importlib
import ipaddress
import logging
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from infra.http_api_events import http_api_event
from infra.tables import load_template

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit
LOCAL_CONTROLS_PREFIX = "/_local/"
# A client that goes away mid-request (closed tab, reset, timeout) is not an error of ours.
_CLIENT_WENT_AWAY = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)
log = logging.getLogger(__name__)
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}


# HTTP APIs wait at most this long for an integration, whatever the function's own timeout.
INTEGRATION_TIMEOUT_MS = 30_000
LAMBDA_DEFAULT_TIMEOUT_S = 3


class FunctionError(Exception):
    """An invocation that ended in an error (raised by the function, or it timed out); carries
    the function's own traceback when it ran in another process."""

    def __init__(self, message: str, traceback_text: str = "") -> None:
        super().__init__(message)
        self.traceback_text = traceback_text


class FunctionTimeout(FunctionError):
    pass


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as in the template: /v1/communities/{community_id}/visits
    function: str  # logical id of the function
    handler: str  # module.attribute, e.g. track_visit.handler.lambda_handler
    pattern: re.Pattern[str]
    literal_segments: int
    timeout_ms: int = LAMBDA_DEFAULT_TIMEOUT_S * 1000  # the function's Timeout in the template

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def _compile(path: str) -> tuple[re.Pattern[str], int]:
    parts, literals = [], 0
    for segment in path.strip("/").split("/"):
        match = re.fullmatch(r"\{(\w+)\}", segment)
        if match:
            parts.append(f"(?P<{match.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            literals += 1
    return re.compile("^/" + "/".join(parts) + "$"), literals


def template_routes(template: dict[str, Any] | None = None) -> list[Route]:
    """Every HttpApi event of every function in the template, most specific first."""
    template = template or load_template()
    globals_handler = template.get("Globals", {}).get("Function", {}).get("Handler")
    timeouts = function_timeouts_ms(template)
    routes = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties", {})
        handler = properties.get("Handler", globals_handler)
        for event in properties.get("Events", {}).values():
            if event.get("Type") != "HttpApi":
                continue
            path, method = event["Properties"]["Path"], event["Properties"]["Method"].upper()
            pattern, literals = _compile(path)
            routes.append(Route(method, path, logical_id, handler, pattern, literals, timeouts[logical_id]))
    return sorted(routes, key=lambda r: (-r.literal_segments, r.path, r.method))


def schedule_rate_seconds(template: dict[str, Any] | None = None) -> dict[str, int]:
    """Logical id of each scheduled function -> its period, from `rate(N unit)` expressions."""
    units = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86_400, "days": 86_400}
    template = template or load_template()
    schedules = {}
    for logical_id, resource in template["Resources"].items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") in {"Schedule", "ScheduleV2"}:
                expression = event["Properties"].get("Schedule") or event["Properties"].get("ScheduleExpression")
                match = re.fullmatch(r"rate\((\d+) (\w+)\)", str(expression))
                if match:
                    schedules[logical_id] = int(match.group(1)) * units[match.group(2)]
    return schedules


def function_timeouts_ms(template: dict[str, Any] | None = None) -> dict[str, int]:
    """Logical id of each function -> its Timeout (or the Globals', or Lambda's default), in ms."""
    template = template or load_template()
    default = template.get("Globals", {}).get("Function", {}).get("Timeout", LAMBDA_DEFAULT_TIMEOUT_S)
    return {
        logical_id: int(float(resource.get("Properties", {}).get("Timeout", default)) * 1000)
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def function_handlers(template: dict[str, Any] | None = None) -> dict[str, str]:
    """Logical id of each function -> its handler string."""
    template = template or load_template()
    globals_handler = template.get("Globals", {}).get("Function", {}).get("Handler")
    return {
        logical_id: resource["Properties"].get("Handler", globals_handler)
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def load_handler(dotted: str) -> Handler:
    module_name, _, attribute = dotted.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


@dataclass
class LocalContext:
    """What a handler may ask of its Lambda context."""

    function_name: str
    timeout_ms: int = 30_000
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:local"
    aws_request_id: str = ""

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self._deadline = time.monotonic() + self.timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Invoker:
    """Calls handlers in this process, one at a time, with a movable clock (the benchmarks and
    the tests use it; the local run uses execution environments, infra/execution_environments.py).

    One at a time because Powertools keeps the current event in module state: a concurrent call
    in another thread would read this one's event."""

    def __init__(self, clock_offset_ms: Callable[[], int] = lambda: 0) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        self.clock_offset_ms = clock_offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.clock_offset_ms()

    def invoke(self, function: str, handler: str, event: dict[str, Any], timeout_ms: int = 30_000) -> dict[str, Any]:
        with self._lock:
            if handler not in self._handlers:
                self._handlers[handler] = load_handler(handler)
            return self._handlers[handler](event, LocalContext(function_name=function, timeout_ms=timeout_ms))


@dataclass
class GatewayAnswer:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: bytes


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, and 127.x seen through an IPv6 socket (::ffff:127.0.0.1)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _json_answer(status: int, message: str) -> GatewayAnswer:
    return GatewayAnswer(status, {"Content-Type": "application/json"}, [], f'{{"message":"{message}"}}'.encode())


def log_function_error(function: str, route_key: str, error: BaseException, source_ip: str) -> None:
    """What Lambda would put in the function's log: the error and its traceback. The client's
    address is taken out, should the error's message carry it (a log line never does)."""
    if isinstance(error, FunctionError):
        details = error.traceback_text or f"{type(error).__name__}: {error}"
    else:
        details = "".join(traceback.format_exception(error))
    if source_ip:
        details = details.replace(source_ip, "<client address>")
    log.error("%s (%s) failed:\n%s", function, route_key, details.rstrip())


def lambda_answer(raw: Mapping[str, Any]) -> GatewayAnswer:
    """A v2 Lambda result as API Gateway turns it into an HTTP answer."""
    body = raw.get("body") or ""
    data = base64.b64decode(body) if raw.get("isBase64Encoded") else str(body).encode()
    headers = {str(k): str(v) for k, v in (raw.get("headers") or {}).items()}
    for name, values in (raw.get("multiValueHeaders") or {}).items():
        headers[name] = ",".join(str(v) for v in values)
    return GatewayAnswer(int(raw.get("statusCode", 200)), headers, list(raw.get("cookies") or []), data)


class LocalGateway:
    """Routes HTTP requests to the template's functions; also serves the static demo files."""

    def __init__(self, invoker: Invoker, *, static_dir: Path | None = None, routes: list[Route] | None = None) -> None:
        self.invoker = invoker
        self.routes = routes if routes is not None else template_routes()
        self.static_dir = static_dir
        self.extra_routes: dict[tuple[str, str], Callable[[str, bytes], GatewayAnswer]] = {}
        self.access_log = True

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            found = route.pattern.match(path)
            if found and route.method == method:
                return route, found.groupdict()
        return None

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, source_ip: str
    ) -> GatewayAnswer:
        split = urlsplit(target)
        # API Gateway HTTP APIs percent-decode the path once, then route on it: the function gets
        # that decoded path as `rawPath` and `requestContext.http.path` (which Powertools routes
        # on), and path parameters decoded exactly once (%7C is `|`, %2525 is `%25`; `+` stays `+`;
        # %2F becomes a separator, so no route matches it, as in AWS). Everything below, the local
        # controls' loopback check included, sees that same path.
        path = unquote(split.path)
        # The local controls mint admin tokens and move the clock: only for this machine, even when
        # VT_BIND_HOST opens the gateway to the network. The socket's address, never a header.
        if path.startswith(LOCAL_CONTROLS_PREFIX) and not is_loopback(source_ip):
            return _json_answer(403, "Forbidden: the local controls answer only on loopback")
        extra = self.extra_routes.get((method, path))
        if extra is not None:
            try:
                return extra(split.query, body)
            except Exception as error:  # e.g. /_local/cleanup when the pass failed: said, not hidden
                log_function_error("local control", f"{method} {path}", error, source_ip)
                return _json_answer(500, "Internal Server Error")
        # A CORS preflight goes to the function that owns the method it asks about.
        requested = headers.get("access-control-request-method", "").upper() if method == "OPTIONS" else ""
        matched = self.match(requested or method, path)
        if matched is None:
            static = self._static(method, path)
            if static is not None:
                return static
            return GatewayAnswer(404, {"Content-Type": "application/json"}, [], b'{"message":"Not Found"}')
        route, parameters = matched
        event = http_api_event(
            method,
            path,
            route_key=route.route_key,
            path_parameters=parameters,
            query=split.query,
            headers=headers,
            body=body if body else None,
            source_ip=source_ip,
            now_ms=self.invoker.now_ms(),
        )
        timeout_ms = min(route.timeout_ms, INTEGRATION_TIMEOUT_MS)
        try:
            return lambda_answer(self.invoker.invoke(route.function, route.handler, event, timeout_ms=timeout_ms))
        except Exception as error:  # an unhandled error inside a function is API Gateway's 500
            log_function_error(route.function, route.route_key, error, source_ip)
            if isinstance(error, FunctionTimeout) and route.timeout_ms > INTEGRATION_TIMEOUT_MS:
                return _json_answer(503, "Service Unavailable")  # the HTTP API gave up first
            return _json_answer(500, "Internal Server Error")

    def _static(self, method: str, path: str) -> GatewayAnswer | None:
        if self.static_dir is None or method not in {"GET", "HEAD"}:
            return None
        relative = "index.html" if path in {"", "/"} else path.lstrip("/")
        candidate = (self.static_dir / relative).resolve()
        if not candidate.is_file() or self.static_dir.resolve() not in candidate.parents:
            return None
        content_type = _STATIC_TYPES.get(candidate.suffix, "application/octet-stream")
        return GatewayAnswer(
            200, {"Content-Type": content_type, "Cache-Control": "no-cache"}, [], candidate.read_bytes()
        )


def serve(gateway: LocalGateway, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server on host:port in front of the gateway (started by the caller)."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: with Nagle's algorithm on, a keep-alive client's
        # delayed ACK holds the body back ~40 ms on every request.
        disable_nagle_algorithm = True
        server_version = "local-api-gateway"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._write(
                    GatewayAnswer(413, {"Content-Type": "application/json"}, [], b'{"message":"Request too large"}')
                )
                return
            body = self.rfile.read(length) if length else b""
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            answer = gateway.handle(self.command, self.path, headers, body, self.client_address[0])
            self._write(answer, head=self.command == "HEAD")

        def _write(self, answer: GatewayAnswer, head: bool = False) -> None:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                    self.send_header(name, value)
            for cookie in answer.cookies:
                self.send_header("Set-Cookie", cookie)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if not head and answer.status not in {HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED}:
                self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_HEAD = _answer

        def __getattr__(self, name: str) -> Any:
            # Any other method (TRACE, QUERY, ...) is routed too: with no route for it, API Gateway
            # answers its 404, where http.server would answer 501.
            if name.startswith("do_"):
                return self._answer
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 (base class signature)
            # Method, path without its query, status: no client address, nothing identifying.
            if gateway.access_log:
                method, _, rest = self.requestline.partition(" ")
                print(f"{method} {urlsplit(rest.split(' ')[0]).path} {args[1] if len(args) > 1 else ''}", flush=True)

    server = _Server((host, port), RequestHandler)
    server.daemon_threads = True
    return server


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        # VT_BIND_HOST may be an IPv6 address (e.g. ::1); the base class only speaks IPv4.
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002 (base class signature)
        # The base class prints the client's address with the traceback: ours never logs an address.
        error = sys.exc_info()[1]
        if isinstance(error, _CLIENT_WENT_AWAY):
            log.debug("a client went away mid-request (%s)", type(error).__name__)
            return
        log.error("error while serving a request", exc_info=True)
