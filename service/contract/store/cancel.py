"""Cancelling a job from outside its worker: the one path for the HTTP API, the OpenAI
Responses endpoint and the admin CLI."""

from __future__ import annotations

import orjson

from service.contract.errors import Conflict
from service.contract.events import CANCELLED
from service.contract.jobs import now_ms
from service.contract.keys import job_keys, job_raw_output_key
from service.contract.settings import Settings
from service.contract.store.job_reader import missing_job
from service.contract.store.redis_client import AnyRedis
from service.contract.store.scripts import Scripts, as_text


async def cancel_job(
    redis: AnyRedis, scripts: Scripts, settings: Settings, job_id: str, reason: str | None = None
) -> bool:
    """Cancel ``job_id``: viewers get ``cancelled`` at once, the worker notices the fence.
    ``reason`` (``abandoned``, ``replaced``) goes into the event when a policy cancels it.

    True when this call cancelled it, False when it was cancelled already (cancel is
    idempotent). :class:`NotFound` for no such job, :class:`Conflict` for a job that ended
    otherwise.
    """
    reply = await scripts.cancel_job(
        keys=[*job_keys(job_id), job_raw_output_key(job_id)],
        args=[
            now_ms(),
            settings.retention_seconds,
            orjson.dumps({"reason": reason} if reason else {}),
        ],
        client=redis,
    )
    outcome = as_text(reply[0])
    if outcome == "missing":
        raise await missing_job(redis, settings, job_id)
    if outcome == "terminal":
        status = as_text(reply[1])
        if status != CANCELLED:
            raise Conflict(f"the job already ended ({status})", code="job_finished")
        return False
    return True
