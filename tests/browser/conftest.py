"""Browser fixtures: one real stack per module (redis-server, simulated upstream, gateway and
worker processes) and one headless Debian Chromium driven by Playwright's async API.

Everything async here lives in the module's event loop (the tests use
``pytest.mark.asyncio(loop_scope="module")``), so Chromium starts once per module. The gateway
and the worker are real child processes: a test can kill and restart the gateway, and nothing
the tests do in this loop can stall them.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from service.cli.embedded_redis import RedisServer
from service.cli.launcher import Child
from service.contract.settings import Settings
from simulator.cli import start_simulator
from simulator.config import SimConfig
from tests.conftest import make_settings
from tests.processes import gateway_process, worker_process

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

MISSING_CHROMIUM = (
    "the browser tests need Debian's Chromium on PATH and found no `chromium`: run "
    "`apt-get install -y chromium fonts-noto-cjk` (as root; `make test` does it), then again. "
    "Do not run `playwright install`: these tests never use Playwright's own browser."
)
MISSING_PLAYWRIGHT = (
    "the browser tests need Playwright for Python: `.venv/bin/pip install -e '.[dev]'` "
    "(or `pip install playwright`); it drives the system's chromium, no `playwright install`."
)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-logs")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim_url() -> AsyncIterator[str]:
    """The simulated upstream, in this loop; prompts set pace and faults with ``#sim`` lines."""
    runner, url = await start_simulator(SimConfig(tokens_per_second=60, default_tokens=200))
    yield url
    await runner.cleanup()


@pytest.fixture(scope="module")
def stack_settings(redis_server: RedisServer, sim_url: str) -> Settings:
    return make_settings(redis_url=redis_server.url, upstream_url=sim_url)


@pytest.fixture(scope="module")
def gateway(stack_settings: Settings, log_dir: Path) -> Iterator[Child]:
    """A gateway process; a test that kills it must leave one running on the same port."""
    process = gateway_process(stack_settings, log_dir).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def worker(stack_settings: Settings, log_dir: Path) -> Iterator[Child]:
    process = worker_process(stack_settings, log_dir, "browser-tests").start()
    yield process
    process.stop()


@pytest.fixture
def stack(gateway: Child, worker: Child) -> Child:
    """The running stack's gateway, after checking that both processes are alive."""
    for process in (gateway, worker):
        assert process.alive(), f"{process.name} is not running: {process.log_path}"
    return gateway


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium from PATH. Missing Chromium or Playwright FAILS the tests (no skip)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail(MISSING_PLAYWRIGHT, pytrace=False)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def contexts(browser: Any) -> AsyncIterator[Any]:
    """A factory of fresh browser contexts (separate profiles, like separate machines)."""
    opened: list[Any] = []

    async def new_context(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = await browser.new_context(**options)
        opened.append(context)
        return context

    yield new_context
    for context in opened:
        await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, attach the tails of the gateway and worker logs to the report."""
    report = yield
    if report.failed and call.when == "call":
        log_path: Path | None = None
        funcargs = getattr(item, "funcargs", {})
        if "log_dir" in funcargs:
            log_path = funcargs["log_dir"]
        if log_path is not None:
            for log in sorted(log_path.glob("*.log")):
                report.sections.append((f"log {log.name}", log.read_text(errors="replace")[-4000:]))
    return report
