"""Fenced writes of one attempt's events, with tokens merged over a short window.

Merging cuts Redis commands per token (one XADD per window instead of per token) while the
text stays exact; every write carries (attempt, seq) so the script applies it at most once
and only while the attempt is current.

A code-only job's tokens go through the attempt's :class:`CodeExtractor` first: what it
releases is written as ``token`` events, and the upstream's text, as received, is appended to
the job's raw output in the same script call (so both move with the attempt's fence). The
block's language, once known, is a ``status`` event written before any of its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import Any

import orjson

from service.contract.errors import Fenced, JobCancelled, WritesLost
from service.contract.events import RUNNING, STATUS, TERMINAL, TOKEN
from service.contract.jobs import now_ms
from service.contract.keys import job_keys, job_raw_output_key
from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.contract.store.scripts import Scripts, as_text
from worker.code_extractor import CodeExtractor

log = logging.getLogger(__name__)


class AttemptWriter:
    """Writes the events of one attempt of one job; all writes go through one lock in order."""

    def __init__(
        self,
        redis: AnyRedis,
        scripts: Scripts,
        settings: Settings,
        job_id: str,
        attempt: int,
        *,
        on_written: Callable[[str], None] | None = None,
        extractor: CodeExtractor | None = None,
    ) -> None:
        self._redis = redis
        self._on_written = on_written  # told the type of every event Redis took
        self._scripts = scripts
        self._settings = settings
        self._keys = job_keys(job_id)
        # A code-only job: tokens pass the extractor; the upstream's text goes to raw output.
        self._extractor = extractor
        if extractor is not None:
            self._keys.append(job_raw_output_key(job_id))
        self._raw: list[str] = []  # upstream text not written to the raw output yet
        self._language_seen = False
        self._language: str | None = None  # the detected language, until its status is written
        self._extracting = extractor is not None  # until the end of the text was taken
        self.job_id = job_id
        self.attempt = attempt
        self._seq = 0
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._window = settings.token_flush_ms / 1000
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False  # the flush loop's own stop signal, should its cancel be lost
        self.failure: BaseException | None = None
        self.chars = 0
        self.pieces = 0

    def add_token(self, text: str) -> None:
        """Queue token text; it is written within the flush window. Raises if writing failed."""
        if self.failure is not None:
            raise self.failure
        extractor = self._extractor
        if extractor is None:
            self._pending.append(text)
        else:
            self._raw.append(text)
            code = extractor.feed(text)
            self._note_language()
            if code:
                self._pending.append(code)
        self.chars += len(text)
        self.pieces += 1
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name=f"flush-{self.job_id}")
        self._wake.set()

    async def flush(self) -> None:
        """Write every queued token now."""
        async with self._lock:
            await self._write_pending()

    def end_of_text(self) -> None:
        """The upstream's text ended: queue what the extractor still held, if its rules keep
        it (once; a no-op for a raw job)."""
        if self._extractor is None or not self._extracting:
            return
        held = self._extractor.finish()
        self._note_language()
        self._extracting = False
        if held:
            self._pending.append(held)

    async def finish(self, kind: str, data: dict[str, Any], record: dict[str, Any]) -> None:
        """Flush, then write the terminal event ``kind`` and the record fields it sets (with
        a code-only job's ``blocks_dropped``)."""
        assert kind in TERMINAL
        await self.close()
        self.end_of_text()
        if self._extractor is not None:
            record = {**record, "blocks_dropped": self._extractor.blocks_dropped}
        async with self._lock:
            await self._write_pending()
            await self._append(kind, orjson.dumps(data).decode(), "", record)

    async def close(self) -> None:
        """Stop the flush loop (pending tokens stay queued for :meth:`flush`)."""
        if self._flusher is not None:
            self._closed = True
            self._wake.set()
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self.failure is not None:
            raise self.failure

    async def _flush_loop(self) -> None:
        # At most one write per window, but a token that comes after a quiet window is
        # written at once: slow streams pay no merge delay, fast ones are merged as before.
        loop = asyncio.get_running_loop()
        last_write = -math.inf
        while not self._closed:
            await self._wake.wait()
            if self._closed:
                return
            wait = last_write + self._window - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._wake.clear()
            last_write = loop.time()
            try:
                async with self._lock:
                    await self._write_pending()
            except Exception as exc:
                # The attempt's reading loop raises it at its next token (a fence, a lost
                # write, a Redis failure, or a bug: the attempt decides which it retries).
                self.failure = exc
                return

    def _note_language(self) -> None:
        # The language comes with the opening fence, before the extractor releases any of the
        # block's code: its status event is written ahead of every token of this attempt.
        assert self._extractor is not None
        if not self._language_seen and self._extractor.language is not None:
            self._language_seen = True
            self._language = self._extractor.language

    async def _write_pending(self) -> None:
        raw = "".join(self._raw)
        self._raw.clear()
        if self._language is not None:
            language, self._language = self._language, None
            status = {"status": RUNNING, "attempt": self.attempt, "detected_language": language}
            record = {"detected_language": language}
            await self._append(STATUS, orjson.dumps(status).decode(), "", record, raw)
            raw = ""
        if not self._pending and not raw:
            return
        text = "".join(self._pending)
        self._pending.clear()
        data = orjson.dumps({"text": text}).decode() if text else ""
        await self._append(TOKEN, data, text, {}, raw)

    async def _append(
        self, kind: str, data: str, text: str, record: dict[str, Any], raw: str = ""
    ) -> None:
        self._seq += 1
        extra = orjson.dumps(
            {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in record.items()}
        ).decode()
        reply = await self._scripts.append_event(
            keys=self._keys,
            args=[
                self.attempt,
                self._seq,
                kind,
                data,
                text,
                now_ms(),
                self._settings.retention_seconds,
                extra,
                raw,
            ],
            client=self._redis,
        )
        outcome = as_text(reply[0])
        if outcome in ("ok", "dup"):
            # A write of raw text alone adds no entry ({'ok'} without an id).
            if outcome == "ok" and len(reply) > 1 and self._on_written is not None:
                self._on_written(kind)
            return
        if outcome == "ended":
            raise JobCancelled(f"job {self.job_id} ended ({as_text(reply[1])}) while running")
        if outcome == "lost":
            raise WritesLost(
                f"job {self.job_id} attempt {self.attempt}: AnyRedis holds write "
                f"{as_text(reply[1])}, not {self._seq - 1}"
            )
        raise Fenced(f"job {self.job_id}: attempt {self.attempt} is no longer current")
