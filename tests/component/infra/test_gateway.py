"""The local API gateway (infra/gateway.py) on its own: routing, local controls, what it logs."""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from infra.gateway import GatewayAnswer, Invoker, LocalGateway, Route, _compile, serve
from infra.local_run import ScheduledFunctions, add_local_controls
from infra.redis_servers import free_port


@pytest.fixture
def controls_gateway() -> LocalGateway:
    """A gateway with no template routes, only the local controls of `make run`."""
    invoker = Invoker()
    gateway = LocalGateway(invoker, routes=[])
    add_local_controls(gateway, ScheduledFunctions(invoker, {}), {"ms": 0})
    return gateway


@pytest.mark.parametrize("client", ["127.0.0.1", "127.4.5.6", "::1", "::ffff:127.0.0.1"])
def test_local_controls_answer_loopback_clients(controls_gateway: LocalGateway, client: str) -> None:
    token = controls_gateway.handle("GET", "/_local/token?sub=ops&admin=1", {}, b"", client)
    clock = controls_gateway.handle("POST", "/_local/clock", {}, b'{"advance_seconds": 1}', client)

    assert token.status == 200
    assert "token" in json.loads(token.body)
    assert clock.status == 200


@pytest.mark.parametrize("client", ["192.0.2.10", "2001:db8::1", "::ffff:192.0.2.10"])
@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/_local/token?sub=ops&admin=1"),
        ("POST", "/_local/clock"),
        ("POST", "/_local/cleanup"),
        ("POST", "/_local/alerts"),
        ("GET", "/_local/health"),
        ("GET", "/_local/anything-else"),
    ],
)
def test_local_controls_refuse_other_clients(
    controls_gateway: LocalGateway, client: str, method: str, target: str
) -> None:
    clock_before = controls_gateway.handle("POST", "/_local/clock", {}, b"{}", "127.0.0.1").body

    answer = controls_gateway.handle(method, target, {}, b'{"advance_seconds": 3600}', client)

    assert answer.status == 403
    assert b"token" not in answer.body
    assert controls_gateway.handle("POST", "/_local/clock", {}, b"{}", "127.0.0.1").body == clock_before


def user_route(method: str = "GET") -> Route:
    path = "/v1/users/{user_id}/visits"
    pattern, literals = _compile(path)
    return Route(method, path, "FakeFunction", "tests.component.infra.fake_functions.answer", pattern, literals)


@pytest.mark.parametrize(
    ("sent", "user_id"),
    [
        ("auth0%7Cabc", "auth0|abc"),  # what encodeURIComponent and requests send for auth0|abc
        ("auth0|abc", "auth0|abc"),
        ("Chester%20Mall", "Chester Mall"),
        ("%C3%A9lodie", "\u00e9lodie"),
        ("a+b", "a+b"),  # `+` is a space only in a query string
        ("50%2525", "50%25"),  # decoded once, never twice
        ("a%252Fb", "a%2Fb"),
    ],
)
def test_path_parameters_are_decoded_once_as_api_gateway_does(sent: str, user_id: str) -> None:
    gateway = LocalGateway(Invoker(), routes=[user_route()])

    answer = gateway.handle("GET", f"/v1/users/{sent}/visits?limit=5", {}, b"", "127.0.0.1")
    event = json.loads(answer.body)["event"]

    assert answer.status == 200
    assert event["pathParameters"] == {"user_id": user_id}
    # HTTP APIs hand the function the path decoded too (Powertools routes on rawPath).
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == f"/v1/users/{user_id}/visits"
    assert event["rawQueryString"] == "limit=5"


def test_an_encoded_slash_is_a_separator_once_decoded() -> None:
    gateway = LocalGateway(Invoker(), routes=[user_route()])

    assert gateway.handle("GET", "/v1/users/a%2Fb/visits", {}, b"", "127.0.0.1").status == 404


def test_an_encoded_path_cannot_reach_the_local_controls_from_afar(controls_gateway: LocalGateway) -> None:
    for target in ("/%5Flocal/token?sub=ops&admin=1", "/_local/%74oken?sub=ops&admin=1"):
        assert controls_gateway.handle("GET", target, {}, b"", "192.0.2.10").status == 403
        assert controls_gateway.handle("GET", target, {}, b"", "127.0.0.1").status == 200


def test_a_failing_local_control_is_a_logged_500(
    controls_gateway: LocalGateway, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_query: str, _body: bytes) -> GatewayAnswer:
        raise RuntimeError("the cleanup pass could not start")

    controls_gateway.extra_routes[("POST", "/_local/broken")] = broken

    answer = controls_gateway.handle("POST", "/_local/broken", {}, b"", "127.0.0.1")

    assert answer.status == 500
    assert "RuntimeError: the cleanup pass could not start" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text


@pytest.fixture
def served(controls_gateway: LocalGateway) -> Iterator[int]:
    port = free_port()
    server = serve(controls_gateway, "127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, name="test-gateway", daemon=True)
    thread.start()
    yield port
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def reset_connection(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), the way a client that crashes or roams goes away."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_no_log_line_carries_a_client_address(
    served: int, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client_ports = []
    for body_sent in (b"", b'{"advance_seconds"'):
        sock = socket.create_connection(("127.0.0.1", served), timeout=5)
        client_ports.append(sock.getsockname()[1])
        # A body announced longer than what comes: the server is still reading when the client resets.
        sock.sendall(b"POST /_local/clock HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + body_sent)
        time.sleep(0.2)
        reset_connection(sock)
    # An answer the client never reads: the server writes into a reset connection.
    sock = socket.create_connection(("127.0.0.1", served), timeout=5)
    client_ports.append(sock.getsockname()[1])
    sock.sendall(b"GET /_local/health HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
    reset_connection(sock)
    time.sleep(0.5)  # the server's threads notice the resets

    captured = capsys.readouterr()
    logged = "\n".join([captured.out, captured.err, *(record.getMessage() for record in caplog.records)])
    for port in client_ports:
        assert not re.search(rf"(?<!\d){port}(?!\d)", logged), f"client port {port} logged:\n{logged}"
    assert "Exception occurred during processing of request from" not in logged
