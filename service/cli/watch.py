"""``tokenrelay submit`` and ``tokenrelay watch``: a job's code, live, in a terminal or a pipe.

The watcher is a client of the native API (:mod:`client`): it resumes with ``Last-Event-ID``
across gateway restarts and network blips, shows the code highlighted on a terminal and as
exact bytes in a pipe, and a status line on a terminal's stderr. It returns a
:class:`WatchOutcome`; ``service/cli/main.py`` turns that into the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import aiohttp

from client import APIError, Backoff, ConnectionLost, TokenRelayClient
from service.cli.code_highlight import Highlighter
from service.cli.terminal_view import PipeView, Progress, TerminalView, View
from service.contract.event_data import (
    CancelledEvent,
    DoneEvent,
    FailedEvent,
    ResetEvent,
    StatusEvent,
    TokenEvent,
)
from service.contract.events import CANCELLED, DONE, FAILED
from service.contract.jobs import JobRequest
from service.contract.settings import Settings

FIRST_POLL_SECONDS = 0.3
POLL_SECONDS = 2.0
T = TypeVar("T")


class WatchOutcome(Enum):
    """How a submit or watch ended."""

    SUBMITTED = "submitted"  # submit without --watch
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # the gateway refused the request (bad input, auth, unknown job)
    UNREACHABLE = "unreachable"  # no gateway answered within the reconnect limit
    DIVERGED = "diverged"  # a retried attempt changed text already written into the pipe


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Where the gateway is and how to show the job."""

    url: str
    api_key: str | None
    color: str  # auto | always | never
    give_up_after: float


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every client command takes."""
    parser.add_argument("--url", help="the gateway (default: http://TOKENRELAY_HOST:PORT)")
    parser.add_argument("--api-key", help="API key (default: the first of TOKENRELAY_API_KEYS)")
    parser.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="highlight code (auto: on a terminal, unless NO_COLOR is set)",
    )
    parser.add_argument(
        "--give-up-after",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="stop reconnecting after this long without a gateway",
    )


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    """``tokenrelay submit PROMPT [--language L] [--model M] [--watch]``."""
    parser.add_argument("prompt", help="what to write")
    parser.add_argument("--language", help="a language id of the page, e.g. python")
    parser.add_argument("--model", help="the model (default: TOKENRELAY_MODEL)")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--watch", action="store_true", help="print the code live")
    add_client_arguments(parser)


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    """``tokenrelay watch JOB_ID [--from-start] [--token T]``."""
    parser.add_argument("job_id")
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="replay every event (default: the output so far, then live)",
    )
    parser.add_argument("--token", help="the job's viewer token (when auth is on)")
    add_client_arguments(parser)


def client_options(args: argparse.Namespace, settings: Settings) -> ClientOptions:
    """The options from the flags, with defaults from the settings."""
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    key = settings.api_keys[0].get_secret_value() if settings.api_keys else None
    return ClientOptions(
        url=args.url or f"http://{host}:{settings.port}",
        api_key=args.api_key or key,
        color=args.color,
        give_up_after=args.give_up_after,
    )


async def submit_command(args: argparse.Namespace, options: ClientOptions) -> WatchOutcome:
    """Submit the prompt; print its id, or (``--watch``) its code live."""
    fields = {
        "prompt": args.prompt,
        "language": args.language,
        "model": args.model,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
    }
    try:
        request = JobRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValueError as exc:
        _say(f"invalid request: {exc}")
        return WatchOutcome.REFUSED
    key = uuid.uuid4().hex  # so that a submit retried through a network blip is one job
    async with _client(options) as client:
        outcome = await _guarded(
            _retrying(lambda: client.submit(request, idempotency_key=key), options)
        )
        if isinstance(outcome, WatchOutcome):
            return outcome
        job = outcome
        if not args.watch:
            print(job.id, flush=True)
            _say(f"events: {options.url}{job.events_url}")
            _say(f"watch:  tokenrelay watch {job.id} --token {job.viewer_token}")
            return WatchOutcome.SUBMITTED
        _say(f"job {job.id}")
        return await watch(client, options, job.id, token=job.viewer_token, from_start=True)


async def watch_command(args: argparse.Namespace, options: ClientOptions) -> WatchOutcome:
    """Show a job's code until it ends."""
    async with _client(options) as client:
        return await watch(
            client, options, args.job_id, token=args.token, from_start=args.from_start
        )


async def watch(
    client: TokenRelayClient,
    options: ClientOptions,
    job_id: str,
    *,
    token: str | None,
    from_start: bool,
) -> WatchOutcome:
    """Show the job's text (from its first event, or from its record) until it ends."""
    info = await _guarded(_retrying(lambda: client.job(job_id, token=token), options))
    if isinstance(info, WatchOutcome):
        return info
    view = make_view(info.language, options.color)
    progress = Progress(
        status=info.status,
        attempt=info.attempt,
        ttft_ms=info.time_to_first_token_ms,
        viewers=info.viewers,
    )
    after = None
    if not from_start:
        after = info.last_event_id
        if info.output:
            view.show(info.output)
            progress.chars = len(info.output)
    poller = asyncio.create_task(_poll(client, job_id, token, progress, view))
    try:
        ended = await _follow(client, job_id, token, after, view, progress)
    except ConnectionLost as exc:
        view.close(progress, done=False)
        _say(f"gave up: {exc}")
        return WatchOutcome.UNREACHABLE
    except APIError as exc:
        view.close(progress, done=False)
        _say(exc.message)
        return WatchOutcome.REFUSED
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    if ended is None:  # the stream said the job had ended before our position (204)
        final = await _guarded(_retrying(lambda: client.job(job_id, token=token), options))
        if isinstance(final, WatchOutcome):
            return final
        ended = final.status
    progress.status = ended
    view.close(progress, done=ended == DONE)
    return _outcome(ended, view, job_id)


async def _follow(
    client: TokenRelayClient,
    job_id: str,
    token: str | None,
    after: str | None,
    view: View,
    progress: Progress,
) -> str | None:
    """Apply the job's events to the view; the terminal status, or None after a 204."""

    def reconnecting(reason: str) -> None:
        progress.note = "reconnecting…"
        view.refresh(progress, force=True)

    async for event in client.watch(job_id, token=token, after=after, on_reconnect=reconnecting):
        progress.note = None
        if isinstance(event, TokenEvent):
            progress.chunk(event.text)
            view.show(event.text)
        elif isinstance(event, ResetEvent):
            progress.attempt = event.attempt
            view.reset()
        elif isinstance(event, StatusEvent):
            progress.status, progress.attempt = event.status, event.attempt
        elif isinstance(event, DoneEvent):
            return DONE
        elif isinstance(event, FailedEvent):
            _say(f"the job failed: {event.code}: {event.message}")
            return FAILED
        elif isinstance(event, CancelledEvent):
            return CANCELLED
        view.refresh(progress)
    return None


def make_view(language: str | None, color: str) -> View:
    """A terminal view when stdout is a terminal (or ``--color always``), else a pipe view."""
    err = sys.stderr if sys.stderr.isatty() else None
    terminal = color == "always" or (color == "auto" and sys.stdout.isatty())
    if not terminal:
        return PipeView(sys.stdout.buffer, err)
    plain = color == "never" or (color == "auto" and os.environ.get("NO_COLOR"))
    return TerminalView(sys.stdout.buffer, err, Highlighter(None if plain else language))


def _outcome(status: str, view: View, job_id: str) -> WatchOutcome:
    if view.diverged:
        _say(
            "a retried attempt wrote different text than the output already printed, so the "
            f"output above is not the job's text; once the job has ended, `tokenrelay watch "
            f"{job_id}` prints its final text"
        )
        return WatchOutcome.DIVERGED
    return {
        DONE: WatchOutcome.DONE,
        FAILED: WatchOutcome.FAILED,
        CANCELLED: WatchOutcome.CANCELLED,
    }.get(status, WatchOutcome.FAILED)


async def _poll(
    client: TokenRelayClient, job_id: str, token: str | None, progress: Progress, view: View
) -> None:
    """Keep TTFT and the viewer count of the status line fresh."""
    delay = FIRST_POLL_SECONDS  # soon after this watcher has joined the job's viewers
    while True:
        await asyncio.sleep(delay)
        delay = POLL_SECONDS
        try:
            info = await client.job(job_id, token=token)
        except (APIError, aiohttp.ClientError, OSError, TimeoutError):
            continue  # the watch itself reports what matters
        progress.ttft_ms = info.time_to_first_token_ms
        progress.viewers = info.viewers
        view.refresh(progress)


async def _retrying(call: Callable[[], Awaitable[T]], options: ClientOptions) -> T:
    """``call`` retried through connection failures, as ``watch()`` does."""
    retrying = Backoff(give_up_after=options.give_up_after).start()
    while True:
        try:
            return await call()
        except APIError as exc:
            if exc.status < 500:
                raise
            reason = exc.message
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        await retrying.wait(reason)


async def _guarded(call: Awaitable[T]) -> T | WatchOutcome:
    """The call's result, or the outcome its failure means (after saying why)."""
    try:
        return await call
    except APIError as exc:
        _say(f"{exc.message} (HTTP {exc.status})")
        return WatchOutcome.REFUSED
    except (ConnectionLost, aiohttp.ClientError, OSError, TimeoutError) as exc:
        _say(f"cannot reach the gateway: {exc}")
        return WatchOutcome.UNREACHABLE


def _client(options: ClientOptions) -> TokenRelayClient:
    backoff = Backoff(give_up_after=options.give_up_after)
    return TokenRelayClient(options.url, api_key=options.api_key, backoff=backoff)


def _say(message: str) -> None:
    print(f"tokenrelay: {message}", file=sys.stderr, flush=True)
