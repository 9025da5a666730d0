"""``tokenrelay simulate-upstream``, and starting the simulator inside another program."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiohttp import web
from pydantic import ValidationError

from simulator.app import create_app
from simulator.config import SimConfig
from simulator.faults import FaultKind, FaultRule


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``simulate-upstream`` subcommand; its handler is ``args.func``."""
    parser = subparsers.add_parser(
        "simulate-upstream",
        help="serve a simulated OpenAI-compatible upstream",
        description="An OpenAI Chat Completions server that streams generated code, "
        "with switches for failures. Prompts may override everything with a "
        "'#sim key=value ...' line.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 = any free port")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s; 0 = unpaced")
    parser.add_argument("--tokens", type=int, default=120, help="tokens per completion")
    parser.add_argument(
        "--fences",
        type=int,
        default=0,
        metavar="N",
        help="answer like a chat model: a line of prose, then N Markdown-fenced blocks (the "
        "first holds the code) and a closing remark; 0 = bare code",
    )
    parser.add_argument("--api-key", default=None, help="require this Bearer key")
    parser.add_argument("--model", action="append", default=[], help="accept only these models")
    parser.add_argument(
        "--fail", choices=[kind.value for kind in FaultKind], default=FaultKind.NONE.value
    )
    parser.add_argument("--fail-after", type=int, default=0, metavar="N", help="content chunks")
    parser.add_argument(
        "--fail-times", type=int, default=None, metavar="K", help="first K requests per prompt"
    )
    parser.add_argument("--retry-after", type=float, default=1.0, metavar="S", help="429 seconds")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the command-line flags describe; raises ValidationError on bad values."""
    return SimConfig(
        tokens_per_second=args.rate,
        default_tokens=args.tokens,
        fences=args.fences,
        api_key=args.api_key,
        models=args.model,
        fault=FaultRule(
            fault=FaultKind(args.fail),
            after=args.fail_after,
            times=args.fail_times,
            retry_after=args.retry_after,
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; the exit code."""
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        print(f"simulate-upstream: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        print(f"simulate-upstream: cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    return 0


async def start_simulator(
    config: SimConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Start serving ``config``; the runner (``await runner.cleanup()`` to stop) and base URL.

    The URL is ``http://host:port/v1`` with the real port when ``port`` is 0.
    Handler cancellation is on, so a client that leaves ends its request at once.
    """
    runner = web.AppRunner(create_app(config), handler_cancellation=True, shutdown_timeout=5)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    shown_host = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown_host}:{bound_port}/v1"


async def _serve(config: SimConfig, host: str, port: int) -> None:
    runner, url = await start_simulator(config, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"simulated upstream listening on {url}", flush=True)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
