"""Which job is an AI SDK chat's latest generation: chat id → job id, in Redis.

The AI SDK names a conversation by the chat id its client chose; the resume route
(``GET .../{chatId}/stream``) and the stop route find the generation through this mapping, on
any gateway. It is scoped by the caller (the API key's id, ``anonymous`` with auth off), so two
apps that both name a chat ``support`` never meet, and a key reads and stops only its own
chats. Each submit points the chat at its new job (the newest generation is the active one).

The key (:func:`~service.contract.keys.ai_chat_key`) lives as long as the job's own keys do
while it runs (``max(RETENTION_SECONDS, UNFINISHED_JOB_SECONDS)`` from the submit); whether
the generation is still active is the job's record's to say, so a mapping to a job that ended
or expired is simply "no active generation".
"""

from __future__ import annotations

import hashlib
import logging

from service.contract.keys import ai_chat_key
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.contract.store.replication import wait_for_replicas
from service.contract.store.scripts import as_text

log = logging.getLogger(__name__)


def chat_key(owner: str, chat_id: str) -> str:
    """The Redis key of ``owner``'s chat ``chat_id`` (hashed: chat ids are the client's)."""
    return ai_chat_key(hashlib.sha256(f"{owner}\0{chat_id}".encode()).hexdigest())


async def set_active_job(
    redis: AnyRedis, settings: Settings, owner: str, chat_id: str, job_id: str
) -> None:
    """Point the chat at ``job_id``; with ``SUBMIT_WAIT_REPLICAS``, wait for it as a submit
    waits for its job (a shortfall is logged: the job itself was confirmed already)."""
    key = chat_key(owner, chat_id)
    ttl = max(settings.retention_seconds, settings.unfinished_job_seconds)
    await redis.set(key, job_id, ex=ttl)
    wanted = settings.submit_wait_replicas
    if wanted:
        acked = await wait_for_replicas(redis, [key], wanted, settings.submit_wait_timeout_ms)
        if acked < wanted:
            log.warning("chat mapping not replicated in time", extra={"job_id": job_id})


async def active_job(redis: AnyRedis, owner: str, chat_id: str) -> str | None:
    """The job of the chat's latest generation, if it has one (ended or not)."""
    value = await redis.get(chat_key(owner, chat_id))
    return as_text(value) if value is not None else None
