"""Settings for a command: the environment, ``.env`` and the command's flags, with a bad value
reported as one clear message."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from service.cli import private_redis
from service.contract.settings import Settings

# Flags that override settings: flag name -> settings field.
_OVERRIDES = {
    "host": "host",
    "port": "port",
    "redis_url": "redis_url",
    "upstream_url": "upstream_url",
    "model": "model",
    "concurrency": "worker_concurrency",
    "processes": "gateway_processes",
}


def add_setting_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    helps = {
        "host": "address to listen on (TOKENRELAY_HOST)",
        "port": "port to listen on (TOKENRELAY_PORT)",
        "redis_url": "Redis URL (TOKENRELAY_REDIS_URL)",
        "upstream_url": "upstream base URL, e.g. https://api.openai.com/v1",
        "model": "default model (TOKENRELAY_MODEL)",
        "concurrency": "jobs run at once (TOKENRELAY_WORKER_CONCURRENCY)",
        "processes": (
            "gateway processes on the one port, 0 = one per core (TOKENRELAY_GATEWAY_PROCESSES)"
        ),
    }
    for name in names:
        kind: type = int if name in ("port", "concurrency", "processes") else str
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=helps[name])


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    return {
        field: getattr(args, flag)
        for flag, field in _OVERRIDES.items()
        if getattr(args, flag, None) is not None
    }


def load_settings(overrides: dict[str, Any], *, find_private_redis: bool = True) -> Settings:
    """Settings from the environment, ``.env`` and flags; a bad value is a clear message.

    Without a configured Redis, the one a ``tokenrelay up`` in this folder runs is used.
    """
    try:
        settings = Settings(**overrides)
        if settings.redis_url is None and find_private_redis:
            url = private_redis.recorded()
            if url is not None:
                settings = Settings(**{**overrides, "redis_url": url})
        return settings
    except ValidationError as exc:
        lines = ["tokenrelay: invalid configuration:"]
        for error in exc.errors(include_url=False, include_input=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["loc"]:
                name = "TOKENRELAY_" + "_".join(str(p) for p in error["loc"]).upper()
                message = f"{name}: {message}"
            lines.append(f"  {message}")
        raise SystemExit("\n".join(lines)) from None
