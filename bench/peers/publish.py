"""The benchmark's publisher for Nchan: each token POSTed as one message, at a fixed pace.

A message body is ``{"s": <index>, "t": <publish time, ms>, "text": <token>}``: the
sequence orders messages for catch-up, the time gives latency (Nchan's own ids differ from
tokenrelay's), the text checks exactness. The last message is ``event: done``.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson


class Publisher:
    """Publishes token lists to channels; ``published`` counts per channel."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.published: dict[str, int] = {}
        self.lateness: dict[str, float] = {}

    async def _post(self, channel: str, body: bytes, headers: dict[str, str]) -> None:
        async with self.session.post(
            f"{self.base}/pub/{channel}", data=body, headers=headers
        ) as resp:
            await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"publish to {channel}: HTTP {resp.status}")

    async def channel(self, channel: str, tokens: list[str], rate: float) -> None:
        """Publish ``tokens`` to ``channel`` at ``rate`` messages/s, then ``done``."""
        headers = {"Content-Type": "application/json"}
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.published[channel] = 0
        for index, token in enumerate(tokens):
            delay = start + (index + 1) / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = orjson.dumps({"s": index, "t": time.time() * 1000, "text": token})
            await self._post(channel, body, headers)
            self.published[channel] = index + 1
        self.lateness[channel] = loop.time() - (start + len(tokens) / rate)
        await self._post(channel, b"{}", {**headers, "X-EventSource-Event": "done"})

    async def run(self, channels: dict[str, list[str]], rate: float) -> None:
        """Publish every channel concurrently."""
        await asyncio.gather(*(self.channel(name, toks, rate) for name, toks in channels.items()))
