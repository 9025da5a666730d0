"""Writing a live batch to a caught-up viewer's socket straight from the feed.

Awaiting ``StreamResponse.write`` in every viewer's task costs a task wake-up per viewer per
batch, the largest share of the gateway's fan-out CPU. When a viewer's task is idle (it has
sent everything before the batch) and its socket keeps up, the feed writes the batch for it
synchronously instead, with the bytes aiohttp's chunked writer would send
(``<hex length>\\r\\n<data>\\r\\n``), framed once per batch and shared by every viewer.

This reaches into aiohttp's response writer, which is why it is written here rather than
taken from a library: where the writer does not look as expected (compression, a fixed
length, HTTP/1.0, another aiohttp), :func:`direct_sink` returns None and the viewer's task
writes everything through the public API.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_writer import StreamWriter

# A socket with more than this queued is left to the viewer's task, which waits for it to
# drain (aiohttp's own drain threshold).
WRITE_BUFFER_LIMIT = 64 * 1024


def http_chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class DirectSink:
    """Synchronous writes of ready-made chunks to one response's socket."""

    __slots__ = ("_transport", "_writer")

    def __init__(self, writer: StreamWriter, transport: asyncio.Transport) -> None:
        self._writer = writer
        self._transport = transport

    def write(self, chunk: bytes) -> bool:
        """Write ``chunk`` now; False (nothing written) when the socket is behind or closing,
        and the viewer's task must write it instead."""
        transport = self._transport
        try:
            if transport.is_closing() or transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                return False
            transport.write(chunk)
        except Exception:  # the viewer task's own write reports the failure
            return False
        self._writer.output_size += len(chunk)
        return True


def direct_sink(response: web.StreamResponse) -> DirectSink | None:
    """A sink for a prepared response that has sent its headers, if its writer allows one."""
    writer = getattr(response, "_payload_writer", None)
    if (
        not isinstance(writer, StreamWriter)
        or not writer.chunked
        or writer.length is not None
        or getattr(writer, "_compress", True) is not None
        or getattr(writer, "_on_chunk_sent", True) is not None
        or not getattr(writer, "_headers_written", False)
        or writer.on_body_write is not None
    ):
        return None
    transport = writer.transport
    if transport is None:
        return None
    return DirectSink(writer, transport)
