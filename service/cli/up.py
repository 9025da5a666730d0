"""``tokenrelay up``: the whole service on one machine, for a demo or development.

Starts (as children in one process group) a private Redis unless one is configured, the
simulated upstream unless an upstream key is configured, one gateway and one worker.
Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from service.cli.embedded_redis import RedisServer, free_port
from service.contract.settings import Settings

STATE_DIR = Path(".tokenrelay")


def _child(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=env)


def run_up(settings: Settings, env_overrides: dict[str, str]) -> int:
    """Run everything until Ctrl-C or until a child dies; returns the exit code."""
    env = {**os.environ, **env_overrides}
    redis: RedisServer | None = None
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        redis_note = settings.redis_url
        if settings.redis_url is None:
            redis = RedisServer(data_dir=STATE_DIR / "redis")
            redis.start()
            env["TOKENRELAY_REDIS_URL"] = redis.url
            redis_note = f"{redis.url} (private, data in {redis.data_dir})"
        upstream_note = f"{settings.upstream_url} model {settings.model}"
        if settings.upstream_api_key is None:
            port = free_port()
            children.append(("simulator", _child(["simulate-upstream", "--port", str(port)], env)))
            env["TOKENRELAY_UPSTREAM_URL"] = f"http://127.0.0.1:{port}/v1"
            upstream_note = f"SIMULATED upstream at http://127.0.0.1:{port}/v1 (no API key set)"
        children.append(("gateway", _child(["gateway"], env)))
        children.append(("worker", _child(["worker"], env)))
        _banner(settings, redis_note or "", upstream_note)
        while not stopping:
            for name, child in children:
                if child.poll() is not None:
                    print(
                        f"tokenrelay up: {name} exited with {child.returncode}; stopping",
                        file=sys.stderr,
                    )
                    stopping = True
            time.sleep(0.2)
    finally:
        for _, child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for _, child in children:
            try:
                child.wait(timeout=settings.shutdown_grace_seconds + 5)
            except subprocess.TimeoutExpired:
                child.kill()
        if redis is not None:
            redis.stop()
    return 0


def _banner(settings: Settings, redis_note: str, upstream_note: str) -> None:
    url = f"http://{settings.host}:{settings.port}"
    auth = (
        "ON (API key required to submit)"
        if settings.auth_enabled
        else "OFF (open to anyone who can reach the port)"
    )
    lines = [
        "",
        "  tokenrelay is up",
        f"  page      {url}/",
        f"  API       {url}/v1/jobs",
        f"  redis     {redis_note}",
        f"  upstream  {upstream_note}",
        f"  auth      {auth}",
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
