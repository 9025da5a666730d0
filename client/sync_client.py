"""The blocking client: the asyncio client run on a private event loop.

Use it from ordinary (non-async) code; inside a running event loop use
:class:`~client.async_client.TokenRelayClient`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Self

from client.async_client import DEFAULT_URL, TokenRelayClient
from client.backoff import Backoff
from client.models import JobInfo, SubmittedJob
from service.contract.event_data import JobEvent
from service.contract.jobs import JobRequest


class SyncTokenRelayClient:
    """Blocking ``submit()``, ``watch()``, ``result()``, ``cancel()``, ``job()``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        backoff: Backoff | None = None,
        read_timeout: float = 60.0,
    ) -> None:
        self._runner = asyncio.Runner()
        self._client = TokenRelayClient(
            base_url, api_key=api_key, backoff=backoff, read_timeout=read_timeout
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session and the private event loop."""
        self._runner.run(self._client.aclose())
        self._runner.close()

    def submit(
        self,
        request: JobRequest | None = None,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> SubmittedJob:
        """See :meth:`TokenRelayClient.submit`."""
        return self._runner.run(
            self._client.submit(request, idempotency_key=idempotency_key, **fields)
        )

    def job(self, job_id: str, *, token: str | None = None) -> JobInfo:
        """See :meth:`TokenRelayClient.job`."""
        return self._runner.run(self._client.job(job_id, token=token))

    def cancel(self, job_id: str, *, cancel_token: str | None = None) -> None:
        """See :meth:`TokenRelayClient.cancel`."""
        self._runner.run(self._client.cancel(job_id, cancel_token=cancel_token))

    def result(self, job_id: str, *, token: str | None = None) -> JobInfo:
        """See :meth:`TokenRelayClient.result`."""
        return self._runner.run(self._client.result(job_id, token=token))

    def watch(
        self, job_id: str, *, token: str | None = None, after: str | None = None
    ) -> Iterator[JobEvent]:
        """See :meth:`TokenRelayClient.watch`; stop iterating to leave the stream."""
        events = self._client.watch(job_id, token=token, after=after)
        try:
            while True:
                try:
                    yield self._runner.run(_next(events))
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(_close(events))


async def _next(events: AsyncIterator[JobEvent]) -> JobEvent:
    return await anext(events)


async def _close(events: AsyncIterator[JobEvent]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
