"""The real processes a benchmark run drives: Redis (one server, or a local Redis Cluster),
the simulated upstream, the gateway and the worker, each a child process pinned to its cores,
logging into the run's folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.localcluster import LocalCluster
from bench.procstat import children
from service.cli.embedded_redis import RedisClusterServers, find_redis_server, free_port
from service.cli.launcher import Child, tokenrelay_argv
from service.contract.keys import job_record_key
from service.contract.store.redis_client import AnyRedis, connect

ROOT = Path(__file__).resolve().parent.parent
WORKER_ID = "bench-worker"


def pinned(cores: str | None, argv: list[str]) -> list[str]:
    """``argv`` under ``taskset -c cores`` when pinning is asked for and possible."""
    if cores and shutil.which("taskset"):
        return ["taskset", "-c", cores, *argv]
    return argv


def pin_process(pid: int, cores: str) -> None:
    """Move every thread of a running process onto ``cores`` (``"0"``, ``"0,1"``, ``"0-1"``),
    for children not started under ``taskset``."""
    cpus: set[int] = set()
    for part in cores.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)


@dataclass
class Stack:
    """Redis + simulated upstream + gateway + worker for one measurement.

    ``primaries`` 0 (the default): one plain ``redis-server``; n > 0: a local Redis Cluster
    of n primaries with one replica each (``RedisClusterServers``, AOF ``everysec``; fewer
    than 3 are formed by ``bench/localcluster.py``), which the gateway and the worker reach
    through a ``redis+cluster://`` URL.
    """

    workdir: Path
    gateway_cores: str | None = "1"
    other_cores: str | None = "0"
    primaries: int = 0
    # > 1: `tokenrelay gateway --processes N`, child i pinned to core (1 - i) mod 2 when pinned.
    gateway_processes: int = 1
    children: list[Child] = field(default_factory=list)
    redis_port: int = 0
    redis: Redis | None = None
    sim_port: int = 0
    gateway_port: int = 0
    gateway: Child | None = None
    worker: Child | None = None
    redis_child: Child | None = None
    simulator: Child | None = None
    cluster: RedisClusterServers | None = None
    cluster_client: AnyRedis | None = None
    # Port -> plain client of each cluster node (INFO, SCAN: per node, not per key).
    nodes: dict[int, Redis] = field(default_factory=dict)
    # Ports of the primaries in slot order (the first owns slot 0); (first, last slot, port).
    primary_ports: list[int] = field(default_factory=list)
    slot_ranges: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        """Where the benchmark's Redis listens (``redis+cluster://`` for a cluster)."""
        if self.cluster is not None:
            return self.cluster.url
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def base_url(self) -> str:
        """The gateway's base URL."""
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def sim_url(self) -> str:
        """The simulated upstream's base URL (without ``/v1``)."""
        return f"http://127.0.0.1:{self.sim_port}"

    async def start_child(
        self,
        name: str,
        argv: list[str],
        cores: str | None,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        port: int | None = None,
    ) -> Child:
        """``argv`` pinned to ``cores``, logging to ``<workdir>/<name>.log``; with a ``port``,
        returns once it answers there."""
        log = self.workdir / f"{name}.log"
        child = Child(name, pinned(cores, argv), log, env=env, cwd=cwd, port=port)
        # Listed before it starts: stop() then ends it even when it never gets ready.
        self.children.append(child)
        await asyncio.to_thread(child.start)
        return child

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENRELAY_")}
        env.update(
            TOKENRELAY_REDIS_URL=self.redis_url,
            TOKENRELAY_UPSTREAM_URL=f"{self.sim_url}/v1",
            TOKENRELAY_LOG_LEVEL="WARNING",
            TOKENRELAY_WORKER_CONCURRENCY="2000",
            TOKENRELAY_VIEWER_TOKEN_SECRET="bench-secret-bench-secret-bench-secret",
            TOKENRELAY_SHUTDOWN_GRACE_SECONDS="1",
            TOKENRELAY_WORKER_ID=WORKER_ID,
            # Every viewer comes from 127.0.0.1: per-address limits would refuse the load.
            TOKENRELAY_SUBMIT_RATE_PER_MINUTE="0",
            TOKENRELAY_STREAM_RATE_PER_MINUTE="0",
            TOKENRELAY_MAX_STREAMS_PER_CLIENT="0",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    async def start_redis(self, cores: str | None = None) -> None:
        """A private redis-server: no persistence, loopback only (or the cluster)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.primaries:
            await self._start_cluster(cores or self.other_cores)
            return
        self.redis_port = free_port()
        argv = [
            find_redis_server(),
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--maxclients",
            "50000",
        ]
        self.redis_child = await self.start_child("redis", argv, cores or self.other_cores)
        self.redis = Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 10
        while True:
            self.redis_child.check()
            try:
                await self.redis.ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _start_cluster(self, cores: str | None) -> None:
        """``primaries`` primaries + as many replicas, formed and ``cluster_state:ok``."""
        self.cluster = LocalCluster(self.workdir / "cluster", primaries=self.primaries)
        await asyncio.to_thread(self.cluster.start)
        if cores:
            for pid in self.redis_pids():
                pin_process(pid, cores)
        for node in self.cluster.nodes:
            self.nodes[node.port] = Redis(host="127.0.0.1", port=node.port)
        any_node = next(iter(self.nodes.values()))
        slots = await any_node.cluster("slots")
        ranges = sorted((int(r[0]), int(r[1]), int(r[2][1])) for r in slots)
        self.slot_ranges = ranges
        self.primary_ports = list(dict.fromkeys(port for _, _, port in ranges))
        self.cluster_client = connect(self.redis_url, max_connections=64)

    def redis_pids(self) -> list[int]:
        """Process ids of the Redis server or of every cluster node."""
        if self.cluster is not None:
            return [n.process.pid for n in self.cluster.nodes if n.process is not None]
        return [self.redis_child.pid] if self.redis_child else []

    def primary_of_slot(self, slot: int) -> int:
        """The port of the primary serving ``slot`` (as the cluster was formed)."""
        return next(port for low, high, port in self.slot_ranges if low <= slot <= high)

    async def start_simulator(self, rate: float, tokens: int) -> None:
        """``tokenrelay simulate-upstream`` with a default pace and length."""
        self.sim_port = free_port()
        pace = ("--rate", str(rate), "--tokens", str(tokens))
        argv = tokenrelay_argv("simulate-upstream", "--port", str(self.sim_port), *pace)
        self.simulator = await self.start_child(
            "simulator", argv, self.other_cores, cwd=self.workdir, port=self.sim_port
        )

    async def start_gateway(self, **env: str) -> None:
        """``tokenrelay gateway`` pinned to the gateway's core; with ``gateway_processes`` > 1,
        ``--processes N``, returned once every process listens, each pinned to a core of its
        own in turn (the first on the gateway's core, the next on the other one)."""
        self.gateway_port = free_port()
        count = self.gateway_processes
        self.gateway = await self.start_child(
            "gateway",
            tokenrelay_argv("gateway", "--processes", str(count)),
            self.gateway_cores,
            cwd=self.workdir,
            env=self._env(TOKENRELAY_PORT=str(self.gateway_port), **env),
            port=self.gateway_port,
        )
        if count > 1:
            deadline = time.monotonic() + 30
            while f"{count} processes serving" not in self.gateway.log_text():
                self.gateway.check()
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway processes did not all listen")
                await asyncio.sleep(0.05)
            if self.gateway_cores and self.other_cores:
                cores = [self.gateway_cores, self.other_cores]
                for index, pid in enumerate(self.hub_pids()):
                    pin_process(pid, cores[index % 2])

    def hub_pids(self) -> list[int]:
        """The processes that serve viewers: the gateway, or the children of its parent."""
        assert self.gateway is not None
        if self.gateway_processes > 1:
            return sorted(children(self.gateway.pid))
        return [self.gateway.pid]

    async def start_worker(self, *, first_job: str | None = None, **env: str) -> None:
        """``tokenrelay worker``. Returns once it reads the queue or, with ``first_job``,
        once that job left ``queued`` (so its start-up is not in a CPU window begun then).

        (It is not paused with SIGSTOP instead: a worker stopped for 5 s or more loses the
        queue entry delivered meanwhile until XAUTOCLAIM takes it back, a lease later.)
        """
        self.worker = await self.start_child(
            "worker",
            tokenrelay_argv("worker"),
            self.other_cores,
            cwd=self.workdir,
            env=self._env(**env),
        )
        client: AnyRedis | None = self.redis if self.redis is not None else self.cluster_client
        assert client is not None
        servers = list(self.nodes.values()) if self.nodes else [client]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.worker.check()
            if first_job is not None:
                status = await client.hget(job_record_key(first_job), "status")
                if status not in (None, b"queued"):
                    return
            else:
                # Blocked in XREADGROUP on the queue = ready.
                for server in servers:
                    clients = await server.client_list()
                    if any(c.get("cmd") == "xreadgroup" for c in clients):
                        return
            await asyncio.sleep(0.01)
        raise RuntimeError("the worker did not start")

    async def redis_info(self) -> dict[str, Any]:
        """``INFO stats`` and ``INFO commandstats`` merged; for a cluster, summed over the
        primaries (counters only: ``total_commands_processed`` and each ``cmdstat_*``)."""
        if self.cluster is not None:
            infos = await self.node_infos()
            return sum_infos([infos[port] for port in self.primary_ports])
        assert self.redis is not None
        info: dict[str, Any] = await self.redis.info("stats")
        info.update(await self.redis.info("commandstats"))
        return info

    async def node_infos(self) -> dict[int, dict[str, Any]]:
        """Per cluster node (port): ``INFO stats cpu clients replication commandstats``."""
        sections = ("stats", "cpu", "clients", "replication", "commandstats")
        return {port: await node.info(*sections) for port, node in self.nodes.items()}

    async def keys_per_primary(self, pattern: str) -> dict[int, int]:
        """How many keys matching ``pattern`` each primary holds (``SCAN`` on each node)."""
        counts: dict[int, int] = {}
        for port in self.primary_ports:
            found = 0
            async for _ in self.nodes[port].scan_iter(match=pattern, count=1000):
                found += 1
            counts[port] = found
        return counts

    async def stop(self) -> None:
        """Stop every child, newest first; then the cluster, if any."""
        clients: list[Any] = [self.redis, self.cluster_client, *self.nodes.values()]
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self.redis = None
        self.cluster_client = None
        self.nodes.clear()
        for child in reversed(self.children):
            await asyncio.to_thread(child.stop, 10.0)
        self.children.clear()
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.stop)
            # Keep each node's log and nodes.conf, not its append-only files (tens of MB a run).
            for node in self.cluster.nodes:
                await asyncio.to_thread(shutil.rmtree, node.data_dir / "appendonlydir", True)


def sum_infos(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """``total_commands_processed`` and every ``cmdstat_*`` counter added up over servers."""
    out: dict[str, Any] = {"total_commands_processed": 0}
    for info in infos:
        out["total_commands_processed"] += int(info.get("total_commands_processed", 0))
        for key, value in info.items():
            if key.startswith("cmdstat_") and isinstance(value, dict):
                into = out.setdefault(key, {"calls": 0, "usec": 0})
                into["calls"] += int(value.get("calls", 0))
                into["usec"] += int(value.get("usec", 0))
    return out
