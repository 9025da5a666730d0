"""A real stack for the operations tests: gateway and worker processes on the test's Redis and
simulated upstream, the worker serving its metrics on a port of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.cli.embedded_redis import free_port
from service.cli.launcher import Child
from service.contract.settings import Settings
from tests.processes import gateway_process, worker_process


@dataclass
class Stack:
    """The processes and where to reach them."""

    gateway: Child
    worker: Child

    @property
    def gateway_url(self) -> str:
        """The gateway's base URL."""
        return self.gateway.url

    @property
    def worker_metrics_url(self) -> str:
        """The worker's ``/metrics``."""
        return f"{self.worker.url}/metrics"

    def logs(self) -> dict[str, str]:
        """Each process's captured output so far."""
        return {child.name: child.log_text() for child in (self.gateway, self.worker)}


@contextmanager
def running_stack(settings: Settings, log_dir: Path, worker_name: str = "w1") -> Iterator[Stack]:
    """A worker (started once its metrics answer) and a gateway; both stopped at the end."""
    worker_settings = settings.model_copy(update={"worker_metrics_port": free_port()})
    worker = worker_process(worker_settings, log_dir, worker_name)
    gateway = gateway_process(settings.model_copy(update={"worker_metrics_port": 0}), log_dir)
    try:
        worker.start()
        gateway.start()
        yield Stack(gateway, worker)
    finally:
        gateway.stop()
        worker.stop()
