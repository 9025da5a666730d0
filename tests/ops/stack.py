"""A real stack for the operations tests: gateway and worker processes on the test's Redis and
simulated upstream, the worker serving its metrics on a port of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from service.cli.embedded_redis import free_port
from service.contract.settings import Settings
from tests.processes import Process, gateway_process, worker_process


@dataclass
class Stack:
    """The processes and where to reach them."""

    gateway: Process
    worker: Process
    worker_metrics_url: str

    @property
    def gateway_url(self) -> str:
        """The gateway's base URL."""
        return self.gateway.url

    def logs(self) -> dict[str, str]:
        """Each process's captured output so far."""
        return {
            "gateway": self.gateway.log_path.read_text("utf-8"),
            "worker": self.worker.log_path.read_text("utf-8"),
        }


@contextmanager
def running_stack(settings: Settings, log_dir: Path, worker_name: str = "w1") -> Iterator[Stack]:
    """Start a worker and a gateway process; stop both (SIGTERM) at the end."""
    port = free_port()
    worker_settings = settings.model_copy(update={"worker_metrics_port": port})
    worker = worker_process(worker_settings, log_dir, worker_name)
    gateway = gateway_process(settings.model_copy(update={"worker_metrics_port": 0}), log_dir)
    try:
        worker.start()
        gateway.start()
        yield Stack(gateway, worker, f"http://127.0.0.1:{port}/metrics")
    finally:
        gateway.stop()
        worker.stop()


async def wait_serving(session: aiohttp.ClientSession, url: str, within: float = 15.0) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + within
    while True:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer in {within} s")
        await asyncio.sleep(0.05)
