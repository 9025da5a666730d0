"""``tokenrelay gateway --processes 2``: two processes on one port (SO_REUSEPORT), both serve,
every viewer's stream is exact, SIGTERM stops them all, a killed one is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from service.cli.embedded_redis import free_port
from service.cli.launcher import Child, settings_env, tokenrelay_argv
from service.contract.settings import Settings
from tests.conftest import RunningWorker
from tests.jobs_api import upstream_text, wait_for
from tests.processes import ROOT
from tests.sse_client import ResumingViewer

pytestmark = pytest.mark.slow

VIEWERS = 24


def gateway_processes(settings: Settings, log_dir: Path, count: int) -> Child:
    """``tokenrelay gateway --processes count`` on a free port (not started)."""
    port = free_port()
    env = settings_env(settings, TOKENRELAY_PORT=str(port))
    argv = tokenrelay_argv("gateway", "--processes", str(count))
    return Child("gateways", argv, log_dir / "gateways.log", env=env, cwd=ROOT, port=port)


def children_of(pid: int) -> list[int]:
    """Direct children of a process (from ``/proc``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def established(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` the process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


async def started(child: Child, count: int) -> list[int]:
    """Start the parent; once it says all ``count`` children listen, their pids."""
    await asyncio.to_thread(child.start)

    async def all_listening() -> bool:
        child.check()
        return f"{count} processes serving" in child.log_text()

    await wait_for(all_listening, within=30)
    pids = children_of(child.pid)
    assert len(pids) == count
    return pids


async def submit(http: aiohttp.ClientSession, base: str, prompt: str) -> dict[str, Any]:
    async with http.post(f"{base}/v1/jobs", json={"prompt": prompt}) as response:
        assert response.status == 202
        job: dict[str, Any] = await response.json()
        return job


async def test_two_processes_serve_one_port_exactly_and_stop_on_sigterm(
    settings: Settings,
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    parent = gateway_processes(settings, tmp_path, 2)
    try:
        pids = await started(parent, 2)
        assert len(set(pids)) == 2
        assert parent.port is not None
        port = parent.port
        job = await submit(http, parent.url, "python\n#sim tokens=200 rate=60 unicode=1")
        viewers = [ResumingViewer(http, parent.url + job["events_url"]) for _ in range(VIEWERS)]
        readers = [asyncio.create_task(viewer.read()) for viewer in viewers]

        async def all_connected() -> bool:
            return sum(established(pid, port) for pid in pids) >= VIEWERS

        await wait_for(all_connected)
        # The kernel spread the connections over both processes (24 of them: all on one
        # would be a 1 in 8 million chance).
        held = [established(pid, port) for pid in pids]
        assert sum(held) >= VIEWERS
        assert all(n > 0 for n in held), held
        await asyncio.gather(*readers)
        expected = await upstream_text(http, upstream_url, job["id"])
        for viewer in viewers:
            assert viewer.finished
            ids = [event.id for event in viewer.events]
            assert len(ids) == len(set(ids))
            assert viewer.text == expected
        parent.signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, 20.0) == 0
        for pid in pids:
            assert not await asyncio.to_thread(Path(f"/proc/{pid}").exists)
    finally:
        await asyncio.to_thread(parent.stop, 20.0)


async def test_a_killed_process_is_replaced_and_its_viewers_resume_exactly(
    settings: Settings,
    worker: RunningWorker,
    http: aiohttp.ClientSession,
    upstream_url: str,
    tmp_path: Path,
) -> None:
    parent = gateway_processes(settings, tmp_path, 2)
    try:
        pids = await started(parent, 2)
        assert parent.port is not None
        port = parent.port
        job = await submit(http, parent.url, "rust\n#sim tokens=250 rate=60 unicode=1")
        viewers = [ResumingViewer(http, parent.url + job["events_url"]) for _ in range(VIEWERS)]
        readers = [asyncio.create_task(viewer.read()) for viewer in viewers]

        async def all_connected() -> bool:
            return sum(established(pid, port) for pid in pids) >= VIEWERS

        await wait_for(all_connected)
        await asyncio.sleep(0.5)  # tokens flowing: the kill lands mid-stream
        doomed = max(pids, key=lambda pid: established(pid, port))
        os.kill(doomed, signal.SIGKILL)
        await asyncio.gather(*readers)

        async def replaced() -> bool:
            parent.check()
            now = children_of(parent.pid)
            return len(now) == 2 and doomed not in now

        await wait_for(replaced, within=20)
        # Cut-off viewers reconnect (to whichever process the kernel picks) and resume.
        for viewer in viewers:
            while not viewer.finished:
                await viewer.read()
        expected = await upstream_text(http, upstream_url, job["id"])
        assert sum(viewer.connections > 1 for viewer in viewers) > 0
        for viewer in viewers:
            ids = [event.id for event in viewer.events]
            assert len(ids) == len(set(ids))
            assert viewer.text == expected
        assert "started" in parent.log_text() and f"{doomed} exited" in parent.log_text()
        parent.signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, 20.0) == 0
    finally:
        await asyncio.to_thread(parent.stop, 20.0)
