"""``tokenrelay submit --watch`` and ``tokenrelay watch`` as real subprocesses: piped, they print
exactly the job's text; under a pseudo-terminal the screen shows exactly it; the exit code
says how the job ended."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import sys
import termios
from dataclasses import dataclass
from typing import Any

import aiohttp
import pyte
from aiohttp.test_utils import TestClient

from service.gateway.state import STATE
from tests.conftest import RunningWorker
from tests.jobs_api import (
    cancel,
    submit,
    upstream_requests,
    upstream_text,
    wait_for,
    wait_until_ended,
)
from tests.processes import ROOT

EXIT_DONE, EXIT_FAILED, EXIT_REFUSED, EXIT_CANCELLED = 0, 1, 2, 3


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENRELAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def tokenrelay(*args: str, url: str) -> Run:
    """Run ``tokenrelay ARGS --url URL`` with pipes."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        *args,
        "--url",
        url,
        cwd=ROOT,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Run(process.returncode, stdout, stderr.decode())


def _job_id(run: Run) -> str:
    for line in run.stderr.splitlines():
        if line.startswith("tokenrelay: job "):
            return line.removeprefix("tokenrelay: job ").strip()
    raise AssertionError(f"no job id in stderr: {run.stderr}")


async def test_submit_watch_piped_prints_exactly_the_text_and_exits_0(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    run = await tokenrelay(
        "submit",
        "write a quicksort\n#sim tokens=120 rate=300 unicode=1",
        "--language",
        "python",
        "--watch",
        url=url,
    )
    assert run.code == EXIT_DONE, run.stderr
    assert run.stdout.decode("utf-8") == await upstream_text(http, upstream_url, _job_id(run))


async def test_watch_piped_stays_exact_through_a_retried_attempt(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    job = await submit(gateway, "retry\n#sim tokens=60 rate=150 fail=cut after=8 times=1")
    run = await tokenrelay("watch", job["id"], "--from-start", url=url)
    assert run.code == EXIT_DONE, run.stderr
    assert len(await upstream_requests(http, upstream_url, job["id"])) == 2
    assert run.stdout.decode("utf-8") == await upstream_text(http, upstream_url, job["id"])


async def test_watch_of_a_finished_job_prints_its_text_and_the_exit_code_says_how_it_ended(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    done = await submit(gateway, "done\n#sim tokens=40")
    failed = await submit(gateway, "failing\n#sim tokens=10 fail=500")
    await wait_until_ended(gateway, done["id"])
    await wait_until_ended(gateway, failed["id"])
    expected = await upstream_text(http, upstream_url, done["id"])
    for extra in ([], ["--from-start"]):
        run = await tokenrelay("watch", done["id"], *extra, url=url)
        assert (run.code, run.stdout.decode()) == (EXIT_DONE, expected), run.stderr
    run = await tokenrelay("watch", failed["id"], url=url)
    assert run.code == EXIT_FAILED, run.stderr
    unknown = await tokenrelay("watch", "nosuchjob1234567", url=url)
    assert unknown.code == EXIT_REFUSED
    assert "no job" in unknown.stderr


async def test_watch_exits_3_when_the_job_is_cancelled_while_watching(
    gateway: TestClient[Any, Any], worker: RunningWorker
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    job = await submit(gateway, "slow\n#sim tokens=500 rate=40")
    watching = asyncio.create_task(tokenrelay("watch", job["id"], url=url))

    async def some_output() -> bool:
        record = await (await gateway.get(f"/v1/jobs/{job['id']}")).json()
        return len(record["output"]) > 0

    await wait_for(some_output)

    async def watcher_connected() -> bool:
        # The watcher's events stream is open on the gateway.
        return bool(gateway.app[STATE].hub.viewer_count(job["id"]) == 1)

    await wait_for(watcher_connected)
    assert (await cancel(gateway, job)).status == 200
    run = await watching
    assert run.code == EXIT_CANCELLED, run.stderr
    record = await wait_until_ended(gateway, job["id"])
    assert run.stdout.decode() == record["output"]


COLUMNS, ROWS = 160, 400


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_under_a_terminal_the_screen_shows_exactly_the_code(
    gateway: TestClient[Any, Any],
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    job = await submit(gateway, "a stack class\n#sim tokens=150 rate=300", language="python")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {**_env(), "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "watch",
        job["id"],
        "--url",
        url,
        cwd=ROOT,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    try:
        output = await asyncio.wait_for(asyncio.to_thread(_read_all, master), timeout=60)
        code = await asyncio.wait_for(process.wait(), timeout=10)
    finally:
        os.close(master)
    assert code == EXIT_DONE
    assert b"\x1b[" in output  # coloured
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(output)
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    assert lines[-1].startswith("● done"), lines[-3:]
    shown = "\n".join(lines[:-1])
    expected = await upstream_text(http, upstream_url, job["id"])
    expected_lines = [line.rstrip() for line in expected.expandtabs(8).split("\n")]
    assert shown == "\n".join(expected_lines).rstrip("\n")
