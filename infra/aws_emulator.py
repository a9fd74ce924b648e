"""The AWS emulator endpoint for local runs and integration tests: `moto_server`, reached the way
a real LocalStack would be (localstack-client reads LOCALSTACK_HOST / AWS_ENDPOINT_URL)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra.processes import stop_process

DEFAULT_HOST = "localhost:4566"


def responds(host: str) -> bool:
    """Whether something answers HTTP on host:port (moto_server or LocalStack)."""
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer, even an error, means a server is there
    except OSError:
        return False


@dataclass
class EmulatorProcess:
    host: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def start_moto_server(host: str, log_path: Path | None = None, timeout: float = 30.0) -> EmulatorProcess:
    """`moto_server` on host:port, in the foreground of its own process (so its pid is ours)."""
    hostname, _, port = host.partition(":")
    log = log_path.open("ab") if log_path else subprocess.DEVNULL
    # moto_server's own main, with DynamoDB's writes made atomic (infra/moto_atomic.py)
    bind = "127.0.0.1" if hostname in {"localhost", ""} else hostname
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.moto_atomic", "-H", bind, "-p", port],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parent.parent,
    )
    emulator = EmulatorProcess(host=host, process=process)
    deadline = time.monotonic() + timeout
    while not responds(host):
        if process.poll() is not None or time.monotonic() > deadline:
            emulator.stop()
            raise RuntimeError(f"moto_server did not start on {host}")
        time.sleep(0.1)
    return emulator
