"""``tokenrelay gateway --processes N``: N gateway processes on one port, one parent watching.

Each child is an ordinary ``tokenrelay gateway`` (its own feeds, lanes and sweeper: a job's
viewers in one process share one feed) that binds the port with ``SO_REUSEPORT``, so the
kernel spreads new connections over the children. The parent serves nothing and imports no
part of the gateway: it starts the children, waits until each listens (a byte on a pipe),
passes ``SIGTERM``/``SIGINT`` on to all of them (each drains as a single gateway does) and,
when a child dies on its own, starts a new one in its place. A child that keeps dying
(``MAX_RESTARTS`` within ``RESTART_WINDOW_SECONDS``) stops them all, exit code 1: a broken
configuration must not spin.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections import deque

from service.cli.embedded_redis import free_port
from service.cli.launcher import Child, tokenrelay_argv
from service.contract.settings import Settings

MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
READY_WITHIN_SECONDS = 30.0


def process_count(settings: Settings) -> int:
    """``GATEWAY_PROCESSES``, with 0 = one per core this process may run on."""
    if settings.gateway_processes > 0:
        return settings.gateway_processes
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _say(message: str) -> None:
    print(f"tokenrelay gateway: {message}", file=sys.stderr, flush=True)


class GatewayProcesses:
    """The children and the parent's loop. ``env`` is every child's environment."""

    def __init__(self, settings: Settings, count: int, env: dict[str, str]) -> None:
        self.settings = settings
        self.count = count
        self.env = env
        self.children: list[Child | None] = [None] * count
        self.restarts: deque[float] = deque()
        self.stopping = False

    def _start(self, slot: int) -> tuple[Child, int]:
        """Child ``slot`` started; the read end of its ready pipe."""
        read_fd, write_fd = os.pipe()
        argv = tokenrelay_argv(
            "gateway", "--processes", "1", "--reuse-port", "--ready-fd", str(write_fd)
        )
        child = Child(f"gateway-{slot}", argv, env=self.env, pass_fds=(write_fd,))
        try:
            child.start()
        finally:
            os.close(write_fd)
        self.children[slot] = child
        return child, read_fd

    def _wait_ready(self, pending: dict[int, Child], within: float) -> None:
        """Wait for one byte from each child's pipe (EOF = it exited before listening)."""
        deadline = time.monotonic() + within
        try:
            while pending and not self.stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(pending)} gateway process(es) did not listen")
                readable, _, _ = select.select(list(pending), [], [], min(left, 0.2))
                for fd in readable:
                    child = pending.pop(fd)
                    got = os.read(fd, 1)
                    os.close(fd)
                    if not got:
                        child.wait(5.0)
                        child.check()
        finally:
            for fd in pending:
                os.close(fd)

    def run(self) -> int:
        """Start every child, watch them until a signal; the exit code."""

        def on_signal(signum: int, frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        code = 0
        try:
            pending: dict[int, Child] = {}
            for slot in range(self.count):
                child, fd = self._start(slot)
                pending[fd] = child
            self._wait_ready(pending, READY_WITHIN_SECONDS)
            if not self.stopping:
                pids = ", ".join(str(c.pid) for c in self.children if c is not None)
                url = f"http://{self.settings.host}:{self.settings.port}"
                _say(f"{self.count} processes serving {url} (pids {pids})")
            while not self.stopping:
                code = self._watch_once()
                if code:
                    break
                time.sleep(0.1)
        except Exception as exc:  # a child that cannot start: stop the others, say why
            _say(f"{exc}; stopping")
            code = 1
        finally:
            self._stop_all()
        return code

    def _watch_once(self) -> int:
        """Replace any child that exited; 1 when they die too often."""
        for slot, child in enumerate(self.children):
            if child is None or child.alive() or self.stopping:
                continue
            now = time.monotonic()
            while self.restarts and now - self.restarts[0] > RESTART_WINDOW_SECONDS:
                self.restarts.popleft()
            if len(self.restarts) >= MAX_RESTARTS:
                _say(
                    f"gateway process {child.pid} exited; {MAX_RESTARTS} restarts within "
                    f"{RESTART_WINDOW_SECONDS:.0f} s already, stopping"
                )
                return 1
            self.restarts.append(now)
            new, fd = self._start(slot)
            os.close(fd)  # the others serve meanwhile; no need to wait for it here
            _say(f"gateway process {child.pid} exited; started {new.pid} in its place")
        return 0

    def _stop_all(self) -> None:
        """SIGTERM to every child at once, then wait (SIGKILL past the grace period)."""
        live = [c for c in self.children if c is not None]
        for child in live:
            child.signal(signal.SIGTERM)
        for child in live:
            child.stop(timeout=self.settings.shutdown_grace_seconds + 5)


def run_gateway_processes(settings: Settings, count: int) -> int:
    """Run ``count`` gateway processes on ``settings.port`` until SIGTERM/SIGINT."""
    if settings.port == 0:  # each child would get a port of its own
        settings = settings.model_copy(update={"port": free_port()})
    env = {k: v for k, v in os.environ.items() if k != "TOKENRELAY_GATEWAY_PROCESSES"}
    env["TOKENRELAY_PORT"] = str(settings.port)
    env["TOKENRELAY_HOST"] = settings.host
    if settings.redis_url is not None:  # found by the parent (a `tokenrelay up` note): pass it
        env["TOKENRELAY_REDIS_URL"] = settings.redis_url
    env["PYTHONUNBUFFERED"] = "1"
    return GatewayProcesses(settings, count, env).run()
