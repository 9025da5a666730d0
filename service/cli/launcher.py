"""Child processes, started, watched and stopped one way by ``tokenrelay up``, the tests and the
benchmark: a ``tokenrelay <command>`` or any other program."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from service.contract.settings import Settings

# Every child listens on loopback: a proxy from the environment would only be in the way.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tokenrelay_argv(command: str, *args: str) -> list[str]:
    """``tokenrelay <command> <args>`` under this interpreter (no console script needed)."""
    return [sys.executable, "-m", "service.cli", command, *args]


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process these settings (and ``extra`` on top)."""
    # Without the parent's own TOKENRELAY_* variables: the settings alone decide.
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


class ChildExited(RuntimeError):
    """A child is gone while it should run."""


@dataclass
class Child:
    """One child process. Its output goes to ``log_path`` (appended), else to ours. With a
    ``port``, it has started once ``ready_path`` answers there."""

    name: str
    argv: list[str]
    log_path: Path | None = None
    env: dict[str, str] | None = None
    cwd: Path | None = None
    port: int | None = None
    ready_path: str = "/healthz"
    # File descriptors the child inherits (e.g. a pipe it reports readiness on).
    pass_fds: tuple[int, ...] = ()
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its base URL on loopback."""
        assert self.port is not None, f"{self.name} has no port"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.popen is not None, f"{self.name} never started"
        return self.popen.pid

    def start(self, within: float = 20.0) -> Child:
        """Start it (again, after it exited: a new process), then wait for its port if any."""
        if self.log_path is None:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, pass_fds=self.pass_fds
            )
        else:
            with self.log_path.open("ab") as log:
                self.popen = subprocess.Popen(
                    self.argv,
                    env=self.env,
                    cwd=self.cwd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=self.pass_fds,
                )
        if self.port is not None:
            self._wait_ready(within)
        return self

    def _wait_ready(self, within: float) -> None:
        url = self.url + self.ready_path
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.check()
            try:
                with _DIRECT.open(url, timeout=1.0):
                    return
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code < 500:  # an answer all the same: the server is up
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not answer at {url} within {within} s")

    def alive(self) -> bool:
        """Whether it runs."""
        return self.popen is not None and self.popen.poll() is None

    def log_text(self) -> str:
        """What it has written so far ("" when it writes to our output)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text("utf-8", errors="replace")

    def check(self) -> None:
        """Raise :class:`ChildExited`, with the log's tail, if it has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            tail = self.log_text()[-2000:]
            message = f"{self.name} exited with {self.popen.returncode}"
            raise ChildExited(f"{message}:\n{tail}" if tail else message)

    def signal(self, signum: int) -> None:
        """Send ``signum`` if it runs."""
        if self.popen is not None and self.alive():
            self.popen.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as a crash."""
        if self.popen is not None and self.alive():
            self.popen.kill()
            self.popen.wait()

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for it to exit by itself; its exit code."""
        assert self.popen is not None, f"{self.name} never started"
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; its exit code (None if never started)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            # A stopped process (SIGSTOP) would not act on SIGTERM until continued.
            self.popen.send_signal(signal.SIGCONT)
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode
