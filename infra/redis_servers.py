"""Starts real `redis-server` processes on loopback: one node, or a 3-master Redis Cluster.

Used by the tests, the benchmarks and the local run. Each process is stopped by its own id.
"""

from __future__ import annotations

import ipaddress
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from infra.processes import stop_process

START_TIMEOUT_SECONDS = 20.0


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(*, cluster: bool = False) -> int:
    """A free loopback port; a cluster node also needs its bus port (+10000) free and <= 65535."""
    for _ in range(200):
        port = random.randint(20_000, 45_000)
        if _bindable(port) and (not cluster or _bindable(port + 10_000)):
            return port
    raise RuntimeError("no free port found on 127.0.0.1")


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make deps` (Debian package redis-server)")
    return binary


def _wait_until(check: Callable[[], bool], what: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def make_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, for a TLS (`rediss://`) test server."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "redis-tls.crt", directory / "redis-tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class RedisProcess:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    tls_certificate: Path | None = None

    @property
    def url(self) -> str:
        if self.tls_certificate is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls_certificate}"
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis.from_url(self.url, decode_responses=True)

    def responds(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except RedisConnectionError:
            return False

    def stop(self) -> None:
        stop_process(self.process)


def start_redis(directory: Path, port: int | None = None, *, cluster: bool = False, tls: bool = False) -> RedisProcess:
    """A redis-server in the foreground (so its pid is ours), no persistence, loopback only."""
    port = port or free_port(cluster=cluster)
    directory.mkdir(parents=True, exist_ok=True)
    certificate: Path | None = None
    args = [redis_server_binary()]
    if tls:
        certificate, key = make_self_signed_certificate(directory)
        args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(certificate)]
        args += [
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(certificate),
            "--tls-auth-clients",
            "no",
        ]
    else:
        args += ["--port", str(port)]
    args += [
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--daemonize", "no",
        "--loglevel", "warning",
        "--logfile", str(directory / f"redis-{port}.log"),
    ]  # fmt: skip
    if cluster:
        args += [
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", "5000",
        ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisProcess(port=port, process=process, directory=directory, tls_certificate=certificate)
    try:
        _wait_until(server.responds, f"redis-server on port {port}")
    except RuntimeError:
        server.stop()
        raise
    return server


@dataclass
class RedisClusterProcesses:
    nodes: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(directory: Path, masters: int = 3) -> RedisClusterProcesses:
    """`masters` cluster-enabled nodes joined with `redis-cli --cluster create` (no replicas)."""
    cluster = RedisClusterProcesses()
    try:
        for _ in range(masters):
            cluster.nodes.append(start_redis(directory, cluster=True))
        addresses = [f"127.0.0.1:{node.port}" for node in cluster.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )

        def converged() -> bool:
            infos = [node.client().cluster("INFO") for node in cluster.nodes]
            return all(info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == 16384 for info in infos)

        _wait_until(converged, "the Redis Cluster to agree on its slots", timeout=30)
    except BaseException:
        cluster.stop()
        raise
    return cluster
