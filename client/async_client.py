"""The asyncio client of tokenrelay's native API."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

from client.backoff import Backoff
from client.errors import APIError
from client.models import JobInfo, SubmittedJob
from service.contract.event_data import JobEvent, is_terminal, parse_event
from service.contract.jobs import JobRequest
from service.contract.sse_decoder import SSEDecodeError, SSEDecoder

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"

# Answers after which reconnecting may help: the gateway restarts, sheds load, or Redis blinks.
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Retry(Exception):
    """This connection ended without the job's end; reconnect."""


class TokenRelayClient:
    """Submit, watch, await and cancel jobs.

    ``watch()`` reconnects on its own (``Last-Event-ID``, jittered backoff): its caller sees
    each event once, in order, across gateway restarts and network blips.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        backoff: Backoff | None = None,
        read_timeout: float = 60.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._backoff = backoff or Backoff()
        self._read_timeout = read_timeout
        self._session = session
        self._owns_session = session is None
        self._tokens: dict[str, str] = {}
        self._cancel_tokens: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session (if the client made it)."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def submit(
        self,
        request: JobRequest | None = None,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> SubmittedJob:
        """Submit a job: a :class:`JobRequest`, or its fields (``prompt="…", language="go"``)."""
        job_request = request if request is not None else JobRequest.model_validate(fields)
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        body = job_request.model_dump_json(exclude_none=True)
        data = await self._call("POST", "/v1/jobs", data=body, headers=headers)
        job = SubmittedJob.model_validate(data)
        self._tokens[job.id] = job.viewer_token
        if job.cancel_token is not None:
            self._cancel_tokens[job.id] = job.cancel_token
        return job

    async def job(self, job_id: str, *, token: str | None = None) -> JobInfo:
        """The job's record and its output so far."""
        data = await self._call("GET", f"/v1/jobs/{job_id}", params=self._token(job_id, token))
        return JobInfo.model_validate(data)

    async def cancel(self, job_id: str, *, cancel_token: str | None = None) -> None:
        """Cancel the job: with its cancel token (kept from this client's own submit, or
        given), or as the API key that submitted it, or with an admin key."""
        token = cancel_token or self._cancel_tokens.get(job_id)
        headers = {"X-Cancel-Token": token} if token else None
        await self._call("DELETE", f"/v1/jobs/{job_id}", headers=headers)

    async def result(self, job_id: str, *, token: str | None = None) -> JobInfo:
        """Wait for the job's end; its final record (``output`` is the final text)."""
        info = await self.job(job_id, token=token)
        if info.ended:
            return info
        async for _event in self.watch(job_id, token=token, after=info.last_event_id):
            pass
        return await self.job(job_id, token=token)

    async def watch(
        self,
        job_id: str,
        *,
        token: str | None = None,
        after: str | None = None,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> AsyncIterator[JobEvent]:
        """The job's events after ``after`` (default: from its first), until its terminal one.

        Connection failures, gateway restarts and streams that end early are retried from the
        last event seen; each event is yielded once (``on_reconnect`` hears why, e.g. for a
        status line). Raises :class:`APIError` for a refusal
        (unknown job, bad token) and :class:`~client.errors.ConnectionLost` when no gateway
        answers for the backoff's limit.
        """
        position = after
        retrying = self._backoff.start()
        while True:
            try:
                async with self._stream(job_id, token, position) as events:
                    if events is None:  # 204: the job ended at or before our position
                        return
                    retrying.succeeded()
                    async with contextlib.aclosing(events):
                        async for event in events:
                            position = event.id
                            yield event
                            if is_terminal(event):
                                return
                reason = "the stream ended before the job"
            except (aiohttp.ClientError, OSError, TimeoutError, SSEDecodeError, _Retry) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            log.info("watch reconnects", extra={"job_id": job_id, "reason": reason})
            if on_reconnect is not None:
                on_reconnect(reason)
            await retrying.wait(reason)

    @contextlib.asynccontextmanager
    async def _stream(
        self, job_id: str, token: str | None, position: str | None
    ) -> AsyncIterator[AsyncGenerator[JobEvent, None] | None]:
        headers = self._auth()
        if position is not None:
            headers["Last-Event-ID"] = position
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self._read_timeout)
        url = f"{self.base_url}/v1/jobs/{job_id}/events"
        params = self._token(job_id, token)
        async with self._http().get(url, headers=headers, params=params, timeout=timeout) as reply:
            if reply.status == 204:
                yield None
                return
            if reply.status in _RETRYABLE:
                raise _Retry(f"HTTP {reply.status}")
            if reply.status != 200:
                raise await _api_error(reply)
            yield _events(reply)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        data: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        all_headers = {**self._auth(), **(headers or {})}
        timeout = aiohttp.ClientTimeout(total=self._read_timeout)
        async with self._http().request(
            method,
            self.base_url + path,
            data=data,
            headers=all_headers,
            params=params,
            timeout=timeout,
        ) as reply:
            if reply.status >= 400:
                raise await _api_error(reply)
            return orjson.loads(await reply.read())

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _token(self, job_id: str, token: str | None) -> dict[str, str]:
        token = token or self._tokens.get(job_id)
        return {"token": token} if token else {}


async def _events(reply: aiohttp.ClientResponse) -> AsyncGenerator[JobEvent, None]:
    decoder = SSEDecoder()
    async for chunk in reply.content.iter_any():
        for sse in decoder.feed(chunk):
            if sse.id is None or sse.event == "message":
                continue  # not an event of the job stream
            try:
                event = parse_event(sse.id, sse.event, sse.data)
            except ValueError:
                log.warning(
                    "skipping an event this client does not know", extra={"event": sse.event}
                )
                continue
            yield event


async def _api_error(reply: aiohttp.ClientResponse) -> APIError:
    body = await reply.read()
    try:
        error = orjson.loads(body)["error"]
        return APIError(reply.status, str(error.get("code")), str(error.get("message")))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return APIError(reply.status, "http_error", body[:200].decode("utf-8", "replace"))
