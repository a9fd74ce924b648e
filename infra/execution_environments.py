"""Lambda execution environments for the local run: worker processes that each run one invocation
at a time, side by side, as Lambda runs concurrent invocations in separate sandboxes.

Why processes and not threads: Powertools keeps the current event, the Lambda context and the
metrics in module state, which on Lambda is per sandbox. Two invocations in threads of one process
would read each other's events (and headers, tokens). So each environment is a process of its own
(`python -m infra.execution_environments`), taking one invocation at a time over a pipe; a hung
invocation holds one environment, the others keep serving. An invocation past its function's
timeout is stopped with its environment (by the environment's pid), as Lambda drops a timed-out
sandbox, and the next invocation gets a fresh one.

Environments start on demand up to `limit` (each start is a cold start) and are kept warm; `warm`
of them start with the pool, with the given handlers already imported. They inherit the parent's
environment variables when they start, and its stdout/stderr, so the functions' logs appear where
the in-process ones did.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from infra.gateway import FunctionError, FunctionTimeout, Handler, Invoker, LocalContext, load_handler
from infra.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 60.0  # importing every handler on a busy two-core machine
# Time for a worker to report a timeout it noticed itself, before the parent stops it.
_GRACE_SECONDS = 1.0


class _Environment:
    """One worker process and the two pipe ends the parent keeps."""

    def __init__(self, preload: Iterable[str]) -> None:
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.execution_environments", str(to_child_read), str(from_child_write)],
            pass_fds=(to_child_read, from_child_write),
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        os.close(to_child_read)
        os.close(from_child_write)
        self._requests: IO[bytes] = os.fdopen(to_child_write, "wb")
        self._answers: IO[bytes] = os.fdopen(from_child_read, "rb")
        try:
            self.call({"preload": list(preload)}, START_TIMEOUT_SECONDS)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, message: dict[str, Any], timeout_s: float) -> Any:
        """Sends one message and waits at most timeout_s for its answer."""
        try:
            self._requests.write(json.dumps(message).encode() + b"\n")
            self._requests.flush()
        except OSError as error:  # the worker is gone (killed, crashed): its pipe is broken
            raise FunctionError(f"the execution environment (pid {self.pid}) is gone: {error}") from None
        ready, _, _ = select.select([self._answers], [], [], timeout_s)
        if not ready:
            raise TimeoutError
        line = self._answers.readline()
        if not line:
            raise FunctionError(f"the execution environment (pid {self.pid}) exited with {self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise FunctionError(answer["error"], answer.get("traceback", ""))
        return answer.get("result")

    def stop(self) -> None:
        for pipe in (self._requests, self._answers):
            with contextlib.suppress(OSError):  # the worker is gone already, and its pipe with it
                pipe.close()
        stop_process(self.process)


class ExecutionEnvironments(Invoker):
    """Invokes each handler in an idle environment, starting one when none is idle (up to
    `limit`; beyond that an invocation waits for one to free up)."""

    def __init__(
        self,
        clock_offset_ms: Callable[[], int] = lambda: 0,
        *,
        limit: int = 4,
        warm: int = 1,
        preload: Iterable[str] = (),
    ) -> None:
        super().__init__(clock_offset_ms)
        self.limit = max(1, limit)
        self._warm = min(max(0, warm), self.limit)
        self._preload = list(preload)
        self._condition = threading.Condition()
        self._idle: list[_Environment] = []
        self._all: list[_Environment] = []
        self._starting = 0
        self._stopped = False

    @property
    def pids(self) -> list[int]:
        with self._condition:
            return [environment.pid for environment in self._all]

    def start(self) -> None:
        """The warm environments, started side by side (each imports every preloaded handler)."""
        with ThreadPoolExecutor(max_workers=max(1, self._warm)) as starting:
            started = list(starting.map(lambda _n: _Environment(self._preload), range(self._warm)))
        with self._condition:
            self._all.extend(started)
            self._idle.extend(started)

    def invoke(self, function: str, handler: str, event: dict[str, Any], timeout_ms: int = 30_000) -> dict[str, Any]:
        environment = self._take(handler)
        timeout_s = timeout_ms / 1000
        request = {"function": function, "handler": handler, "event": event, "timeout_ms": timeout_ms}
        try:
            result: dict[str, Any] = environment.call(request, timeout_s + _GRACE_SECONDS)
        except TimeoutError:
            self._drop(environment)
            raise FunctionTimeout(f"{function}: task timed out after {timeout_s:.2f} seconds") from None
        except FunctionError as error:
            if environment.process.poll() is not None:
                self._drop(environment)
            else:
                self._give_back(environment)
            raise error from None
        except BaseException:
            self._drop(environment)
            raise
        self._give_back(environment)
        return result

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            environments, self._all, self._idle = self._all, [], []
            self._condition.notify_all()
        for environment in environments:
            environment.stop()

    def _take(self, handler: str) -> _Environment:
        with self._condition:
            while True:
                if self._stopped:
                    raise FunctionError("the local run is stopping")
                if self._idle:
                    return self._idle.pop()
                if len(self._all) + self._starting < self.limit:
                    self._starting += 1
                    break
                self._condition.wait()
        # A cold start, outside the lock so that other invocations carry on meanwhile.
        try:
            environment = _Environment([handler])
        finally:
            with self._condition:
                self._starting -= 1
                self._condition.notify_all()
        with self._condition:
            if self._stopped:
                environment.stop()
                raise FunctionError("the local run is stopping")
            self._all.append(environment)
        return environment

    def _give_back(self, environment: _Environment) -> None:
        with self._condition:
            if environment in self._all:
                self._idle.append(environment)
                self._condition.notify()

    def _drop(self, environment: _Environment) -> None:
        with self._condition:
            if environment in self._all:
                self._all.remove(environment)
            self._condition.notify()
        environment.stop()


def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The worker's loop: one message in, one answer out, until the parent closes the pipe."""
    handlers: dict[str, Handler] = {}

    def handler_for(dotted: str) -> Handler:
        if dotted not in handlers:
            handlers[dotted] = load_handler(dotted)
        return handlers[dotted]

    for line in requests:
        message = json.loads(line)
        try:
            if "preload" in message:
                for dotted in message["preload"]:
                    handler_for(dotted)
                answer: dict[str, Any] = {"result": None}
            else:
                context = LocalContext(function_name=message["function"], timeout_ms=message["timeout_ms"])
                answer = {"result": handler_for(message["handler"])(message["event"], context)}
        except Exception as error:  # the function's unhandled error, reported to the gateway
            answer = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        answers.write(json.dumps(answer, default=str).encode() + b"\n")
        answers.flush()


def main(argv: list[str]) -> int:
    # Ctrl-C in the terminal reaches the whole process group; stopping environments is the local
    # run's job (by their pids), so that they never die half way through an answer on their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with os.fdopen(int(argv[0]), "rb") as requests, os.fdopen(int(argv[1]), "wb") as answers:
        _serve(requests, answers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
