"""The Lua scripts behind every atomic multi-step write: the ``*.lua`` files beside this module,
and the one place that loads them."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.commands.core import AsyncScript

from service.contract.store.redis_client import AnyRedis


def _source(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.lua").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Scripts:
    """Registered scripts; each runs EVALSHA and falls back to EVAL after a Redis restart."""

    create_job: AsyncScript
    start_attempt: AsyncScript
    append_event: AsyncScript
    cancel_job: AsyncScript
    renew_lease: AsyncScript
    requeue_job: AsyncScript
    # Durable Streams (service/gateway/durable_streams/), one hash slot per stream.
    ds_create: AsyncScript
    ds_append: AsyncScript
    ds_open: AsyncScript
    ds_delete: AsyncScript
    ds_fork_ref: AsyncScript

    @classmethod
    def register(cls, redis: AnyRedis) -> Scripts:
        """Register every script on a client (no round trip until first use)."""
        return cls(
            create_job=redis.register_script(_source("create_job")),
            start_attempt=redis.register_script(_source("start_attempt")),
            append_event=redis.register_script(_source("append_event")),
            cancel_job=redis.register_script(_source("cancel_job")),
            renew_lease=redis.register_script(_source("renew_lease")),
            requeue_job=redis.register_script(_source("requeue_job")),
            ds_create=redis.register_script(_source("ds_create")),
            ds_append=redis.register_script(_source("ds_append")),
            ds_open=redis.register_script(_source("ds_open")),
            ds_delete=redis.register_script(_source("ds_delete")),
            ds_fork_ref=redis.register_script(_source("ds_fork_ref")),
        )


def as_text(value: Any) -> str:
    """Redis replies are bytes unless decoded; scripts' replies always go through here."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)
