"""Gateway and worker as real processes (:class:`Child`), for tests that kill and restart them."""

from __future__ import annotations

from pathlib import Path

from service.cli.embedded_redis import free_port
from service.cli.launcher import Child, settings_env, tokenrelay_argv
from service.contract.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def gateway_process(settings: Settings, log_dir: Path, port: int | None = None) -> Child:
    """A gateway child on ``port`` (a free one by default); started once ``/healthz`` answers."""
    port = port or free_port()
    env = settings_env(settings, TOKENRELAY_PORT=str(port))
    log = log_dir / f"gateway-{port}.log"
    return Child("gateway", tokenrelay_argv("gateway"), log, env=env, cwd=ROOT, port=port)


def worker_process(settings: Settings, log_dir: Path, name: str) -> Child:
    """A worker child with a fixed worker id (so logs and XINFO name it); with a metrics port,
    started once ``/metrics`` answers there."""
    env = settings_env(settings, TOKENRELAY_WORKER_ID=name)
    log = log_dir / f"worker-{name}.log"
    port = settings.worker_metrics_port or None
    argv = tokenrelay_argv("worker")
    return Child("worker", argv, log, env=env, cwd=ROOT, port=port, ready_path="/metrics")
