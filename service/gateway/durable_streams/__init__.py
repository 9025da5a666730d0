"""Durable Streams (ElectricSQL's protocol, v1.0) on Redis, under ``/v1/stream/`` on the
gateway's own port: streams clients create, append to, read (catch-up, long-poll, SSE),
close, fork and delete (``user_streams.py``, ``store.py``, the ``ds_*.lua`` scripts), and
every tokenrelay job as a read-only stream of its text (``job_streams.py``).
docs/durable-streams.md says what is implemented and how the official suite is run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from service.contract.jobs import is_job_id
from service.contract.store.job_reader import job_not_found
from service.gateway.access_control import client_address
from service.gateway.auth import require_api_key, require_viewer
from service.gateway.durable_streams.errors import StreamError, stream_errors
from service.gateway.durable_streams.job_streams import JOBS_PREFIX, JobStreams
from service.gateway.durable_streams.read_params import LONG_POLL, SSE
from service.gateway.durable_streams.store import StreamStore
from service.gateway.durable_streams.user_streams import PREFIX, UserStreams
from service.gateway.durable_streams.watch import StreamWatch
from service.gateway.state import STATE

STREAMS = web.AppKey("durable_streams", UserStreams)
_READ_ONLY = {"Allow": "GET, HEAD, OPTIONS"}


@stream_errors
async def handle(request: web.Request) -> web.StreamResponse:
    """Every method on every stream path."""
    state = request.app[STATE]
    name = request.match_info["name"]
    method = request.method
    if method == "OPTIONS":
        return web.Response(status=204)
    if name.startswith(JOBS_PREFIX):
        job_id = name[len(JOBS_PREFIX) :]
        if method not in ("GET", "HEAD"):
            raise StreamError(405, "a job's stream is read-only", headers=_READ_ONLY)
        if not is_job_id(job_id):
            raise job_not_found(job_id)
        require_viewer(request, state.settings, state.tokens, job_id)
        jobs = JobStreams(state)
        if method == "HEAD":
            return await jobs.head(job_id)
        return await _live_guard(request, lambda: jobs.read(request, job_id))
    streams = request.app[STREAMS]
    require_api_key(request, state.settings)
    if name.startswith("__ds/") or name == "__ds":
        raise StreamError(404, "the reserved __ds APIs (subscriptions) are not implemented")
    if method == "PUT":
        return await streams.create(request, name)
    if method == "POST":
        return await streams.append(request, name)
    if method == "DELETE":
        return await streams.delete(name)
    if method == "HEAD":
        return await streams.head(name)
    if method == "GET":
        private = state.settings.auth_enabled
        return await _live_guard(request, lambda: streams.read(request, name, private=private))
    raise StreamError(
        405,
        f"{method} is not a Durable Streams operation",
        headers={"Allow": "GET, HEAD, PUT, POST, DELETE, OPTIONS"},
    )


async def _live_guard(
    request: web.Request, read: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Live reads are refused while the gateway shuts down and count against the client's
    open streams (``MAX_STREAMS_PER_CLIENT``)."""
    state = request.app[STATE]
    if request.query.get("live") not in (LONG_POLL, SSE):
        return await read()
    if state.shutting_down:
        raise StreamError(
            503, "the gateway is shutting down; reconnect", headers={"Retry-After": "1"}
        )
    with state.stream_slots.hold(client_address(request, state.settings)):
        return await read()


def install(app: web.Application) -> None:
    """Serve Durable Streams under ``/v1/stream/`` (call after the gateway's state is set)."""
    state = app[STATE]
    watch = StreamWatch(state.redis)
    app[STREAMS] = UserStreams(StreamStore(state.redis, state.scripts), watch, state.settings)
    app.router.add_route("*", PREFIX + "{name:.+}", handle)

    async def stop(app: web.Application) -> None:
        await watch.close()

    app.on_shutdown.append(stop)
