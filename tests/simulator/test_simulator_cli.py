"""Running the simulator: in-process with start_simulator, and as ``simulate-upstream``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import aiohttp
import pytest

from simulator import SimConfig, start_simulator
from simulator.cli import add_parser, config_from_args
from simulator.faults import FaultKind
from simulator.requestlog import Status
from simulator.state import STATE


async def test_start_simulator_serves_on_a_free_port() -> None:
    runner, url = await start_simulator(SimConfig(tokens_per_second=0))
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert not url.endswith(":0/v1")
        async with aiohttp.ClientSession() as session:
            body = {"model": "m", "messages": [{"role": "user", "content": "#sim tokens=3"}]}
            async with session.post(f"{url}/chat/completions", json=body) as response:
                completion = await response.json()
    finally:
        await runner.cleanup()

    assert completion["choices"][0]["finish_reason"] == "stop"


async def test_shutdown_ends_a_stalled_stream() -> None:
    runner, url = await start_simulator(SimConfig(tokens_per_second=0))
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "#sim fail=stall after=1"}],
        "stream": True,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/chat/completions", json=body) as response,
    ):
        await response.content.readuntil(b"\n\n")  # the role chunk: the stream is live
        async with asyncio.timeout(1.5):
            await runner.cleanup()
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.content.read()

    (record,) = runner.app[STATE].log.records()
    assert (record.status, record.error) == (Status.FAILED, "server shutting down")


def test_flags_become_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "simulate-upstream",
            "--rate",
            "7",
            "--tokens",
            "9",
            "--api-key",
            "k",
            "--fail",
            "cut",
            "--fail-after",
            "4",
            "--fail-times",
            "1",
            "--retry-after",
            "3",
            "--model",
            "a",
        ]
    )

    config = config_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 8100)
    assert (config.tokens_per_second, config.default_tokens, config.api_key) == (7, 9, "k")
    assert config.models == ["a"]
    assert config.fault.fault is FaultKind.CUT
    assert (config.fault.after, config.fault.times, config.fault.retry_after) == (4, 1, 3)
    assert callable(args.func)


async def test_simulate_upstream_prints_its_url_and_stops_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "simulate-upstream",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(10):
            assert process.stdout is not None
            line = (await process.stdout.readline()).decode()
            url = line.split()[-1]
            assert line.startswith("simulated upstream listening on http://127.0.0.1:")
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{url.removesuffix('/v1')}/healthz") as response,
            ):
                assert await response.json() == {"ok": True}
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
