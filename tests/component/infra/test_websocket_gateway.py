"""The local WebSocket gateway (infra/websocket_gateway.py): what it logs when clients misbehave."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from infra.gateway import Invoker
from infra.redis_servers import free_port
from infra.websocket_gateway import LocalWebSocketGateway
from tests.component.infra.test_gateway import reset_connection

ROUTES = {
    "$connect": ("FakeFunction", "tests.component.infra.fake_functions.answer"),
    "$disconnect": ("FakeFunction", "tests.component.infra.fake_functions.answer"),
    "$default": ("FakeFunction", "tests.component.infra.fake_functions.fail"),
}


@pytest.fixture
def websocket_gateway() -> Iterator[tuple[LocalWebSocketGateway, int]]:
    port = free_port()
    gateway = LocalWebSocketGateway(Invoker(), ROUTES, "127.0.0.1", port)
    gateway.start()
    yield gateway, port
    gateway.stop()


def test_no_log_line_carries_a_client_address(
    websocket_gateway: tuple[LocalWebSocketGateway, int],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway, port = websocket_gateway
    caplog.set_level(logging.DEBUG)
    client_ports = []

    # A handshake cut off half way, then reset.
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    client_ports.append(sock.getsockname()[1])
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
    time.sleep(0.2)
    reset_connection(sock)
    # Not HTTP at all.
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    client_ports.append(sock.getsockname()[1])
    sock.sendall(b"\x16\x03\x01 not a request\r\n\r\n")
    time.sleep(0.2)
    reset_connection(sock)
    # A message its function fails on: logged, and the client told as API Gateway tells it.
    with connect(f"ws://127.0.0.1:{port}/?community_id=c") as client:
        client_ports.append(client.socket.getsockname()[1])
        client.send('{"action": "ping"}')
        assert json.loads(client.recv(timeout=5))["message"] == "Internal server error"
    # A connection reset while the gateway is pushing to it.
    with contextlib.suppress(OSError), connect(f"ws://127.0.0.1:{port}/?community_id=c") as client:
        client_ports.append(client.socket.getsockname()[1])
        time.sleep(0.2)
        reset_connection(client.socket)
        for _ in range(20):
            for connection_id in list(gateway._connections):
                gateway.post(connection_id, b"x" * 65536)
    time.sleep(0.5)

    assert "HandlerFailure: the dependency said no" in caplog.text  # the failure itself is logged
    captured = capsys.readouterr()
    logged = "\n".join([captured.out, captured.err, *(record.getMessage() for record in caplog.records)])
    for client_port in client_ports:
        assert not re.search(rf"(?<!\d){client_port}(?!\d)", logged), f"client port {client_port} logged:\n{logged}"
