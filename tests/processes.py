"""Gateway and worker as real processes, for tests that kill and restart them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from service.cli.embedded_redis import free_port
from service.contract.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENRELAY_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(
                str(v.get_secret_value() if hasattr(v, "get_secret_value") else v) for v in value
            )
        elif hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"TOKENRELAY_{name.upper()}"] = str(value)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Process:
    """One ``tokenrelay <command>`` child."""

    command: str
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    port: int | None = None
    extra_args: list[str] = field(default_factory=list)

    def start(self) -> Process:
        args = [sys.executable, "-m", "service.cli", self.command, *self.extra_args]
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(args, env=self.env, cwd=ROOT, stdout=log, stderr=log)
        if self.port is not None:
            self._wait_healthy()
        return self

    def _wait_healthy(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.command} exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.command} did not become healthy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as a crash."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit by itself; its exit code."""
        assert self.popen is not None
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def gateway_process(settings: Settings, log_dir: Path, port: int | None = None) -> Process:
    """A gateway child on ``port`` (a free one by default)."""
    port = port or free_port()
    env = settings_env(settings, TOKENRELAY_PORT=str(port))
    return Process("gateway", env, log_dir / f"gateway-{port}.log", port=port)


def worker_process(settings: Settings, log_dir: Path, name: str) -> Process:
    """A worker child with a fixed worker id (so logs and XINFO name it)."""
    env = settings_env(settings, TOKENRELAY_WORKER_ID=name)
    return Process("worker", env, log_dir / f"worker-{name}.log")
