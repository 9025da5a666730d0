"""The page shows clean code: the simulator answers like a chat model (prose, fences), the
editor gets only the first block's code and switches to the language its fence names."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from service.cli.launcher import Child
from tests.browser.pages import (
    ended_record,
    generate,
    normalise_eol,
    open_page,
    poll,
    sim_requests,
    unique_prompt,
)
from worker.code_extractor import extract_code

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def test_the_page_shows_only_the_code_in_the_language_its_fence_names(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, sim_url: str
) -> None:
    watched = await open_page(await contexts(), stack.url + "/")
    # Into a new, empty document (the code is all of it, so it takes the fence's language).
    await watched.page.locator("#new-doc").click()
    # Asked in Python on the page; the model answers in Go, in a ```go block between prose.
    job_id, token = await generate(
        watched, unique_prompt("a binary search in go", "tokens=120 rate=150 fences=2"), "python"
    )
    await expect(watched.page.locator("#status")).to_have_text("done", timeout=20_000)
    record = await ended_record(http, stack.url, job_id, token)
    raw = (await sim_requests(http, sim_url, job_id))[-1]["text"]
    assert record["raw_output"] == raw and "```" in raw
    assert record["output"] == extract_code(raw).code
    text = await watched.text()
    assert normalise_eol(text) == normalise_eol(record["output"])
    assert "```" not in text and text.startswith("package main")

    async def editor_language() -> str:
        language: str = await watched.page.evaluate(
            "() => window.tokenrelay.editor.getModel().getLanguageId()"
        )
        return language

    await poll(editor_language, lambda id: id == "go", within=5, what="the editor shows Go")
    assert watched.page_errors == [] and watched.console_errors == []
