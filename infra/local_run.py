"""`make run`: the whole system on this machine.

A real redis-server, the AWS emulator on localhost:4566 (moto_server, or a LocalStack already
listening there), the table created from template.yaml and the alerts' EventBridge bus, seed
communities, the local API gateway on VT_PORT (default 3000, loopback unless VT_BIND_HOST) invoking
the handlers in execution environments (worker processes), the scheduled functions (cleanup, alerts)
on the template's schedules, and the demo pages. What it started is supervised (restarted if it
dies) and stopped, each by its pid, on Ctrl-C.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
STATIC_DIR = ROOT / "web"
SEED_FILE = Path(__file__).resolve().parent / "seed_communities.json"
LIVE_PUSHER_HANDLER = "live.pusher.lambda_handler"
# The bus the stack names `${AWS::StackName}-alerts` (AlertsEventBus), for samconfig's stack name.
LOCAL_EVENT_BUS_NAME = "community-visitor-tracker-alerts"
DEFAULT_BIND_HOST = "127.0.0.1"
DEFAULT_CONCURRENCY = 4  # execution environments at most; each is a process of ~100 MB


log = logging.getLogger("infra.local_run")  # also when run as __main__


class AlreadyRunning(SystemExit):
    pass


@contextmanager
def single_instance(lock_path: Path) -> Iterator[None]:
    """One `make run` at a time per checkout: a second one says so and exits."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise AlreadyRunning(f"make run is already running here (pid {owner}); stop it with Ctrl-C first.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def bind_host() -> str:
    """Loopback unless VT_BIND_HOST opens it: the local run serves development tokens and takes
    any clock move, which is only safe for the people on this machine."""
    return os.environ.get("VT_BIND_HOST", "").strip() or DEFAULT_BIND_HOST


def port_is_free(port: int, host: str = DEFAULT_BIND_HOST) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def local_cors_origins(port: int) -> list[str]:
    """The settings' own default (the README's settings table) and the local gateway's own origin,
    so a frontend on :3000 and the pages served on VT_PORT are both granted, whatever VT_PORT is."""
    from community_tracker.settings import Settings

    defaults: list[str] = Settings.model_fields["cors_origins"].get_default(call_default_factory=True)
    own = [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    return list(dict.fromkeys([*defaults, *own]))


def local_environment(port: int, redis_url: str, emulator_host: str) -> dict[str, str]:
    """What the template gives the functions in AWS, pointed at the local parts."""
    defaults = {
        "VT_TABLE_NAME": "community-visits",
        "VT_EVENT_BUS_NAME": LOCAL_EVENT_BUS_NAME,
        "POWERTOOLS_SERVICE_NAME": "community-visitor-tracker-local",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    forced = {
        "VT_REDIS_URL": redis_url,
        "VT_REDIS_CLUSTER": "false",
        "VT_USE_LOCALSTACK": "true",
        "LOCALSTACK_HOST": emulator_host,
        "VT_CORS_ORIGINS": os.environ.get("VT_CORS_ORIGINS", ",".join(local_cors_origins(port))),
    }
    return {**defaults, **{k: v for k, v in os.environ.items() if k in defaults}, **forced}


def seed_communities() -> int:
    from community_tracker.aws.stores import get_stores
    from community_tracker.models import Community

    store = get_stores().communities
    rows: list[dict[str, Any]] = json.loads(SEED_FILE.read_text(encoding="utf-8"))
    for row in rows:
        store.put(Community.model_validate(row))
    return len(rows)


def ensure_table() -> bool:
    """Creates the table when the emulator does not have it; True when it did."""
    from community_tracker.aws.clients import aws_client
    from community_tracker.settings import get_settings
    from infra.tables import create_visits_table

    dynamodb = aws_client("dynamodb")
    name = get_settings().table_name
    if name in dynamodb.list_tables()["TableNames"]:
        return False
    create_visits_table(dynamodb, name)
    return True


def ensure_event_bus() -> bool:
    """Creates the alerts' bus (VT_EVENT_BUS_NAME) when the emulator does not have it; True when it
    did. The default bus always exists."""
    from community_tracker.aws.clients import aws_client
    from community_tracker.settings import get_settings

    events = aws_client("events")
    name = get_settings().event_bus_name
    if name == "default" or name in {bus["Name"] for bus in events.list_event_buses()["EventBuses"]}:
        return False
    events.create_event_bus(Name=name)
    return True


class ScheduledFunctions(threading.Thread):
    """Invokes the scheduled functions at the template's rate, like EventBridge: in the template's
    order (cleanup's per-minute samples, then the alerts that read them), each on its own, so one
    failing does not stop the others."""

    def __init__(self, invoker: Any, schedules: dict[str, tuple[str, int]]) -> None:
        super().__init__(name="scheduled-functions", daemon=True)
        self._invoker = invoker
        self._schedules = schedules
        self._stop_event = threading.Event()

    def functions_of(self, package: str) -> list[str]:
        """The scheduled functions whose handler is in `package` (`cleanup`, `alerts`)."""
        return [name for name, (handler, _period) in self._schedules.items() if handler.startswith(f"{package}.")]

    def invoke(self, function: str) -> dict[str, Any]:
        from community_tracker.timeutil import iso

        handler, _period = self._schedules[function]
        event = {
            "version": "0",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "time": iso(self._invoker.now_ms()).replace(".000Z", "Z"),
            "detail": {},
        }
        report: dict[str, Any] = self._invoker.invoke(function, handler, event, timeout_ms=60_000)
        return report

    def run_now(self, functions: list[str] | None = None) -> list[dict[str, Any]]:
        """One pass of each (or of `functions`) now; the first failure is raised."""
        return [self.invoke(function) for function in (self._schedules if functions is None else functions)]

    def run(self) -> None:
        period = min((p for _h, p in self._schedules.values()), default=60)
        while not self._stop_event.wait(period):
            for function in self._schedules:
                try:
                    self.invoke(function)
                except Exception as error:  # a failed pass is not retried: the next tick runs, as in AWS
                    print(f"{function} pass failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self._stop_event.set()


def scheduled_functions(invoker: Any, template: dict[str, Any] | None = None) -> ScheduledFunctions:
    """Every scheduled function of the template at its rate, but the live pusher: its minute-long
    invocation is replaced here by a thread ticking the same LivePusher once a second
    (start_live_push)."""
    from infra.gateway import function_handlers, schedule_rate_seconds

    handlers = function_handlers(template)
    return ScheduledFunctions(
        invoker,
        {
            name: (handlers[name], period)
            for name, period in schedule_rate_seconds(template).items()
            if handlers[name] != LIVE_PUSHER_HANDLER
        },
    )


def main() -> int:
    port = int(os.environ.get("VT_PORT", "3000"))
    emulator_host = os.environ.get("LOCALSTACK_HOST", "localhost:4566")
    host = bind_host()
    # Errors of the gateways (with their tracebacks) on stderr; the functions log through Powertools.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with ExitStack() as stack:
            stack.enter_context(single_instance(RUN_DIR / f"local-run-{port}.lock"))
            if not port_is_free(port, host):
                print(f"port {port} is already in use: stop what uses it, or set VT_PORT", file=sys.stderr)
                return 1
            run(stack, port, emulator_host, host)
    except AlreadyRunning as refusal:
        print(refusal.code, file=sys.stderr)
        return 1
    return 0


def run(stack: ExitStack, port: int, emulator_host: str, host: str = DEFAULT_BIND_HOST) -> None:
    from infra.aws_emulator import EmulatorProcess, responds, start_moto_server
    from infra.redis_servers import start_redis
    from infra.run_state import LocalRunState, remove_state, write_state
    from infra.supervisor import SupervisedProcess, Supervisor

    # Powertools warns on every request that published no metric; metrics are off locally.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    RUN_DIR.mkdir(exist_ok=True)
    first_redis = start_redis(
        RUN_DIR / "redis",
        port=int(os.environ["VT_LOCAL_REDIS_PORT"]) if os.environ.get("VT_LOCAL_REDIS_PORT") else None,
    )
    # Supervised: started again on the same port if it dies (infra/supervisor.py); whichever
    # process is current is the one stopped at the end.
    redis = SupervisedProcess(
        "redis-server", first_redis, lambda: start_redis(RUN_DIR / "redis", port=first_redis.port)
    )
    stack.callback(redis.stop)
    emulator: SupervisedProcess[EmulatorProcess] | None = None
    if responds(emulator_host):
        emulator_name = "already running (LocalStack or moto_server), reused"
    else:
        emulator_log = RUN_DIR / "moto_server.log"
        emulator = SupervisedProcess(
            "moto_server",
            start_moto_server(emulator_host, emulator_log),
            lambda: start_moto_server(emulator_host, emulator_log),
        )
        stack.callback(emulator.stop)
        emulator_name = "moto_server, started"
    os.environ.update(local_environment(port, first_redis.url, emulator_host))

    # Imported only now: the handlers read their settings from the environment set above.
    from community_tracker.settings import Settings
    from infra.execution_environments import ExecutionEnvironments
    from infra.gateway import LocalGateway, function_handlers, serve

    ensure_table()
    ensure_event_bus()
    seeded = seed_communities()
    clock_offset = {"ms": 0}
    handlers = function_handlers()
    # Invocations run side by side in worker processes, as Lambda runs concurrent invocations in
    # sandboxes of their own: a hung one holds one environment, not the whole gateway.
    invoker = ExecutionEnvironments(
        lambda: clock_offset["ms"],
        limit=int(os.environ.get("VT_LOCAL_CONCURRENCY", str(DEFAULT_CONCURRENCY))),
        warm=2,
        preload=sorted({handler for handler in handlers.values() if handler != LIVE_PUSHER_HANDLER}),
    )
    stack.callback(invoker.stop)
    invoker.start()
    schedule = scheduled_functions(invoker)
    gateway = LocalGateway(invoker, static_dir=STATIC_DIR)
    add_local_controls(gateway, schedule, clock_offset)
    ws_port = int(os.environ.get("VT_WS_PORT", str(port + 1)))
    websocket_url = start_live_push(stack, invoker, ws_port, host)
    server = serve(gateway, host, port)
    stack.callback(server.server_close)
    schedule.start()
    stack.callback(schedule.stop)

    def save_state() -> None:
        # For `vt` in another shell (the Redis port is random) and for the tests (the pids).
        write_state(
            LocalRunState(
                pid=os.getpid(),
                port=port,
                ws_port=ws_port if websocket_url.startswith("ws") else None,
                bind_host=host,
                redis_url=first_redis.url,
                emulator_host=emulator_host,
                table_name=os.environ["VT_TABLE_NAME"],
                redis_pid=redis.pid,
                emulator_pid=emulator.pid if emulator is not None else None,
            )
        )

    def restore_table_and_seeds() -> None:
        if ensure_table():
            seeded_again = seed_communities()
            log.warning("the table was gone (the emulator restarted): created again, %d seed communities", seeded_again)
        if ensure_event_bus():
            log.warning("the alerts' event bus was gone (the emulator restarted): created again")

    supervisor = Supervisor(
        [redis, *([emulator] if emulator is not None else [])],
        check_data=restore_table_and_seeds,
        emulator=emulator,
        on_change=save_state,
    )
    supervisor.start()
    stack.callback(supervisor.stop)  # before the processes it watches are stopped

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # Ctrl-C reaches redis-server and moto_server too: they are not to be started again.
        supervisor.pause()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    save_state()
    stack.callback(remove_state, port)
    print_banner(
        port,
        websocket_url,
        first_redis.url,
        emulator_host,
        emulator_name,
        seeded,
        cors_origins=Settings().cors_origins,
        host=host,
        event_bus=Settings().event_bus_name,
    )
    server.serve_forever()
    print("stopping: gateways, schedules, execution environments, AWS emulator, redis-server", flush=True)


def add_local_controls(gateway: Any, schedule: ScheduledFunctions, clock_offset: dict[str, int]) -> None:
    """Local-only routes (not in the template, never deployed): move the clock, run a cleanup or an
    alerts pass now, hand the demo pages a development token."""
    from community_tracker.settings import get_settings
    from infra.gateway import GatewayAnswer
    from infra.tokens import mint_token

    def as_json(payload: Any) -> GatewayAnswer:
        return GatewayAnswer(200, {"Content-Type": "application/json"}, [], json.dumps(payload).encode())

    def advance(_query: str, body: bytes) -> GatewayAnswer:
        seconds = json.loads(body or b"{}").get("advance_seconds", 0)
        clock_offset["ms"] += int(float(seconds) * 1000)
        return as_json({"offset_ms": clock_offset["ms"]})

    def token(query: str, _body: bytes) -> GatewayAnswer:
        wanted = dict(parse_qsl(query))
        roles = ["admin"] if wanted.get("admin") == "1" else []
        user = wanted.get("sub", "local-viewer")
        return as_json({"token": mint_token(get_settings(), user, division_id=wanted.get("division"), roles=roles)})

    gateway.extra_routes[("POST", "/_local/clock")] = advance
    gateway.extra_routes[("POST", "/_local/cleanup")] = lambda _query, _body: as_json(
        schedule.run_now(schedule.functions_of("cleanup"))
    )
    gateway.extra_routes[("POST", "/_local/alerts")] = lambda _query, _body: as_json(
        schedule.run_now(schedule.functions_of("alerts"))
    )
    gateway.extra_routes[("GET", "/_local/health")] = lambda _query, _body: as_json({"ok": True})
    gateway.extra_routes[("GET", "/_local/token")] = token


def start_live_push(stack: ExitStack, invoker: Any, ws_port: int, host: str = DEFAULT_BIND_HOST) -> str:
    """The template's WebSocket routes on ws://localhost:<VT_WS_PORT> and the pusher ticking once a
    second (in AWS, the scheduled LivePushFunction does the ticking)."""
    from community_tracker.live import LivePusher
    from community_tracker.redis.live_state import get_tracker
    from community_tracker.redis.subscriptions import get_subscriptions
    from infra.gateway import function_timeouts_ms
    from infra.websocket_gateway import LocalWebSocketGateway, pusher_thread, websocket_routes

    routes = websocket_routes()
    if not routes:
        return "none (the template declares no WebSocket routes)"
    websockets = LocalWebSocketGateway(invoker, routes, host, ws_port, function_timeouts_ms())
    websockets.start()
    stack.callback(websockets.stop)
    tracker = get_tracker()
    pusher = LivePusher(tracker, get_subscriptions(), websockets)
    stop = threading.Event()
    thread = pusher_thread(lambda: pusher.tick(invoker.now_ms()), stop)
    thread.start()
    stack.callback(stop.set)
    return f"ws://localhost:{ws_port}"


def print_banner(
    port: int,
    websocket_url: str,
    redis_url: str,
    emulator_host: str,
    emulator_name: str,
    seeded: int,
    *,
    cors_origins: list[str] | None = None,
    host: str = DEFAULT_BIND_HOST,
    event_bus: str = LOCAL_EVENT_BUS_NAME,
) -> None:
    from infra.gateway import is_loopback
    from infra.run_state import state_path

    state_file = state_path(port).relative_to(ROOT)
    base = f"http://localhost:{port}"
    if is_loopback(host) or host == "localhost":
        reach = "(this machine only; VT_BIND_HOST=0.0.0.0 opens it to the network)"
    else:
        reach = "(open to the network; /_local/* still answers loopback clients only)"
    print(
        f"""
Community visitor tracker is running locally.

  Listening      {host} {reach}
  API base URL   {base}          (every route starts with /v1: {base}/v1/communities/...)
  API docs       {base}/v1/docs   (OpenAPI: {base}/v1/openapi.json)
  Demo page      {base}/            (live stats page: {base}/stats.html?community=quebec-city)
  Live push      {websocket_url}
  Redis          {redis_url}
  AWS emulator   http://{emulator_host}  ({emulator_name})
  Alert events   {event_bus}  (EventBridge bus in the emulator; alerts pass every minute)
  CORS origins   {" ".join(cors_origins if cors_origins is not None else local_cors_origins(port))}
  Communities    {seeded} seeded (infra/seed_communities.json), e.g. quebec-city

A development token (HS256 with VT_JWT_SECRET, issuer VT_JWT_ISSUER, audience VT_JWT_AUDIENCE):
  TOKEN=$(.venv/bin/vt token --sub alice --division montreal)          # add --admin for admin routes
From another shell, `.venv/bin/vt cleanup` and `vt import-communities FILE` use this run
(its endpoints are in {state_file}); POST {base}/_local/alerts runs an alerts pass now.
Try:
  curl -s -X POST {base}/v1/communities/quebec-city/visits -H 'Content-Type: application/json' \\
       -d '{{"url": "https://example.com/communities/quebec-city/"}}'
  curl -s {base}/v1/communities/quebec-city/summary -H "Authorization: Bearer $TOKEN"

Ctrl-C stops everything.
READY {base}
""",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
