"""One load-generator process: many SSE viewers on raw asyncio connections.

Run as ``python -m bench.loadgen``; it takes JSON commands on stdin, one a line, and answers
each with one JSON line on stdout (see :class:`LoadGen`). The orchestrator
(``bench/pool.py``) starts several and spreads viewers over them.

Per received TCP read the hot path only de-chunks, appends the bytes and (for sampled
viewers) notes ``(time, payload offset)``. Everything else (events, text, latency,
exactness) is worked out after the measurement by :mod:`bench.analysis`.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from bench.analysis import analyse, head_key
from bench.ssewire import ChunkedDecoder, last_event_id

RECONNECT_DELAY = 0.25  # after a server-side cut-off (EventSource would wait `retry:`)
MAX_CONNECTIONS_PER_VIEWER = 30
CONNECT_TIMEOUT = 15.0


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


@dataclass(slots=True)
class Conn:
    """One HTTP connection of a viewer and everything it received."""

    reason: str  # "first", "storm" (dropped and resumed), "cutoff" (server ended it early)
    last_event_id: str | None
    t_open: float = field(default_factory=time.time)
    t_connected: float = 0.0  # the TCP connection is up and the request written
    t_headers: float = 0.0
    t_end: float = 0.0
    status: int = 0
    raw_bytes: int = 0
    payload_len: int = 0
    ended: str = ""  # "eof", "marker", "lost", "dropped", "error", "status"
    pieces: list[bytes] = field(default_factory=list)
    marks: list[tuple[float, int]] | None = None


@dataclass(slots=True)
class Viewer:
    """One simulated browser tab: a spec from the orchestrator and its connections."""

    spec: dict[str, Any]
    conns: list[Conn] = field(default_factory=list)
    done: bool = False
    finished: bool = False  # its terminal event (or a final status) arrived
    transport: asyncio.Transport | None = None

    @property
    def marked(self) -> bool:
        """Whether this viewer records receive times (latency sample)."""
        return bool(self.spec.get("mark"))

    def resume_id(self) -> str | None:
        """The Last-Event-ID a reconnect sends: the last id received on any connection."""
        for conn in reversed(self.conns):
            found = last_event_id(b"".join(conn.pieces)) if conn.pieces else None
            if found is not None:
                return found
            if conn.last_event_id is not None:
                return conn.last_event_id
        return None


class SSEProtocol(asyncio.Protocol):
    """Reads one HTTP/1.1 SSE response; the body goes into the connection's pieces."""

    def __init__(self, gen: LoadGen, viewer: Viewer, conn: Conn, request: bytes) -> None:
        self.gen = gen
        self.viewer = viewer
        self.conn = conn
        self.request = request
        self.head = b""
        self.headers_done = False
        self.decoder: ChunkedDecoder | None = None
        self.content_left: int | None = None
        self.transport: asyncio.Transport | None = None
        marker = viewer.spec.get("marker")
        self.marker: bytes | None = marker.encode() if marker else None
        self.tail = b""
        self.headers_seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.viewer.transport = self.transport
        self.transport.write(self.request)
        self.conn.t_connected = time.time()

    def _sink(self, piece: bytes) -> None:
        conn = self.conn
        conn.pieces.append(piece)
        conn.payload_len += len(piece)
        if self.marker is not None:
            window = self.tail + piece
            if self.marker in window:
                self.finish("marker")
                return
            self.tail = window[-len(self.marker) :]

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.raw_bytes += len(data)
        if conn.ended:
            return
        if not self.headers_done:
            self.head += data
            cut = self.head.find(b"\r\n\r\n")
            if cut < 0:
                return
            data = self.head[cut + 4 :]
            if not self._headers(self.head[:cut]):
                return
        if self.decoder is not None:
            self.decoder.feed(data)
        elif data:
            self._sink(data)
            if self.content_left is not None:
                self.content_left -= len(data)
        if conn.marks is not None:
            conn.marks.append((time.time(), conn.payload_len))
        if conn.ended:
            return
        if (self.decoder is not None and self.decoder.done) or self.content_left == 0:
            self.finish("eof")

    def _headers(self, head: bytes) -> bool:
        self.headers_done = True
        conn = self.conn
        conn.t_headers = time.time()
        lines = head.split(b"\r\n")
        conn.status = int(lines[0].split()[1])
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif lname == b"content-length":
                self.content_left = int(value)
        if not self.headers_seen.done():
            self.headers_seen.set_result(None)
        if conn.status != 200:
            self.finish("status")
            return False
        if chunked:
            self.decoder = ChunkedDecoder(self._sink)
        return True

    def finish(self, how: str) -> None:
        """The response is over (or given up); close and let the viewer decide what next."""
        conn = self.conn
        if conn.ended:
            return
        conn.ended = how
        conn.t_end = time.time()
        if not self.headers_seen.done():
            self.headers_seen.set_result(None)
        if self.transport is not None:
            self.transport.close()
        self.gen.connection_over(self.viewer, conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.conn.ended:
            self.finish("lost")


class LoadGen:
    """The viewers of this process and the commands the orchestrator sends."""

    def __init__(self) -> None:
        self.viewers: list[Viewer] = []
        self.pending: set[asyncio.Task[None]] = set()
        self.all_done = asyncio.Event()
        self.open_count = 0
        self.errors: dict[str, int] = {}
        self.t_drop: float | None = None
        self.connect_slots = asyncio.Semaphore(200)

    # -- connections ---------------------------------------------------------------

    def _request(self, viewer: Viewer, last_id: str | None) -> bytes:
        spec = viewer.spec
        lines = [
            f"GET {spec['path']} HTTP/1.1",
            f"Host: {spec['host']}:{spec['port']}",
            "Accept: text/event-stream",
            "Cache-Control: no-cache",
        ]
        lines.extend(f"{name}: {value}" for name, value in spec.get("headers", {}).items())
        if last_id is not None:
            lines.append(f"Last-Event-ID: {last_id}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def connect(
        self, viewer: Viewer, reason: str, delay: float = 0.0, resume: str | None = None
    ) -> None:
        """Open one connection for ``viewer`` (resuming from what it has, or from ``resume``
        when the caller worked that out already) and wait for the response headers."""
        if delay:
            await asyncio.sleep(delay)
        if resume is not None:
            last_id: str | None = resume
        elif viewer.conns:
            last_id = viewer.resume_id()
        else:
            last_id = viewer.spec.get("last_event_id")
        conn = Conn(reason=reason, last_event_id=last_id)
        if viewer.marked:
            conn.marks = []
        viewer.conns.append(conn)
        spec = viewer.spec
        loop = asyncio.get_running_loop()
        request = self._request(viewer, last_id)
        src = spec.get("src")
        for attempt in range(3):
            protocol = SSEProtocol(self, viewer, conn, request)
            try:
                async with self.connect_slots:
                    conn.t_open = time.time()
                    await asyncio.wait_for(
                        loop.create_connection(
                            lambda p=protocol: p,
                            spec["host"],
                            spec["port"],
                            local_addr=(src, 0) if src else None,
                        ),
                        CONNECT_TIMEOUT,
                    )
                await asyncio.wait_for(protocol.headers_seen, CONNECT_TIMEOUT)
                return
            except (OSError, TimeoutError) as exc:
                name = type(exc).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
                await asyncio.sleep(0.2 * (attempt + 1))
        conn.ended = "error"
        conn.t_end = time.time()
        self._viewer_done(viewer)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def connection_over(self, viewer: Viewer, conn: Conn) -> None:
        """A response ended: the viewer is done, or it reconnects as EventSource would."""
        if conn.ended == "dropped":
            return
        if conn.ended in ("marker", "status") or self._terminal_seen(viewer, conn):
            viewer.finished = conn.ended != "status" or conn.status == 204
            self._viewer_done(viewer)
            return
        if len(viewer.conns) >= MAX_CONNECTIONS_PER_VIEWER or viewer.done:
            self._viewer_done(viewer)
            return
        self._spawn(self.connect(viewer, "cutoff", RECONNECT_DELAY))

    def _terminal_seen(self, viewer: Viewer, conn: Conn) -> bool:
        names = viewer.spec.get("terminal", ())
        if not names or not conn.pieces:
            return not names and conn.ended == "eof"
        tail = b"".join(conn.pieces[-8:])[-4096:]
        return any(f"event: {name}\n".encode() in tail for name in names)

    def _viewer_done(self, viewer: Viewer) -> None:
        if viewer.done:
            return
        viewer.done = True
        self.open_count -= 1
        if self.open_count <= 0:
            self.all_done.set()

    # -- commands ------------------------------------------------------------------

    async def cmd_open(self, args: dict[str, Any]) -> dict[str, Any]:
        """Open every viewer in ``args['viewers']``; answer once all have response headers."""
        self.connect_slots = asyncio.Semaphore(int(args.get("concurrency", 200)))
        started = time.time()
        new = [Viewer(spec) for spec in args["viewers"]]
        self.viewers.extend(new)
        self.open_count += len(new)
        if self.open_count > 0:
            self.all_done.clear()
        await asyncio.gather(*(self.connect(v, "first") for v in new))
        statuses: dict[str, int] = {}
        for viewer in new:
            key = str(viewer.conns[0].status)
            statuses[key] = statuses.get(key, 0) + 1
        return {
            "opened": len(new),
            "statuses": statuses,
            "seconds": time.time() - started,
            "errors": self.errors,
        }

    async def cmd_wait(self, args: dict[str, Any]) -> dict[str, Any]:
        """Wait until every viewer is done or ``timeout`` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_done.wait(), float(args.get("timeout", 60)))
        done = sum(v.done for v in self.viewers)
        return {"done": done, "total": len(self.viewers)}

    async def cmd_storm(self, args: dict[str, Any]) -> dict[str, Any]:
        """Drop every open connection at once and reconnect each with ``Last-Event-ID``."""
        self.connect_slots = asyncio.Semaphore(int(args.get("concurrency", 100_000)))
        mode = args["mode"]
        head = None
        live = [v for v in self.viewers if not v.done]
        for viewer in live:
            key = head_key(viewer, mode)
            if key is not None and (head is None or key > head):
                head = key
        # What each viewer resends is known at the drop (EventSource keeps lastEventId as it
        # goes): worked out before the clock starts, not in the reconnects' time.
        resume = {id(viewer): viewer.resume_id() for viewer in live}
        self.t_drop = time.time()
        for viewer in live:
            conn = viewer.conns[-1]
            if not conn.ended:
                conn.ended = "dropped"
                conn.t_end = self.t_drop
            if viewer.transport is not None:
                viewer.transport.abort()
        for viewer in live:
            self._spawn(self.connect(viewer, "storm", resume=resume[id(viewer)]))
        return {"t_drop": self.t_drop, "head": head, "dropped": len(live)}

    async def cmd_report(self, args: dict[str, Any]) -> dict[str, Any]:
        """Analyse what every viewer received (see :func:`bench.analysis.analyse`)."""
        return analyse(self.viewers, args, self.t_drop, self.errors)

    async def cmd_close(self, args: dict[str, Any]) -> dict[str, Any]:
        """Abort every connection."""
        for viewer in self.viewers:
            if viewer.transport is not None:
                viewer.transport.abort()
        for task in list(self.pending):
            task.cancel()
        return {"closed": len(self.viewers)}


async def serve() -> None:
    """Answer commands from stdin until ``close`` or end of input."""
    gen = LoadGen()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    while True:
        line = await reader.readline()
        if not line:
            await gen.cmd_close({})
            return
        message = orjson.loads(line)
        command = message["cmd"]
        handler = getattr(gen, f"cmd_{command}")
        try:
            reply = await handler(message.get("args", {}))
        except Exception as exc:  # report, never die silently mid-benchmark
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(orjson.dumps(reply) + b"\n")
        out.flush()
        if command == "close":
            return


def main() -> None:
    """Entry point of ``python -m bench.loadgen``."""
    raise_fd_limit()
    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
