"""A reconnect storm: thousands of viewers drop at once and resume with Last-Event-ID; all
end exact, and the gateway keeps answering health checks meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from tests.conftest import RunningWorker
from tests.jobs_api import upstream_text
from tests.processes import gateway_process
from tests.sse_client import ResumingViewer

pytestmark = pytest.mark.slow

VIEWERS = 2000


async def test_two_thousand_viewers_reconnecting_at_once_all_resume_exactly(
    settings: Settings, redis: AnyRedis, upstream_url: str, tmp_path: Path
) -> None:
    gateway = gateway_process(settings, tmp_path).start()
    # The worker and the simulated upstream share this process with 2,000 busy clients
    # decoding every event in Python: the tests' short upstream timeouts would measure this
    # process's load, not the storm (the 5 s answer took up to 50 s here).
    worker = RunningWorker(
        settings.model_copy(
            update={
                "upstream_idle_timeout": 15.0,
                "upstream_first_token_timeout": 15.0,
                "upstream_total_timeout": 110.0,
            }
        )
    )
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            async with http.post(
                f"{gateway.url}/v1/jobs",
                json={"prompt": "storm\n#sim tokens=4000 rate=800 unicode=1"},
            ) as response:
                job = await response.json()
            url = gateway.url + job["events_url"]
            viewers = [ResumingViewer(http, url) for _ in range(VIEWERS)]
            # Everyone connects and reads a little, then all drop together.
            await asyncio.gather(*(viewer.read(max_events=3) for viewer in viewers))
            storm = asyncio.gather(*(_finish(viewer) for viewer in viewers))
            health = []
            while not storm.done():
                async with http.get(f"{gateway.url}/healthz") as reply:
                    health.append(reply.status)
                await asyncio.sleep(0.2)
            await storm
            expected = await upstream_text(http, upstream_url, job["id"])
            exact = sum(viewer.text == expected for viewer in viewers)
            assert exact == VIEWERS
            assert all(len({e.id for e in v.events}) == len(v.events) for v in viewers)
            assert health and set(health) == {200}
    finally:
        gateway.kill()
        await worker.shutdown()


async def _finish(viewer: ResumingViewer) -> None:
    while not viewer.finished:
        await viewer.read()
