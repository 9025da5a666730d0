"""``tokenrelay jobs list|show|cancel|dead|requeue|queue``: tables by default, ``--json`` for
scripts. Exit status 0 on success, 1 when the job or dead letter is not found or the action
does not apply (the message says why)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from service.cli.config import load_settings
from service.cli.jobs.inspect import dead_letters, list_jobs, show_job
from service.cli.jobs.tables import as_json, key_values, table
from service.contract.errors import Unavailable
from service.contract.settings import Settings
from service.contract.store.cancel import cancel_job
from service.contract.store.queue_status import read_queue_status
from service.contract.store.redis_client import AnyRedis, connect
from service.contract.store.requeue import find_dead_letter, requeue
from service.contract.store.scripts import Scripts

Action = Callable[[AnyRedis, Settings, argparse.Namespace], Awaitable[Any]]

_LIST_COLUMNS = [
    ("JOB", "id"),
    ("STATUS", "status"),
    ("AGE_S", "age_seconds"),
    ("ATTEMPT", "attempt"),
    ("WORKER", "worker"),
    ("OUTPUT_B", "output_bytes"),
    ("VIEWERS", "viewers"),
    ("MODEL", "model"),
]
_DEAD_COLUMNS = [
    ("DEAD_LETTER", "id"),
    ("AGE_S", "age_seconds"),
    ("JOB", "job"),
    ("JOB_STATUS", "job_status"),
    ("REASON", "reason"),
]
_PARTITION_COLUMNS = [
    ("PARTITION", "key"),
    ("LENGTH", "length"),
    ("WAITING", "waiting"),
    ("PENDING", "pending"),
    ("OLDEST_WAITING_S", "oldest_waiting_seconds"),
    ("LAST_DELIVERED", "last_delivered_id"),
]
_CONSUMER_COLUMNS = [("CONSUMER", "name"), ("PENDING", "pending"), ("IDLE_S", "idle_seconds")]


def add_parser(commands: Any) -> None:
    """Register ``tokenrelay jobs`` on the main command's subparsers."""
    jobs = commands.add_parser(
        "jobs", help="inspect and act on jobs, the queue and dead letters (talks to Redis)"
    )
    _add_common_flags(jobs, argparse.SUPPRESS)
    jobs.set_defaults(json=False, redis_url=None)
    # The same flags are accepted after the action too (`tokenrelay jobs list --json`).
    common = argparse.ArgumentParser(add_help=False)
    _add_common_flags(common, argparse.SUPPRESS)
    actions = jobs.add_subparsers(dest="action", required=True, parser_class=_with(common))
    listing = actions.add_parser("list", help="running and queued jobs")
    listing.add_argument("--limit", type=int, default=1000, help="entries read per partition")
    listing.set_defaults(run=_list)
    show = actions.add_parser("show", help="one job: record, progress, queue entry, viewers")
    show.add_argument("job_id")
    show.set_defaults(run=_show)
    cancel = actions.add_parser("cancel", help="cancel a job (as DELETE /v1/jobs/{id})")
    cancel.add_argument("job_id")
    cancel.set_defaults(run=_cancel)
    dead = actions.add_parser("dead", help="dead-lettered queue entries, newest first")
    dead.add_argument("--limit", type=int, default=100)
    dead.set_defaults(run=_dead)
    again = actions.add_parser("requeue", help="run a dead-lettered job again")
    again.add_argument("ref", help="a dead letter's id, or the id of the job it names")
    again.set_defaults(run=_requeue)
    queue = actions.add_parser("queue", help="queue partitions, consumer group, workers")
    queue.set_defaults(run=_queue)
    jobs.set_defaults(func=run_jobs_command)


def _add_common_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--redis-url", dest="redis_url", default=default, help="Redis URL (TOKENRELAY_REDIS_URL)"
    )
    parser.add_argument(
        "--json", action="store_true", default=default, help="print JSON instead of a table"
    )


def _with(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """A parser class whose parsers all take ``common``'s flags."""

    class ActionParser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("parents", [common])
            super().__init__(*args, **kwargs)

    return ActionParser


def run_jobs_command(args: argparse.Namespace) -> int:
    """Run one ``tokenrelay jobs`` action; print its result; the exit status."""
    overrides = {"redis_url": args.redis_url} if args.redis_url else {}
    settings = load_settings(overrides)
    try:
        result = asyncio.run(_with_redis(settings, args.run, args))
    except RedisError as exc:
        raise Unavailable(f"cannot use Redis at {settings.redis_url}: {exc}") from exc
    if args.json:
        print(as_json(result))
    else:
        print(_render(args.action, result))
    return 0


async def _with_redis(settings: Settings, action: Action, args: argparse.Namespace) -> Any:
    redis = connect(settings.required_redis_url, max_connections=16)
    try:
        return await action(redis, settings, args)
    finally:
        await redis.aclose()


async def _list(redis: AnyRedis, settings: Settings, args: argparse.Namespace) -> Any:
    return await list_jobs(redis, args.limit)


async def _show(redis: AnyRedis, settings: Settings, args: argparse.Namespace) -> Any:
    return await show_job(redis, args.job_id)


async def _cancel(redis: AnyRedis, settings: Settings, args: argparse.Namespace) -> Any:
    await cancel_job(redis, Scripts.register(redis), settings, args.job_id)
    return {"id": args.job_id, "status": "cancelled"}


async def _dead(redis: AnyRedis, settings: Settings, args: argparse.Namespace) -> Any:
    return await dead_letters(redis, args.limit)


async def _requeue(redis: AnyRedis, settings: Settings, args: argparse.Namespace) -> Any:
    letter = await find_dead_letter(redis, args.ref)
    done = await requeue(redis, Scripts.register(redis), settings, letter)
    return {
        "dead_letter": done.dead_letter,
        "job": done.job_id,
        "queue_entry": done.queue_entry,
        "note": done.note,
    }


async def _queue(redis: AnyRedis, settings: Settings, args: argparse.Namespace) -> Any:
    return (await read_queue_status(redis)).to_json()


def _render(action: str, result: Any) -> str:
    if action == "list":
        return table(_LIST_COLUMNS, result) if result else "no running or queued jobs"
    if action == "dead":
        return table(_DEAD_COLUMNS, result) if result else "no dead letters"
    if action == "queue":
        totals = key_values(
            [
                (name, result[name])
                for name in (
                    "length",
                    "waiting",
                    "pending",
                    "oldest_waiting_seconds",
                    "dead_letters",
                )
            ]
        )
        parts = [totals, "", table(_PARTITION_COLUMNS, result["partitions"])]
        if result["consumers"]:
            parts += ["", table(_CONSUMER_COLUMNS, result["consumers"])]
        return "\n".join(parts)
    if action == "show":
        entry = result.pop("queue_entry", None) or {}
        pairs = sorted(result.items())
        pairs += [(f"queue_entry.{name}", value) for name, value in entry.items()]
        return key_values([(name, _flat(value)) for name, value in pairs])
    return key_values([(name, _flat(value)) for name, value in result.items()])


def _flat(value: Any) -> Any:
    """Nested values (request, usage, error) on one line."""
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value
