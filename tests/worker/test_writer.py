"""The attempt writer's flush window: at most one write per window, none held after a quiet one."""

from __future__ import annotations

import asyncio

from service.contract.keys import job_events_key, job_record_key
from service.contract.store.redis_client import AnyRedis
from service.contract.store.scripts import Scripts
from service.gateway.fanout.frames import entries_from_reply
from tests.conftest import make_settings
from worker.writer import AttemptWriter

# Longer than the test waits for the first token (0.5 s): a writer that held it for the window
# would fail the test rather than pass it slowly.
WINDOW_MS = 1000  # the most the setting allows


async def _token_texts(redis: AnyRedis, job_id: str) -> list[str]:
    return [entry.text for entry in entries_from_reply(await redis.xrange(job_events_key(job_id)))]


async def test_a_token_after_a_quiet_window_is_written_at_once_and_the_next_ones_merged(
    redis: AnyRedis, redis_url: str
) -> None:
    job_id = "j-flush-window"
    # A running job at attempt 1, as start_attempt.lua leaves it.
    await redis.hset(job_record_key(job_id), mapping={"status": "running", "attempt": 1, "seq": 0})
    settings = make_settings(redis_url=redis_url, token_flush_ms=WINDOW_MS)
    written = asyncio.Event()
    writer = AttemptWriter(
        redis, Scripts.register(redis), settings, job_id, 1, on_written=lambda _: written.set()
    )
    try:
        writer.add_token("def ")
        async with asyncio.timeout(0.5):
            await written.wait()
        assert await _token_texts(redis, job_id) == ["def "]
        # Inside the window now: these wait for it, merged into one write.
        writer.add_token("main")
        writer.add_token("():")
        await asyncio.sleep(0.2)
        assert await _token_texts(redis, job_id) == ["def "]
        await writer.flush()
        assert await _token_texts(redis, job_id) == ["def ", "main():"]
    finally:
        await writer.close()
