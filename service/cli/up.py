"""``tokenrelay up``: the whole service on one machine, for a demo or development.

Starts (as children in one process group) a private Redis unless one is configured, the
simulated upstream unless an upstream key is configured, one gateway and one worker.
Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from service.cli import private_redis
from service.cli.embedded_redis import RedisServer, free_port
from service.cli.launcher import Child, ChildExited, tokenrelay_argv
from service.contract.settings import Settings


def run_up(settings: Settings, env_overrides: dict[str, str]) -> int:
    """Run everything until Ctrl-C or until a child dies; returns the exit code."""
    env = {**os.environ, **env_overrides}
    redis: RedisServer | None = None
    children: list[Child] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    def start(name: str, command: str, *args: str) -> None:
        # A copy of the environment as it is now: later additions are for later children.
        children.append(Child(name, tokenrelay_argv(command, *args), env=dict(env)).start())

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        redis_note = settings.redis_url
        if settings.redis_url is None:
            redis = RedisServer(data_dir=private_redis.STATE_DIR / "redis")
            redis.start()
            env["TOKENRELAY_REDIS_URL"] = redis.url
            private_redis.record(redis.url)
            redis_note = f"{redis.url} (private, data in {redis.data_dir})"
        upstream_note = f"{settings.upstream_url} model {settings.model}"
        if settings.upstream_api_key is None:
            port = free_port()
            # It answers as chat models do (prose, fenced blocks), so the page shows the
            # code extractor at work: clean code, its language detected.
            start("simulator", "simulate-upstream", "--port", str(port), "--fences", "2")
            env["TOKENRELAY_UPSTREAM_URL"] = f"http://127.0.0.1:{port}/v1"
            env["TOKENRELAY_UPSTREAM_SIMULATED"] = "true"  # /v1/meta; the page's badge
            upstream_note = f"SIMULATED upstream at http://127.0.0.1:{port}/v1 (no API key set)"
        start("gateway", "gateway")
        start("worker", "worker")
        _banner(settings, redis_note or "", upstream_note)
        while not stopping:
            for child in children:
                try:
                    child.check()
                except ChildExited as exc:
                    print(f"tokenrelay up: {exc}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.2)
    finally:
        # SIGTERM to all first, so that they shut down side by side, not one after the other.
        for child in reversed(children):
            child.signal(signal.SIGTERM)
        for child in children:
            child.stop(timeout=settings.shutdown_grace_seconds + 5)
        if redis is not None:
            private_redis.forget(redis.url)
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
