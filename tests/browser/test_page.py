"""The page in a real browser (headless Debian Chromium) against a real gateway process, worker
process, redis-server and simulated upstream: what a person at the page sees is exactly the
job's output, through share links, network drops, gateway restarts, Stop and retries. (The
editing flows, accept, reject and stale targets, are in test_editor.py.)"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from service.cli.launcher import Child
from tests.browser.pages import (
    Watched,
    ended_record,
    generate,
    normalise_eol,
    open_page,
    poll,
    sim_requests,
    unique_prompt,
    wait_for_chars,
)
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def assert_page_shows_output(
    watched: Watched,
    http: aiohttp.ClientSession,
    gateway_url: str,
    sim_url: str,
    job_id: str,
    token: str,
    *,
    within: float = 20,
) -> dict[str, Any]:
    """The page ends `done` with the job's output: exact up to Monaco's one EOL; return the
    record. The record itself must equal what the upstream sent in the attempt that counted."""
    await expect(watched.page.locator("#status")).to_have_text("done", timeout=within * 1000)
    await expect(watched.page.locator("#conn")).to_have_text("closed")
    record = await ended_record(http, gateway_url, job_id, token)
    assert record["status"] == "done", record
    requests = await sim_requests(http, sim_url, job_id)
    assert requests, "the upstream never saw the job"
    assert record["output"] == requests[-1]["text"], "the record differs from the upstream's text"
    text = await watched.text()
    assert normalise_eol(text) == normalise_eol(record["output"]), (
        f"page ({len(text)} chars) differs from the job output ({len(record['output'])} chars)"
    )
    # What the person sees: the pending edit shows the whole output (the diff is built from it).
    shown = (await watched.inspect())["pendingShown"]
    assert shown is not None and normalise_eol(shown) == normalise_eol(record["output"])
    assert await watched.state() == "done"
    return record


async def test_generate_shows_exactly_the_job_output_without_console_errors_or_csp_violations(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, sim_url: str
) -> None:
    watched = await open_page(await contexts(), stack.url + "/")
    job_id, token = await generate(
        watched, unique_prompt("a python parser", "tokens=220 rate=150 unicode=1")
    )
    record = await assert_page_shows_output(watched, http, stack.url, sim_url, job_id, token)
    # unicode=1 streams CJK, emoji with ZWJ, U+2028/U+0085, a BOM, split CRLF and lone CR.
    assert "👩\u200d💻" in record["output"] and "\r\n" in record["output"]
    assert "\u2028" in await watched.text()
    await expect(watched.page.locator("#chars")).to_have_text(
        f"{len(record['output']):,} chars"
    )  # the page counts code points, as Python's len does
    assert watched.page_errors == []
    assert watched.console_errors == []
    assert await watched.csp_violations() == []
    # The listener is live: an image from another origin is a violation it reports.
    await watched.page.evaluate(
        "() => { const img = new Image(); img.src = 'http://127.0.0.2:9/x.png';"
        " document.body.append(img); }"
    )
    await poll(watched.csp_violations, bool, within=5, what="a provoked img-src violation")


VIEWER_COUNT = re.compile(r"^(\d+) viewers?$")


async def test_share_link_opened_mid_stream_ends_with_the_same_text_and_counts_two_viewers(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, sim_url: str
) -> None:
    author = await open_page(await contexts(), stack.url + "/")
    prompt = unique_prompt("a go worker pool", "tokens=1040 rate=80 unicode=1")
    job_id, token = await generate(author, prompt, language="go")
    await wait_for_chars(author, 40)
    share_url = await author.page.locator("#share-link").input_value()
    assert share_url == f"{stack.url}/#job={job_id}&token={token}"

    viewer = await open_page(await contexts(), share_url)  # another profile: another machine
    assert await author.state() == "running", "the share link must open mid-stream"
    # Only the page that submitted the job holds its cancel token: the viewer gets no Stop.
    await expect(author.page.locator("#stop")).to_be_visible()
    await expect(viewer.page.locator("#stop")).to_be_hidden()
    await expect(viewer.page.locator("#language")).to_have_value("go")
    await expect(viewer.page.locator("#prompt")).to_have_value(prompt)

    async def counts() -> list[int]:
        seen = []
        for page in (author, viewer):
            label = (await page.page.locator("#viewers").text_content() or "").strip()
            match = VIEWER_COUNT.match(label)
            seen.append(int(match.group(1)) if match else 0)
        return seen

    # The pages refresh the count every 3 s; the job lasts about 13 s, so a slow machine
    # still sees both viewers connected.
    await poll(
        counts, lambda seen: max(seen) >= 2, within=12, what="a viewer count of 2", interval=0.2
    )
    first = await assert_page_shows_output(author, http, stack.url, sim_url, job_id, token)
    second = await assert_page_shows_output(viewer, http, stack.url, sim_url, job_id, token)
    assert first == second
    assert await viewer.text() == await author.text()


async def test_network_drop_mid_stream_shows_reconnecting_then_resumes_exactly(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, sim_url: str
) -> None:
    assert stack.port is not None
    proxy = await TcpProxy("127.0.0.1", stack.port).start()
    try:
        context = await contexts()
        watched = await open_page(context, proxy.url + "/")
        job_id, token = await generate(
            watched, unique_prompt("a rust tokenizer", "tokens=400 rate=80 unicode=1"), "rust"
        )
        conn = watched.page.locator("#conn")
        await wait_for_chars(watched, 60)
        await expect(conn).to_have_text("live")
        # A real drop: every connection through the proxy is reset, and new ones are refused
        # for 2 s. (set_offline alone does not break an open EventSource on 127.0.0.1.)
        await context.set_offline(True)
        assert proxy.drop_all() >= 1
        proxy.refuse(2.0)
        await expect(conn).to_have_text("reconnecting…", timeout=2000)
        chars_at_drop = await watched.chars()
        await context.set_offline(False)
        await expect(conn).to_have_text("reconnecting…")  # still refused: not live yet
        assert await watched.state() == "running"
        accepted_before = proxy.accepted
        await asyncio.wait_for(proxy.accepting.wait(), timeout=5)
        record = await assert_page_shows_output(watched, http, stack.url, sim_url, job_id, token)
        assert chars_at_drop < len(record["output"]), "the drop was not mid-stream"
        assert await watched.reconnects() >= 1
        assert proxy.accepted > accepted_before, "the page did not come back through the proxy"
    finally:
        await proxy.close()


async def test_gateway_process_restarted_mid_stream_the_page_resumes_by_itself(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, sim_url: str
) -> None:
    watched = await open_page(await contexts(), stack.url + "/")
    job_id, token = await generate(
        watched, unique_prompt("a typescript lexer", "tokens=400 rate=80 unicode=1"), "typescript"
    )
    await wait_for_chars(watched, 60)
    try:
        await asyncio.to_thread(stack.kill)  # SIGKILL: a crash
        await expect(watched.page.locator("#conn")).to_have_text("reconnecting…", timeout=3000)
        chars_at_kill = await watched.chars()
        await asyncio.to_thread(stack.start)  # a new process on the same port
    finally:
        if not stack.alive():
            await asyncio.to_thread(stack.start)  # leave a gateway for the next tests
    record = await assert_page_shows_output(watched, http, stack.url, sim_url, job_id, token)
    assert chars_at_kill < len(record["output"]), "the restart was not mid-stream"
    assert await watched.reconnects() >= 1


async def test_stop_cancels_the_job_and_ends_the_upstream_call(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, sim_url: str
) -> None:
    watched = await open_page(await contexts(), stack.url + "/")
    prompt = unique_prompt("a long java service", "tokens=3000 rate=60")
    job_id, token = await generate(watched, prompt, "java")
    await wait_for_chars(watched, 40)
    stop = watched.page.locator("#stop")
    await expect(stop).to_be_enabled()
    clicked = time.time()
    await stop.click()
    await expect(watched.page.locator("#status")).to_have_text("cancelled", timeout=5000)
    await expect(watched.page.locator("#conn")).to_have_text("closed")
    await expect(stop).to_be_disabled()
    assert await watched.state() == "cancelled"
    record = await ended_record(http, stack.url, job_id, token, within=5)
    assert record["status"] == "cancelled", record

    async def upstream() -> list[dict[str, Any]]:
        return await sim_requests(http, sim_url, job_id)

    requests = await poll(
        upstream,
        lambda rs: bool(rs) and rs[-1]["status"] != "streaming",
        within=5,
        what="the upstream call ends",
    )
    assert [r["status"] for r in requests] == ["client_disconnected"]
    assert requests[0]["ended_at"] - clicked < 3, "the upstream call outlived Stop by > 3 s"
    assert requests[0]["chunks_sent"] < 3000
    assert normalise_eol(await watched.text()) == normalise_eol(record["output"])


async def test_upstream_cut_mid_stream_leaves_exactly_the_retried_output(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, sim_url: str
) -> None:
    watched = await open_page(await contexts(), stack.url + "/")
    directives = "tokens=240 rate=60 unicode=1 fail=cut after=60 times=1"
    job_id, token = await generate(watched, unique_prompt("a c ring buffer", directives), "c")
    # The cut comes after the code-only output has released its first lines (docs/protocol.md,
    # code-only output), so there is text to reset; the page announces the retry while
    # attempt 2 streams (about 3 s).
    await expect(watched.page.locator("#detail")).to_contain_text(
        "retrying (attempt 2)", timeout=5000
    )
    record = await assert_page_shows_output(watched, http, stack.url, sim_url, job_id, token)
    assert record["attempt"] == 2
    first, second = await sim_requests(http, sim_url, job_id)
    assert first["fault"] == "cut" and first["chunks_sent"] == 60
    attempts = [r["headers"]["x-tokenrelay-attempt"] for r in (first, second)]
    assert attempts == ["1", "2"]
    # The retry repeats the cut text: had the page kept it, the editor would hold it twice.
    assert first["text"] and second["text"].startswith(first["text"])
    assert normalise_eol(await watched.text()) == normalise_eol(second["text"])


async def test_screenshots_mid_generation_wide_and_400px(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, sim_url: str, output_dir: Path
) -> None:
    wide = await open_page(await contexts(), stack.url + "/")
    job_id, token = await generate(
        wide, unique_prompt("an http router in python", "tokens=1500 rate=150 unicode=1")
    )
    narrow_context = await contexts(viewport={"width": 400, "height": 800})
    narrow = await open_page(narrow_context, f"{stack.url}/#job={job_id}&token={token}")
    await wait_for_chars(wide, 700)
    await wait_for_chars(narrow, 700)
    wide_path = output_dir / "page-mid-generation.png"
    narrow_path = output_dir / "page-mid-generation-400px.png"
    await wide.page.screenshot(path=str(wide_path))
    await narrow.page.screenshot(path=str(narrow_path), full_page=True)
    assert await wide.state() == "running" and await narrow.state() == "running"
    assert wide_path.stat().st_size > 10_000 and narrow_path.stat().st_size > 10_000
    # Usable from 400 px: nothing wider than the window, the controls and editor in view.
    width = await narrow.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 400
    for selector in ("#generate", "#editor", "#status"):
        box = await narrow.page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 400, selector
    assert await narrow.page.locator("#stop").is_hidden()  # a share-link viewer cannot stop
    await assert_page_shows_output(wide, http, stack.url, sim_url, job_id, token)
    await assert_page_shows_output(narrow, http, stack.url, sim_url, job_id, token)
