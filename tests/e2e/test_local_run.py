"""The whole system as `make run` brings it up, used over HTTP the way a frontend and a browser do."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from community_tracker.settings import Settings
from infra.aws_emulator import start_moto_server
from infra.local_run import LOCAL_EVENT_BUS_NAME
from infra.redis_servers import free_port
from infra.run_state import read_state, state_path
from infra.tokens import mint_token
from tests.e2e.conftest import ROOT, LocalSystem, start_local_system, stop_local_system


def token(**kwargs: object) -> str:
    # The local run uses the default settings, like this process
    return mint_token(Settings(), **kwargs)  # type: ignore[arg-type]


def bearer(user_id: str, **kwargs: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user_id=user_id, **kwargs)}"}


def register(system: LocalSystem, division: str = "quebec") -> str:
    community_id = f"e2e-{uuid.uuid4().hex[:8]}"
    answer = system.request(
        "PUT",
        f"/v1/communities/{community_id}",
        {"slug": community_id, "name": "End to end", "division_id": division},
        bearer("ops", roles=["admin"]),
    )
    assert answer.status == 200, answer.body
    return community_id


def test_seeded_community_takes_beacons_and_serves_stats(local_system: LocalSystem) -> None:
    reader = bearer("reader")
    before = local_system.request("GET", "/v1/communities/quebec-city/stats", headers=reader).json()

    json_beacon = local_system.request(
        "POST", "/v1/communities/quebec-city/visits", {"url": "https://x.example/", "visitor_id": "tab-e2e-0000001"}
    )
    plain_beacon = local_system.request(
        "POST",
        "/v1/communities/quebec-city/visits",
        json.dumps({"url": "https://x.example/", "token": token(user_id="e2e-user", division_id="montreal")}).encode(),
        {"Content-Type": "text/plain;charset=UTF-8"},
    )
    after = local_system.request("GET", "/v1/communities/quebec-city/stats", headers=reader).json()

    assert json_beacon.status == 200, json_beacon.body
    assert plain_beacon.status == 200, plain_beacon.body
    assert plain_beacon.json()["is_cross_division"] is True
    assert after["total_visitors"] == before["total_visitors"] + 2
    assert after["authenticated_visitors"] == before["authenticated_visitors"] + 1


def test_cors_preflight_and_grants(local_system: LocalSystem) -> None:
    origin = f"http://localhost:{local_system.port}"
    allowed = local_system.request(
        "OPTIONS",
        "/v1/communities/quebec-city/visits",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    foreign = local_system.request(
        "OPTIONS",
        "/v1/communities/quebec-city/visits",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == origin
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in foreign.headers


def test_cors_origins_are_the_settings_table_s_and_the_banner_lists_them(local_system: LocalSystem) -> None:
    # The README's settings table promises these two; the local run adds its own origin (VT_PORT).
    expected = [
        "http://localhost:3000",
        "http://127.0.0.1:3000",
        f"http://localhost:{local_system.port}",
        f"http://127.0.0.1:{local_system.port}",
    ]
    banner = next((line for line in local_system.output if line.strip().startswith("CORS origins")), "")

    for origin in expected:
        answer = local_system.request(
            "OPTIONS",
            "/v1/communities/quebec-city/visits",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert answer.headers.get("access-control-allow-origin") == origin, origin
    assert banner.split()[2:] == expected, banner


def test_stats_need_a_token_and_bots_are_not_counted(local_system: LocalSystem) -> None:
    community_id = register(local_system)

    no_token = local_system.request("GET", f"/v1/communities/{community_id}/stats")
    bot = local_system.request(
        "POST", f"/v1/communities/{community_id}/visits", {"url": "https://x/"}, {"User-Agent": "Python-urllib/3.11"}
    )

    assert no_token.status == 401
    assert bot.status == 202
    assert bot.headers["x-beacon-dropped"] == "bot"


def test_cleanup_after_the_clock_moves(local_system: LocalSystem) -> None:
    community_id = register(local_system, division="laval")
    for i in range(3):
        local_system.request(
            "POST", f"/v1/communities/{community_id}/visits", {"url": "https://x/", "visitor_id": f"tab-clock-{i:05d}"}
        )

    local_system.request("POST", "/_local/clock", {"advance_seconds": 6 * 60})
    reports = local_system.request("POST", "/_local/cleanup").json()
    stats = local_system.request("GET", f"/v1/communities/{community_id}/stats", headers=bearer("reader")).json()

    assert sum(report["stale_removed"] for report in reports) >= 3
    assert all(report["completed"] for report in reports)
    assert stats["total_visitors"] == 0


def test_an_encoded_user_id_reaches_its_own_history_and_its_erasure(local_system: LocalSystem) -> None:
    # `auth0|…` as identity providers write it; browsers (encodeURIComponent) and requests send %7C.
    user_id = f"auth0|{uuid.uuid4().hex[:10]}"
    encoded = user_id.replace("|", "%7C")
    beacon = local_system.request(
        "POST",
        "/v1/communities/quebec-city/visits",
        {"url": "https://x.example/", "event_id": f"evt-{uuid.uuid4().hex[:12]}"},
        bearer(user_id, division_id="montreal"),
    )

    history = local_system.request("GET", f"/v1/users/{encoded}/visits", headers=bearer(user_id))
    erased = local_system.request("DELETE", f"/v1/users/{encoded}/visits", headers=bearer("ops", roles=["admin"]))
    after = local_system.request("GET", f"/v1/users/{encoded}/visits", headers=bearer(user_id))

    assert beacon.status == 200, beacon.body
    assert history.status == 200, history.body
    assert [visit["user_id"] for visit in history.json()["visits"]] == [user_id]
    assert erased.status == 200, erased.body
    assert erased.json() == {"user_id": user_id, "deleted": 1, "complete": True}
    assert after.json()["visits"] == []


def test_vt_finds_the_running_local_system(local_system: LocalSystem, tmp_path: Path) -> None:
    # A new shell: none of the variables the local run gave its functions, and another directory.
    # VT_PORT picks this test's system among the others the test session may have running.
    shell = {k: v for k, v in os.environ.items() if not k.startswith(("VT_", "LOCALSTACK_", "AWS_"))}
    vt = str(Path(sys.executable).with_name("vt"))

    done = subprocess.run(
        [vt, "cleanup"],
        cwd=tmp_path,
        env={**shell, "VT_PORT": str(local_system.port)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["completed"] is True
    assert f"the local run on port {local_system.port}" in done.stderr


def test_openapi_and_docs_are_served(local_system: LocalSystem) -> None:
    spec = local_system.request("GET", "/v1/openapi.json")
    docs = local_system.request("GET", "/v1/docs")

    assert spec.status == 200
    assert "/v1/communities/{community_id}/summary" in spec.json()["paths"]
    assert docs.status == 200
    assert b"swagger" in docs.body.lower()


def test_a_second_run_on_the_same_port_says_so(local_system: LocalSystem) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "infra.local_run"],
        cwd=ROOT,
        env={**os.environ, "VT_PORT": str(local_system.port), "LOCALSTACK_HOST": f"127.0.0.1:{free_port()}"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert second.returncode == 1
    assert "already running" in second.stderr
    assert "Traceback" not in second.stderr + second.stdout


def test_it_listens_on_loopback_only_by_default(local_system: LocalSystem) -> None:
    # 127.0.0.2 is loopback too (all of 127/8 is), but a socket bound to 127.0.0.1 does not take
    # it, while one bound to every interface (0.0.0.0) would: this tells the two apart.
    for port in (local_system.port, local_system.ws_port):
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex(("127.0.0.2", port)) != 0, f"port {port} answers beyond 127.0.0.1"
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    assert any(line.split()[:2] == ["Listening", "127.0.0.1"] for line in local_system.output)


def test_ctrl_c_stops_every_process_it_started() -> None:
    system = start_local_system(free_port(), emulator_port := free_port())
    redis_port = int(next(line for line in system.output if "Redis " in line).rsplit(":", 1)[1].split("/")[0])
    children = child_pids(system.process.pid)

    code = stop_local_system(system)

    assert code == 0
    assert any("stopping" in line for line in system.output)
    for port in (system.port, redis_port, emulator_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
    assert not state_path(system.port).exists()  # vt will not take a stopped run for a running one
    # redis-server, moto_server and the warm execution environments, all stopped.
    assert len(children) >= 4, children
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def child_pids(pid: int) -> set[int]:
    """The processes `pid` started (Linux: each of its threads lists the children it forked)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.update(int(child) for child in (task / "children").read_text().split())
    return children


def test_a_hung_dependency_stalls_only_the_calls_that_need_it(tmp_path: Path) -> None:
    # The emulator is this test's own (the local run reuses what answers there), so it can freeze it.
    emulator = start_moto_server(f"127.0.0.1:{free_port()}", tmp_path / "moto.log")
    system = start_local_system(free_port(), int(emulator.host.rsplit(":", 1)[1]))
    history: list[int] = []
    try:
        assert system.request("GET", "/v1/openapi.json").status == 200
        os.kill(emulator.process.pid, signal.SIGSTOP)  # DynamoDB hangs: reads time out, retried, for ~10 s
        hung = threading.Thread(
            target=lambda: history.append(
                system.request("GET", "/v1/users/frozen/visits", headers=bearer("frozen")).status
            )
        )
        hung.start()
        time.sleep(0.5)

        started = time.monotonic()
        unrelated = system.request("GET", "/v1/openapi.json", timeout=5)
        elapsed = time.monotonic() - started

        assert unrelated.status == 200
        assert elapsed < 3, f"an unrelated route waited {elapsed:.1f} s for the hung one"
        assert hung.is_alive()
    finally:
        os.kill(emulator.process.pid, signal.SIGCONT)
        stop_local_system(system)
        emulator.stop()
    hung.join(timeout=30)
    assert history, "the hung call never answered"


def eventually(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check` held; fails the test past `timeout`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        time.sleep(0.25)
    return time.monotonic() - started


def emulator_dynamodb(host: str) -> Any:
    """A DynamoDB client of the emulator itself, to look behind the functions' caches."""
    return boto3.client(
        "dynamodb",
        endpoint_url=f"http://{host}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def test_a_killed_redis_or_emulator_is_restarted_with_table_and_seeds() -> None:
    system = start_local_system(free_port(), free_port())
    try:
        first = read_state(state_path(system.port))
        assert first is not None
        assert first.redis_pid is not None
        assert first.emulator_pid is not None
        reader = bearer("reader")

        def anonymous_beacon_and_read_work() -> bool:
            beacon = system.request(
                "POST", "/v1/communities/quebec-city/visits", {"url": "https://x/", "visitor_id": "tab-revive-0001"}
            )
            stats = system.request("GET", "/v1/communities/old-montreal/stats", headers=reader)
            return beacon.status == 200 and stats.status == 200

        assert anonymous_beacon_and_read_work()

        os.kill(first.redis_pid, signal.SIGKILL)

        def restarted() -> bool:
            state = read_state(state_path(system.port))
            return state is not None and state.redis_pid != first.redis_pid and anonymous_beacon_and_read_work()

        eventually(restarted, timeout=30)
        second = read_state(state_path(system.port))
        assert second is not None
        assert second.redis_pid not in {None, first.redis_pid}
        assert second.redis_url == first.redis_url  # the same port: every client reconnects by itself

        os.kill(first.emulator_pid, signal.SIGKILL)
        user = f"revived-{uuid.uuid4().hex[:8]}"

        def authenticated_visit_is_stored() -> bool:
            beacon = system.request(
                "POST",
                "/v1/communities/quebec-city/visits",
                {"url": "https://x/", "event_id": f"evt-{uuid.uuid4().hex[:12]}"},
                bearer(user),
            )
            history = system.request("GET", f"/v1/users/{user}/visits", headers=bearer(user))
            return beacon.status == 200 and history.status == 200 and len(history.json()["visits"]) >= 1

        eventually(authenticated_visit_is_stored, timeout=60)
        third = read_state(state_path(system.port))
        assert third is not None
        assert third.emulator_pid not in {None, first.emulator_pid}
        # The seed communities are back in the new emulator's table (not only in the functions' caches).
        seeded = emulator_dynamodb(third.emulator_host).get_item(
            TableName=third.table_name, Key={"PK": {"S": "COMMUNITY#quebec-city"}, "SK": {"S": "META"}}
        )
        assert "Item" in seeded
        # And the alerts' bus, created right after the table.
        events = emulator_client("events", third.emulator_host)
        eventually(
            lambda: LOCAL_EVENT_BUS_NAME in {bus["Name"] for bus in events.list_event_buses()["EventBuses"]},
            timeout=15,
        )
    finally:
        stop_local_system(system)


def test_a_reused_emulator_restarted_by_hand_gets_its_table_and_seeds_back(tmp_path: Path) -> None:
    emulator = start_moto_server(f"127.0.0.1:{free_port()}", tmp_path / "moto.log")
    system = start_local_system(free_port(), int(emulator.host.rsplit(":", 1)[1]))
    try:
        state = read_state(state_path(system.port))
        assert state is not None
        assert state.emulator_pid is None  # not the local run's to restart
        emulator.stop()
        emulator = start_moto_server(emulator.host, tmp_path / "moto.log")  # empty, as after a restart
        dynamodb = emulator_dynamodb(emulator.host)

        def seeds_are_back() -> bool:
            if state.table_name not in dynamodb.list_tables()["TableNames"]:
                return False
            key = {"PK": {"S": "COMMUNITY#quebec-city"}, "SK": {"S": "META"}}
            return "Item" in dynamodb.get_item(TableName=state.table_name, Key=key)

        eventually(seeds_are_back, timeout=30)
    finally:
        stop_local_system(system)
        emulator.stop()


def test_websocket_push_is_coalesced_and_needs_a_token(local_system: LocalSystem) -> None:
    community_id = register(local_system, division="laval")
    url = f"ws://127.0.0.1:{local_system.ws_port}/?community_id={community_id}"

    with pytest.raises(InvalidStatus) as refused:
        connect(url).close()
    with connect(f"{url}&token={token(user_id='watcher')}") as socket:
        for i in range(6):  # a burst of beacons within one pusher tick
            local_system.request(
                "POST", f"/v1/communities/{community_id}/visits", {"url": "https://x/", "visitor_id": f"tab-ws-{i:06d}"}
            )
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(messages) < 2:
            with contextlib.suppress(TimeoutError):
                messages.append(json.loads(socket.recv(timeout=0.5)))

    assert refused.value.response.status_code == 401
    counts = [m for m in messages if m["type"] == "visitor_count_changed"]
    assert counts, messages
    assert counts[-1]["total"] == 6
    assert len(counts) <= 2  # six beacons, at most one message per tick
    assert any(m["type"] == "visitor_divisions_updated" for m in messages)


def emulator_client(service: str, host: str) -> Any:
    """A client of the emulator itself (a service named at run time: boto3's overloads want a literal)."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=f"http://{host}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def test_a_spike_is_one_event_on_the_alerts_bus(local_system: LocalSystem) -> None:
    """A community with no history gets as many visitors as its rule's minimum: one VisitorSpike on
    the bus (a queue subscribed to this community's alerts receives it), and a minute later, the
    spike still going on, nothing more; the alert is in the community's history."""
    state = read_state(state_path(local_system.port))
    assert state is not None
    bus = next(line.split()[2] for line in local_system.output if line.strip().startswith("Alert events"))
    assert bus == LOCAL_EVENT_BUS_NAME
    community_id = register(local_system, division="laval")
    admin = bearer("ops", roles=["admin"])
    visitors = 4
    rule = local_system.request(
        "PUT", f"/v1/communities/{community_id}/alert-rule", {"min_visitors": visitors, "baseline_minutes": 10}, admin
    )
    assert rule.status == 200, rule.body
    events, sqs = emulator_client("events", state.emulator_host), emulator_client("sqs", state.emulator_host)
    queue = sqs.create_queue(QueueName=f"alerts-{community_id}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_name = f"spikes-{community_id}"
    pattern = {
        "source": ["community-visitor-tracker"],
        "detail-type": ["VisitorSpike", "VisitorDrop"],
        "detail": {"community_id": [community_id]},
    }
    events.put_rule(Name=rule_name, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule_name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])

    for i in range(visitors):  # below the minimum until the last one: no pass can fire early
        beacon = local_system.request(
            "POST", f"/v1/communities/{community_id}/visits", {"url": "https://x/", "visitor_id": f"tab-spike-{i:05d}"}
        )
        assert beacon.status == 200, beacon.body
    first = local_system.request("POST", "/_local/alerts")
    local_system.request("POST", "/_local/clock", {"advance_seconds": 60})
    for i in range(visitors):
        local_system.request("POST", f"/v1/communities/{community_id}/heartbeat", {"visitor_id": f"tab-spike-{i:05d}"})
    second = local_system.request("POST", "/_local/alerts")

    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        received.extend(json.loads(message["Body"]) for message in answer.get("Messages", []))
    history = local_system.request("GET", f"/v1/communities/{community_id}/alerts", headers=bearer("reader"))

    assert first.status == 200, first.body
    assert second.status == 200, second.body
    assert not any(f.startswith(f"{community_id}/") for report in second.json() for f in report["fired"])
    assert [(event["detail-type"], event["source"]) for event in received] == [
        ("VisitorSpike", "community-visitor-tracker")
    ]
    (detail,) = [event["detail"] for event in received]
    assert (detail["community_id"], detail["kind"], detail["live_visitors"]) == (community_id, "spike", visitors)
    assert detail["rule_source"] == "custom"
    assert history.status == 200, history.body
    assert [(alert["alert_id"], alert["kind"]) for alert in history.json()["alerts"]] == [(detail["alert_id"], "spike")]
