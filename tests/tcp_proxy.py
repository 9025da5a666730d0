"""A small TCP proxy for tests that need a real network drop between a client and a server.

Playwright's ``context.set_offline`` does not break an EventSource already open to 127.0.0.1,
so the browser talks to the gateway through this proxy instead, and a test cuts every
connection (``drop_all``) and refuses new ones for a while (``refuse``).
"""

from __future__ import annotations

import asyncio
import contextlib

CHUNK = 64 * 1024


class TcpProxy:
    """Listens on ``host:port`` (a free port by default) and forwards each connection."""

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", delay: float = 0.0
    ) -> None:
        self.delay = delay  # seconds added before forwarding each chunk, both ways
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reopen: asyncio.Task[None] | None = None
        self.accepting = asyncio.Event()

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy."""
        return f"http://{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections being forwarded now."""
        return len(self._connections)

    async def start(self) -> TcpProxy:
        """Listen (again, on the same port after ``refuse``)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.accepting.set()
        return self

    def drop_all(self) -> int:
        """Abort every forwarded connection (both sides get a reset); how many there were."""
        dropped = len(self._connections)
        for client, upstream in list(self._connections):
            client.transport.abort()
            upstream.transport.abort()
        self._connections.clear()
        return dropped

    def refuse(self, seconds: float) -> None:
        """Stop listening now (new connections are refused) and listen again after ``seconds``."""
        self._stop_listening()
        self._reopen = asyncio.create_task(self._listen_after(seconds))

    async def close(self) -> None:
        """Stop listening and drop everything."""
        if self._reopen is not None:
            self._reopen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopen
        self._stop_listening()
        self.drop_all()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _stop_listening(self) -> None:
        self.accepting.clear()
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _listen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.start()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, upstream_writer)
        self._connections.add(pair)
        pumps = [
            asyncio.create_task(self._pump(client_reader, upstream_writer, self.delay)),
            asyncio.create_task(self._pump(upstream_reader, client_writer, self.delay)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            self._connections.discard(pair)
            client_writer.close()  # after what is buffered has been sent
            upstream_writer.close()

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
    ) -> None:
        try:
            while data := await reader.read(CHUNK):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            writer.transport.abort()
