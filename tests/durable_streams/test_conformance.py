"""The gate of the Durable Streams server (service/gateway/durable_streams/): the official
conformance suite (npm ``@durable-streams/server-conformance-tests``, pinned by this folder's
package-lock.json) against a real gateway on a real Redis, and ``@durable-streams/client``
following a tokenrelay job (job_stream.test.ts). vitest runs both and reports JSON; every
suite test that does not pass must be listed, with its reason, in known_failures.json, and
at least as many must pass as against the reference server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from service.contract.settings import Settings
from service.contract.store.redis_client import AnyRedis
from service.gateway.app import create_app
from tests.conftest import RunningWorker
from tests.durable_streams.conftest import LONG_POLL_SECONDS

HERE = Path(__file__).resolve().parent
KNOWN = json.loads((HERE / "known_failures.json").read_text("utf-8"))
SUITE_FILE = "conformance.test.ts"
CLIENT_FILE = "job_stream.test.ts"


def _results(report: dict[str, Any], file_name: str) -> dict[str, str]:
    """Test id (describe titles > title) -> status, for one test file of the report."""
    results: dict[str, str] = {}
    for test_file in report["testResults"]:
        if not test_file["name"].endswith(file_name):
            continue
        for test in test_file["assertionResults"]:
            test_id = " > ".join([*test["ancestorTitles"], test["title"]])
            results[test_id] = test["status"]
    return results


async def _vitest(base_url: str, output: Path) -> tuple[int, str]:
    npx = shutil.which("npx")
    assert npx is not None, "Node.js (npx) is needed to run the Durable Streams suite"
    assert (HERE / "node_modules" / ".installed").exists(), (
        "the suite is not installed: run `make test` (or `npm ci --prefix tests/durable_streams`)"
    )
    env = {
        **os.environ,
        "DS_BASE_URL": base_url,
        "DS_LONG_POLL_MS": str(int(LONG_POLL_SECONDS * 1000)),
        "NO_COLOR": "1",
        "CI": "true",
    }
    process = await asyncio.create_subprocess_exec(
        npx,
        "vitest",
        "run",
        "--reporter=json",
        f"--outputFile={output}",
        SUITE_FILE,
        CLIENT_FILE,
        cwd=HERE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_the_official_suite_passes_and_a_client_resumes_a_job_exactly(
    settings: Settings, redis: AnyRedis, worker: RunningWorker, tmp_path: Path
) -> None:
    app = await create_app(settings, redis)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        base_url = str(server.make_url("")).rstrip("/")
        _, log = await _vitest(base_url, tmp_path / "report.json")
    finally:
        await server.close()
    report_file = tmp_path / "report.json"
    assert report_file.exists(), log[-4000:]
    report = json.loads(report_file.read_text("utf-8"))

    client = _results(report, CLIENT_FILE)
    assert client and all(status == "passed" for status in client.values()), (client, log[-4000:])

    suite = _results(report, SUITE_FILE)
    passed = [test for test, status in suite.items() if status == "passed"]
    not_passed = {test: status for test, status in suite.items() if status != "passed"}
    known = {test: entry["status"] for test, entry in KNOWN["tests"].items()}
    assert len(suite) == KNOWN["total"], f"the suite has {len(suite)} tests, not {KNOWN['total']}"
    assert not_passed == known, (
        "not passed but not listed in known_failures.json: "
        f"{sorted(set(not_passed.items()) - set(known.items()))}; listed but passed now: "
        f"{sorted(set(known.items()) - set(not_passed.items()))}"
    )
    assert len(passed) >= KNOWN["reference_passed"]
