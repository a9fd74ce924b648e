"""What a running `make run` chose: its ports, the endpoints its functions use and the pids of the
processes it started, in `.run/local-run-<port>.json` while it is up.

The Redis port is random and the emulator's may be moved, so `vt` in another shell cannot guess
them: it reads this file when none of the endpoint variables is set (infra/cli.py). The tests read
the pids from it. Only endpoints and pids are written, never a secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

RUN_DIR = Path(__file__).resolve().parent.parent / ".run"
_PREFIX = "local-run-"


@dataclass(frozen=True)
class LocalRunState:
    pid: int  # the local run itself
    port: int
    ws_port: int | None
    bind_host: str
    redis_url: str
    emulator_host: str
    table_name: str
    redis_pid: int | None  # None: not ours
    emulator_pid: int | None  # None: an emulator that was already running, reused

    def environment(self) -> dict[str, str]:
        """The variables that point `vt` (or any VT_* client) at this local run's Redis and table."""
        return {
            "VT_REDIS_URL": self.redis_url,
            "VT_REDIS_CLUSTER": "false",
            "VT_USE_LOCALSTACK": "true",
            "LOCALSTACK_HOST": self.emulator_host,
            "VT_TABLE_NAME": self.table_name,
        }


def state_path(port: int) -> Path:
    return RUN_DIR / f"{_PREFIX}{port}.json"


def write_state(state: LocalRunState) -> Path:
    """Written whole or not at all (a reader never sees half a file)."""
    path = state_path(state.port)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def remove_state(port: int) -> None:
    state_path(port).unlink(missing_ok=True)


def read_state(path: Path) -> LocalRunState | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LocalRunState(**{field.name: data[field.name] for field in fields(LocalRunState)})
    except (OSError, ValueError, KeyError, TypeError):
        return None  # gone meanwhile, or written by another version: not a run we can use


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


def running_local_runs() -> list[LocalRunState]:
    """The local runs whose process is alive, by port (a killed run leaves a stale file behind)."""
    states = (read_state(path) for path in sorted(RUN_DIR.glob(f"{_PREFIX}*.json")))
    return sorted((state for state in states if state is not None and _alive(state.pid)), key=lambda s: s.port)


ENDPOINT_VARIABLES = ("VT_REDIS_URL", "VT_USE_LOCALSTACK", "LOCALSTACK_HOST", "AWS_ENDPOINT_URL")


def chosen_local_run(environ: Mapping[str, str]) -> LocalRunState | None:
    """The running local run that `environ` leaves to be used: none when any endpoint variable is
    set (the user said where), the one on VT_PORT when set, else the only one running. Several
    and no VT_PORT: refused, naming their ports."""
    if any(name in environ for name in ENDPOINT_VARIABLES):
        return None
    runs = running_local_runs()
    if environ.get("VT_PORT"):
        wanted = int(environ["VT_PORT"])
        return next((run for run in runs if run.port == wanted), None)
    if len(runs) > 1:
        ports = ", ".join(str(run.port) for run in runs)
        raise SystemExit(f"several local runs are up (ports {ports}): set VT_PORT to the one you mean")
    return runs[0] if runs else None
