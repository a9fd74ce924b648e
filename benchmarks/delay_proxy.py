"""A TCP proxy that holds every request a fixed time before passing it on, so that a loopback
Redis answers as one across a network would: `python -m benchmarks.delay_proxy --target
127.0.0.1:6379 --delay-us 200` prints `PORT <port>`, then forwards until it is stopped.

Each client connection gets one server connection and two threads: what the client sends is passed
on `delay` after it arrived (one request at a time, as a client that waits for each answer sends
them), what the server answers goes back at once. The delay is a sleep to a deadline with the
process's timer slack at 1 ns (Linux's default of 50 us would add itself to every sleep). It runs
in a process of its own, so its work is not the benchmark's, and its GIL is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import socket
import sys
import threading
import time

PR_SET_TIMERSLACK = 29
CHUNK = 1 << 16


def _precise_sleeps() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _requests(client: socket.socket, server: socket.socket, delay_s: float) -> None:
    try:
        while data := client.recv(CHUNK):
            deadline = time.perf_counter() + delay_s
            while (left := deadline - time.perf_counter()) > 0:
                time.sleep(left)
            server.sendall(data)
    except OSError:
        pass
    finally:
        _close(client, server)


def _answers(server: socket.socket, client: socket.socket) -> None:
    try:
        while data := server.recv(CHUNK):
            client.sendall(data)
    except OSError:
        pass
    finally:
        _close(client, server)


def serve(listener: socket.socket, target: tuple[str, int], delay_s: float) -> None:
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(target)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_requests, args=(client, server, delay_s), daemon=True).start()
        threading.Thread(target=_answers, args=(server, client), daemon=True).start()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="host:port of the server")
    parser.add_argument("--delay-us", type=float, required=True, help="how long each request is held")
    options = parser.parse_args(argv)
    host, _, port = options.target.rpartition(":")
    _precise_sleeps()
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    serve(listener, (host, int(port)), options.delay_us / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
