"""The ``tokenrelay`` command. Exit codes and ``sys.exit`` live here and nowhere else."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from service.cli.config import add_setting_flags, load_settings, overrides_from
from service.contract.errors import TokenRelayError
from service.contract.telemetry.log_setup import configure_logging


def _run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        import uvloop

        uvloop.run(runner())
    except ImportError:
        asyncio.run(runner())


def _cmd_gateway(args: argparse.Namespace) -> int:
    settings = load_settings(overrides_from(args))
    if args.ready_fd is None:
        from service.cli.gateway_processes import process_count, run_gateway_processes

        count = process_count(settings)
        if count > 1:
            return run_gateway_processes(settings, count)
    from service.gateway.main import serve_gateway

    configure_logging(settings.log_level, process="gateway")
    ready_fd: int | None = args.ready_fd

    def ready() -> None:
        # Tell the parent of `--processes N` that this one listens (it may have gone).
        if ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(ready_fd, b"1")
            with contextlib.suppress(OSError):
                os.close(ready_fd)

    parent = os.getppid()

    async def serve(stop: asyncio.Event) -> None:
        async def orphaned() -> None:
            # A child of `--processes N` whose parent died (SIGKILL) stops like on SIGTERM.
            while True:
                await asyncio.sleep(1.0)
                if os.getppid() != parent:
                    stop.set()
                    return

        watch = asyncio.create_task(orphaned()) if ready_fd is not None else None
        try:
            await serve_gateway(settings, stop, reuse_port=args.reuse_port, ready=ready)
        finally:
            if watch is not None:
                watch.cancel()

    _run_until_signal(serve)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from worker.main import serve_worker

    settings = load_settings(overrides_from(args))
    configure_logging(settings.log_level, process="worker")
    _run_until_signal(lambda stop: serve_worker(settings, stop))
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from service.cli.up import run_up

    overrides = overrides_from(args)
    # `up` starts its own Redis unless one is configured: never the note of an earlier `up`.
    settings = load_settings(overrides, find_private_redis=False)
    env = {f"TOKENRELAY_{field.upper()}": str(value) for field, value in overrides.items()}
    return run_up(settings, env)


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``tokenrelay {up,gateway,worker,simulate-upstream,submit,watch,jobs}``."""
    from service.cli.jobs.command import add_parser as add_jobs
    from simulator.cli import add_parser as add_simulator

    parser = argparse.ArgumentParser(
        prog="tokenrelay", description="Stream LLM code generations to any number of viewers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run Redis, gateway, worker (and a simulated upstream)")
    add_setting_flags(up, "host", "port", "redis_url", "upstream_url", "model", "processes")
    up.set_defaults(func=_cmd_up)
    gateway = commands.add_parser("gateway", help="serve the HTTP API, SSE streams and the page")
    add_setting_flags(gateway, "host", "port", "redis_url", "processes")
    # Set by the parent of `--processes N` for each of its children, not by hand.
    gateway.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    gateway.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    gateway.set_defaults(func=_cmd_gateway)
    worker = commands.add_parser("worker", help="run jobs from the queue against the upstream")
    add_setting_flags(worker, "redis_url", "upstream_url", "model", "concurrency")
    worker.set_defaults(func=_cmd_worker)
    add_simulator(commands)
    _add_client_commands(commands)
    add_jobs(commands)
    return parser


# How `tokenrelay submit` / `tokenrelay watch` end, as exit codes (documented in the README).
_CLIENT_EXIT_CODES = {
    "submitted": 0,
    "done": 0,
    "failed": 1,
    "refused": 2,
    "cancelled": 3,
    "unreachable": 4,
    "diverged": 5,
}
_INTERRUPTED = 130


def _add_client_commands(commands: Any) -> None:
    from service.cli.watch import add_submit_arguments, add_watch_arguments

    submit = commands.add_parser("submit", help="submit a job; --watch prints its code live")
    add_submit_arguments(submit)
    submit.set_defaults(func=_cmd_submit)
    watch = commands.add_parser("watch", help="print a job's code live, resuming on its own")
    add_watch_arguments(watch)
    watch.set_defaults(func=_cmd_watch)


def _run_client(args: argparse.Namespace, command: str) -> int:
    from service.cli import watch as watch_cli

    options = watch_cli.client_options(args, load_settings({}))
    run = watch_cli.submit_command if command == "submit" else watch_cli.watch_command
    try:
        outcome = asyncio.run(run(args, options))
    except KeyboardInterrupt:
        return _INTERRUPTED
    return _CLIENT_EXIT_CODES[outcome.value]


def _cmd_submit(args: argparse.Namespace) -> int:
    return _run_client(args, "submit")


def _cmd_watch(args: argparse.Namespace) -> int:
    return _run_client(args, "watch")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tokenrelay`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except TokenRelayError as exc:
        print(f"tokenrelay: {exc.message}", file=sys.stderr)
        code = 1
    sys.exit(code)
