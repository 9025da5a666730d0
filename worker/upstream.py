"""Streaming client for OpenAI-compatible ``/chat/completions`` upstreams.

Every failure becomes an :class:`~service.contract.errors.UpstreamError` whose ``code``
says what happened and whose ``retryable`` says whether another attempt may help:

=======================  =========  ==============================================
code                     retryable  when
=======================  =========  ==============================================
``rate_limited``         yes        HTTP 429 (``retry_after`` from the headers)
``upstream_unavailable`` yes        HTTP 408, 409, 5xx
``upstream_bad_request`` no         HTTP 400, 422 and other 4xx, or a redirect
``upstream_auth``        no         HTTP 401, 403
``upstream_not_found``   no         HTTP 404 (usually an unknown model)
``upstream_connect``     yes        DNS, refused, reset before the answer (no: TLS
                                    certificate errors)
``connect_timeout``      yes        no TCP/TLS connection within ``connect`` s
``first_token_timeout``  yes        no text or finish within ``first_token`` s
``idle_timeout``         yes        no bytes for ``idle`` s after the first token
``total_timeout``        no         the call took more than ``total`` s
``stream_cut``           yes        connection ended before ``[DONE]``/finish
``upstream_error``       depends    an ``{"error": ...}`` object in the stream
``protocol_error``       yes        bytes that are not the expected event stream
=======================  =========  ==============================================
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final

import aiohttp
import orjson
from pydantic import SecretStr

from service.contract.errors import UpstreamError
from service.contract.settings import Settings
from service.contract.sse_decoder import SSEDecodeError, SSEDecoder, SSEEvent

_MAX_EVENT_CHARS: Final = 8 * 1024 * 1024
_MAX_ERROR_BODY: Final = 64 * 1024
_MAX_MESSAGE_CHARS: Final = 300
# After finish_reason only usage and [DONE] are still to come, normally within
# milliseconds; a provider that keeps the connection open must not hold a
# finished job for a whole idle timeout.
_AFTER_FINISH_WAIT: Final = 5.0
_RETRYABLE_ERROR_WORDS: Final = (
    "server",
    "overload",
    "unavailable",
    "timeout",
    "rate_limit",
    "internal",
    "capacity",
    "api_error",  # Anthropic-style name of an internal server error
)


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """Seconds allowed for connecting, the first token, silence mid-stream, the whole call."""

    connect: float
    first_token: float
    idle: float
    total: float

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamTimeouts:
        """The ``upstream_*_timeout`` settings."""
        return cls(
            connect=settings.upstream_connect_timeout,
            first_token=settings.upstream_first_token_timeout,
            idle=settings.upstream_idle_timeout,
            total=settings.upstream_total_timeout,
        )


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to ask the upstream; optional fields are sent only when set."""

    model: str
    messages: list[dict[str, str]]
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of generated text (never empty)."""

    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The generation ended normally; always the last event of a stream."""

    finish_reason: str


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Token usage as the provider reported it; at most one, right before ``Finished``."""

    usage: dict[str, Any]


UpstreamEvent = TextDelta | Finished | UsageReport


class UpstreamClient:
    """Calls one OpenAI-compatible API; the ``aiohttp`` session belongs to the caller."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: SecretStr | None,
        timeouts: UpstreamTimeouts,
    ) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._timeouts = timeouts
        # Per request, so that a session-wide default (aiohttp's is 300 s total)
        # never cuts a long generation; our own deadlines bound everything else.
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=timeouts.connect, sock_read=None
        )

    async def stream_chat(
        self, request: ChatRequest, *, headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Stream one chat completion: ``TextDelta``\\* then ``UsageReport``? then ``Finished``.

        Raises :class:`UpstreamError` on any failure. Closing the generator
        (``aclose``, or cancelling the task while it waits for the upstream)
        closes the connection, so the upstream sees the disconnect and stops
        generating; wrap it in ``contextlib.aclosing`` so that also happens when
        the consumer is cancelled between two events.
        """
        clock = _Clock(self._timeouts, asyncio.get_running_loop())
        response = await self._open(request, headers, clock)
        read_to_end = False
        try:
            state = _StreamState(redact=self._redact)
            decoder = SSEDecoder(max_event_chars=_MAX_EVENT_CHARS)
            while not state.done:
                chunk = await self._read(response, clock, finished=state.finish_reason is not None)
                if not chunk:
                    decoder.finish()
                    break
                for sse in _decode(decoder, chunk):
                    events = state.accept(sse)
                    if events or state.finish_reason is not None:
                        clock.first_token_seen = True
                    for event in events:
                        yield event
                    if state.done:
                        break
            read_to_end = True
            if state.finish_reason is None and not state.done:
                raise UpstreamError(
                    "upstream closed the stream before it finished",
                    code="stream_cut",
                    retryable=True,
                )
            if state.usage is not None:
                yield UsageReport(state.usage)
            # [DONE] is the protocol's normal end even from servers that omit
            # finish_reason, so such a generation ended normally.
            yield Finished(state.finish_reason or "stop")
        finally:
            if read_to_end:
                # Returns the connection to the pool, or closes it if bytes are left.
                response.release()
            else:
                response.close()

    async def _open(
        self, request: ChatRequest, headers: Mapping[str, str] | None, clock: _Clock
    ) -> aiohttp.ClientResponse:
        deadline, code = clock.next_deadline(finished=False)
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                response = await self._session.post(
                    self._url,
                    data=orjson.dumps(_payload(request)),
                    headers=self._headers(headers),
                    timeout=self._client_timeout,
                    allow_redirects=False,
                )
        except TimeoutError as exc:
            if timeout.expired():
                raise clock.timeout_error(code) from None
            # Our own deadline did not fire, so this is aiohttp's sock_connect.
            raise UpstreamError(
                f"no connection to the upstream within {self._timeouts.connect:g} s",
                code="connect_timeout",
                retryable=True,
            ) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise UpstreamError(
                f"upstream TLS certificate rejected: {exc}",
                code="upstream_connect",
                retryable=False,
            ) from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise UpstreamError(
                f"cannot reach the upstream: {type(exc).__name__}: {exc}",
                code="upstream_connect",
                retryable=True,
            ) from exc
        except aiohttp.ClientError as exc:
            # Not HTTP at all (a malformed status line or headers).
            raise UpstreamError(
                f"upstream answer is not valid HTTP: {type(exc).__name__}",
                code="protocol_error",
                retryable=True,
            ) from exc
        if not 200 <= response.status < 300:
            raise await self._http_error(response)
        if response.content_type == "application/json":
            # Some servers answer 200 with a JSON error instead of a stream.
            raise await self._json_instead_of_stream(response)
        return response

    async def _read(
        self, response: aiohttp.ClientResponse, clock: _Clock, *, finished: bool
    ) -> bytes:
        """The next bytes of the body; ``b""`` at its end."""
        deadline, code = clock.next_deadline(finished=finished)
        if deadline <= clock.now():
            # The deadline passed while the consumer held an event; without this
            # check, bytes already buffered would be returned without suspending
            # and so without the timeout ever firing.
            if finished:
                return b""
            raise clock.timeout_error(code)
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                return await response.content.readany()
        except TimeoutError:
            if not timeout.expired():
                raise
            if finished:
                return b""
            raise clock.timeout_error(code) from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, OSError) as exc:
            if finished:
                return b""
            raise UpstreamError(
                f"upstream connection ended mid-stream: {type(exc).__name__}",
                code="stream_cut",
                retryable=True,
            ) from exc

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        if extra:
            headers.update(extra)
        return headers

    def _redact(self, text: str) -> str:
        """Providers may echo the key in error messages; it must never reach a log or a viewer."""
        if self._api_key is not None:
            secret = self._api_key.get_secret_value()
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    async def _http_error(self, response: aiohttp.ClientResponse) -> UpstreamError:
        status = response.status
        body = await _read_error_body(response)
        detail = _provider_message(body)
        message = f"upstream answered HTTP {status}"
        if detail:
            message += f": {_shorten(self._redact(detail))}"
        retry_after = _retry_after(response.headers)
        if status == 429:
            return UpstreamError(
                message, code="rate_limited", retryable=True, retry_after=retry_after
            )
        if status in (408, 409) or status >= 500:
            return UpstreamError(
                message, code="upstream_unavailable", retryable=True, retry_after=retry_after
            )
        if status in (401, 403):
            code = "upstream_auth"
        elif status == 404:
            code = "upstream_not_found"
        else:
            code = "upstream_bad_request"
        return UpstreamError(message, code=code, retryable=False)

    async def _json_instead_of_stream(self, response: aiohttp.ClientResponse) -> UpstreamError:
        body = await _read_error_body(response)
        detail = _provider_message(body) or "a JSON body instead of an event stream"
        return UpstreamError(
            f"upstream answered {_shorten(self._redact(detail))}",
            code="upstream_error",
            retryable=False,
        )


class _Clock:
    """The deadlines of one call, and which timeout a passed deadline means."""

    def __init__(self, timeouts: UpstreamTimeouts, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timeouts = timeouts
        started = loop.time()
        self._total = started + timeouts.total
        self._first_token = started + timeouts.first_token
        self.first_token_seen = False

    def now(self) -> float:
        """The event loop's clock, which ``asyncio.timeout_at`` deadlines use."""
        return self._loop.time()

    def next_deadline(self, *, finished: bool) -> tuple[float, str]:
        """When the next wait must end, and the error code if it does not."""
        now = self._loop.time()
        if finished:
            deadline, code = now + min(self._timeouts.idle, _AFTER_FINISH_WAIT), "idle_timeout"
        elif self.first_token_seen:
            deadline, code = now + self._timeouts.idle, "idle_timeout"
        else:
            deadline, code = self._first_token, "first_token_timeout"
        if self._total <= deadline:
            return self._total, "total_timeout"
        return deadline, code

    def timeout_error(self, code: str) -> UpstreamError:
        seconds = {
            "first_token_timeout": self._timeouts.first_token,
            "idle_timeout": self._timeouts.idle,
            "total_timeout": self._timeouts.total,
        }[code]
        what = {
            "first_token_timeout": "no output from the upstream within",
            "idle_timeout": "upstream sent nothing for",
            "total_timeout": "upstream call took longer than",
        }[code]
        return UpstreamError(f"{what} {seconds:g} s", code=code, retryable=code != "total_timeout")


@dataclass(slots=True)
class _StreamState:
    """What one stream has said so far; turns decoded SSE events into upstream events."""

    redact: Callable[[str], str]
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    done: bool = False

    def accept(self, sse: SSEEvent) -> list[UpstreamEvent]:
        """The text deltas in one SSE event; records finish, usage and [DONE]."""
        if sse.event not in ("message", "error") or not sse.data:
            return []
        if sse.data.strip() == "[DONE]":
            self.done = True
            return []
        try:
            chunk = orjson.loads(sse.data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"upstream sent an event that is not JSON: {exc}",
                code="protocol_error",
                retryable=True,
            ) from exc
        if not isinstance(chunk, dict):
            raise UpstreamError(
                "upstream sent an event that is not a JSON object",
                code="protocol_error",
                retryable=True,
            )
        error = chunk.get("error")
        if error:
            raise _stream_error(error, self.redact)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            # Some providers repeat usage in every chunk; the last one is the total.
            self.usage = usage
        return self._deltas(chunk.get("choices"))

    def _deltas(self, choices: object) -> list[UpstreamEvent]:
        if not isinstance(choices, list):
            return []
        deltas: list[UpstreamEvent] = []
        for choice in choices:
            # We never ask for n > 1; other choices would interleave unrelated text.
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str) and content:
                    deltas.append(TextDelta(content))
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self.finish_reason = reason
        return deltas


def _payload(request: ChatRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.max_tokens is not None:
        payload["max_tokens"] = request.max_tokens
    if request.stop is not None:
        payload["stop"] = request.stop
    return payload


def _decode(decoder: SSEDecoder, chunk: bytes) -> list[SSEEvent]:
    try:
        return decoder.feed(chunk)
    except SSEDecodeError as exc:
        raise UpstreamError(str(exc), code="protocol_error", retryable=True) from exc


def _stream_error(error: object, redact: Callable[[str], str]) -> UpstreamError:
    """An ``{"error": ...}`` object in the stream; retry only what the server side caused."""
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("type") or error.get("code") or error)
        labels = [error.get(key) for key in ("type", "code", "status")]
    else:
        # A bare string (Ollama style) is both the message and the only label.
        message = str(error)
        labels = [message]
    retryable = any(_is_server_side(label) for label in labels)
    return UpstreamError(
        f"upstream error mid-stream: {_shorten(redact(message))}",
        code="upstream_error",
        retryable=retryable,
    )


def _is_server_side(label: object) -> bool:
    if isinstance(label, bool):
        return False
    if isinstance(label, int):
        return label >= 500 or label in (408, 429)
    if isinstance(label, str):
        if label.isdigit():
            return _is_server_side(int(label))
        lowered = label.lower()
        return any(word in lowered for word in _RETRYABLE_ERROR_WORDS)
    return False


async def _read_error_body(response: aiohttp.ClientResponse) -> bytes:
    """Up to ``_MAX_ERROR_BODY`` bytes of an error answer, best effort; releases the response."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(5.0):
            while size < _MAX_ERROR_BODY:
                chunk = await response.content.read(_MAX_ERROR_BODY - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass  # the status alone says enough; the body only adds detail
    finally:
        response.release()
    return b"".join(chunks)


def _provider_message(body: bytes) -> str:
    """The provider's own error message from an error body, if it has one."""
    if not body:
        return ""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace").strip()
    if isinstance(parsed, dict):
        for key in ("error", "message", "detail"):
            value = parsed.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value
            if value:
                return value if isinstance(value, str) else orjson.dumps(value).decode()
    return orjson.dumps(parsed).decode()


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_MESSAGE_CHARS:
        return text
    return text[: _MAX_MESSAGE_CHARS - 1] + "…"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP-date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            seconds = _seconds(float(milliseconds) / 1000.0)
            if seconds is not None:
                return seconds
        except ValueError:
            pass  # fall back to Retry-After
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP-dates are always GMT
    return _seconds(when.timestamp() - time.time())


def _seconds(value: float) -> float | None:
    """A usable wait: never negative, and nothing for NaN or infinity."""
    if not math.isfinite(value):
        return None
    return max(0.0, value)
