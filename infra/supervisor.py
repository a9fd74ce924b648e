"""Keeps what the local run started alive, as a developer would expect of `make run` left open for
a day: a redis-server or moto_server that dies (killed, crashed, OOM) is started again on the same
port, so every client reconnects by itself, and when the emulator comes back empty the table and
the seed communities are created again.

A reused emulator (a LocalStack started by hand) is not ours to restart, but its table is checked
all the same: after the user restarts it, the table and the seeds come back too.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = 2.0  # a process that will not start is tried again, not in a tight loop


class _Process(Protocol):
    process: subprocess.Popen[Any]

    def stop(self) -> None: ...


P = TypeVar("P", bound=_Process)


class SupervisedProcess(Generic[P]):
    """One process the local run started, and how to start it again the same way. The local run
    stops whichever process is current when it ends."""

    def __init__(self, name: str, current: P, restart: Callable[[], P]) -> None:
        self.name = name
        self.current = current
        self._restart = restart

    @property
    def pid(self) -> int:
        return self.current.process.pid

    def exit_code(self) -> int | None:
        return self.current.process.poll()

    def restart(self) -> None:
        self.current = self._restart()

    def stop(self) -> None:
        self.current.stop()


class Supervisor(threading.Thread):
    """Every `period_s`, restarts a supervised process that exited; every `data_check_s`, and right
    after the emulator restarted, calls `check_data` (which recreates what the emulator lost).
    `on_change` is told after each restart (the local run rewrites .run/local-run-<port>.json)."""

    def __init__(
        self,
        processes: list[SupervisedProcess[Any]],
        *,
        check_data: Callable[[], None],
        emulator: SupervisedProcess[Any] | None = None,
        on_change: Callable[[], None] = lambda: None,
        period_s: float = 0.5,
        data_check_s: float = 5.0,
    ) -> None:
        super().__init__(name="local-run-supervisor", daemon=True)
        self._processes = processes
        self._check_data = check_data
        self._emulator = emulator
        self._on_change = on_change
        self._period_s = period_s
        self._data_check_s = data_check_s
        self._stop_event = threading.Event()
        # Held while a process is being restarted: stop() waits for it, so that the process it
        # stops is the current one and no restart happens after it.
        self._restarting = threading.Lock()
        self._next_try: dict[str, float] = {}
        self._data_failing = False

    def run(self) -> None:
        next_data_check = time.monotonic() + self._data_check_s
        while not self._stop_event.wait(self._period_s):
            restarted = self._restart_the_dead()
            if self._emulator in restarted or time.monotonic() >= next_data_check:
                next_data_check = time.monotonic() + self._data_check_s
                if self._emulator is None or self._emulator.exit_code() is None:
                    self._data()

    def pause(self) -> None:
        """No restart from now on (the local run is stopping; Ctrl-C reaches its children too)."""
        self._stop_event.set()

    def stop(self) -> None:
        self.pause()
        with self._restarting:
            pass
        if self.is_alive():
            self.join(timeout=10)

    def _restart_the_dead(self) -> list[SupervisedProcess[Any]]:
        restarted: list[SupervisedProcess[Any]] = []
        for supervised in self._processes:
            code = supervised.exit_code()
            if code is None or time.monotonic() < self._next_try.get(supervised.name, 0.0):
                continue
            with self._restarting:
                if self._stop_event.is_set():
                    return restarted
                old_pid = supervised.pid
                try:
                    supervised.restart()
                except Exception as error:  # tried again after the backoff, until it starts
                    self._next_try[supervised.name] = time.monotonic() + RESTART_BACKOFF_S
                    log.error(
                        "%s (pid %d) exited with %s; restarting it failed: %s", supervised.name, old_pid, code, error
                    )
                    continue
            log.warning(
                "%s (pid %d) exited with %s; started again (pid %d)", supervised.name, old_pid, code, supervised.pid
            )
            restarted.append(supervised)
        if restarted:
            self._on_change()
        return restarted

    def _data(self) -> None:
        try:
            self._check_data()
        except Exception as error:  # the emulator may be starting, or hung: checked again soon
            if not self._data_failing:
                log.warning("could not check the table and the seed communities: %s: %s", type(error).__name__, error)
            self._data_failing = True
            return
        self._data_failing = False
