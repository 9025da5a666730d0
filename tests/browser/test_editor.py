"""The page as an AI code editor, in a real browser against the real stack: open a document,
select a function, ask for a change, watch it stream in as a pending edit (the document
untouched), review the diff, accept (one undoable edit) or reject; stale targets are never
applied blindly; a share-link viewer sees the same edit land through a network cut; the history
reopens a running job live; theme, copy, download, drop and keyboard-only use.

Each state is photographed into test-output/ (``editor-*.png``)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from service.cli.launcher import Child
from tests.browser.pages import (
    Span,
    Watched,
    applied,
    ask,
    ended_record,
    expect_focused,
    normalise_eol,
    open_document,
    open_page,
    poll,
    select,
    sim_requests,
    unique_prompt,
    wait_for_chars,
    wait_for_review,
)
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

BASE = '''"""Text helpers."""

import re


def slugify(title):
    """Lowercase words joined by dashes."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)


def shout(text):
    return text.upper() + "!"
'''
# slugify(), from its `def` to the end of its last line.
SLUGIFY = Span(6, 1, 9, 27)
SHOUT = Span(12, 1, 13, 30)


async def shot(watched: Watched, output_dir: Path, name: str, *, full_page: bool = False) -> Path:
    """A screenshot of the page into the test output (look at them: they are the UI's record)."""
    path = output_dir / f"editor-{name}.png"
    await watched.page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 5_000
    return path


async def edit_page(contexts: Any, url: str, **options: Any) -> Watched:
    """A fresh browser profile with the page open on BASE as `text.py`."""
    watched = await open_page(await contexts(**options), url)
    await open_document(watched, "text.py", BASE)
    return watched


async def done_record(
    http: aiohttp.ClientSession, stack: Child, job: tuple[str, str]
) -> dict[str, Any]:
    record = await ended_record(http, stack.url, *job)
    assert record["status"] == "done", record
    return record


async def test_select_a_function_ask_accept_and_one_undo_restores_the_base(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, sim_url: str, output_dir: Path
) -> None:
    watched = await edit_page(contexts, stack.url + "/")
    page = watched.page
    await select(watched, SLUGIFY)
    await expect(page.locator("#target-hint")).to_have_text("Replaces lines 6–9 of text.py.")
    job = await ask(watched, unique_prompt("keep unicode letters", "tokens=160 rate=50"))
    await wait_for_chars(watched, 60)
    # Streaming: the text shows at the target, decorated; the document is untouched.
    state = await watched.inspect()
    assert state["host"] == "owner" and state["pendingText"]
    assert await watched.document() == BASE
    await expect(page.locator(".tr-pending")).to_be_visible()
    await expect(page.locator(".tr-target").first).to_be_visible()
    title = page.locator("#review-title")
    await expect(title).to_have_text("Generating into lines 6–9 of text.py…")
    await shot(watched, output_dir, "1-pending-edit")

    review = await wait_for_review(watched)
    record = await done_record(http, stack, job)
    assert record["target"]["base"] == BASE and record["target"]["name"] == "text.py"
    assert record["target"]["range"] == {
        "start_line": 6,
        "start_column": 1,
        "end_line": 9,
        "end_column": 27,
    }
    (request,) = await sim_requests(http, sim_url, job[0])
    start, end = SLUGIFY.offsets(BASE)
    assert f"<selection>\n{BASE[start:end]}\n</selection>" in request["prompt"]
    expected = applied(BASE, SLUGIFY, record["output"])
    assert review == {"original": BASE, "modified": expected, "stale": False, "owner": True}
    await expect(page.locator("#diff")).to_be_visible()
    await expect(page.locator("#editor")).to_be_hidden()
    assert await watched.document() == BASE  # nothing applied before Accept
    await shot(watched, output_dir, "2-review-diff")

    await page.locator("#accept").click()
    assert await watched.document() == expected
    await expect(page.locator("#review")).to_be_hidden()
    await expect(page.locator(".tr-pending")).to_have_count(0)
    await shot(watched, output_dir, "3-accepted")
    # One undo takes the whole edit back.
    await page.evaluate("() => window.tokenrelay.editor.focus()")
    await page.keyboard.press("Control+z")
    assert await watched.document() == BASE
    await page.keyboard.press("Control+y")
    assert await watched.document() == expected


async def test_reject_stop_and_a_retry_leave_the_document_unchanged(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, output_dir: Path
) -> None:
    watched = await edit_page(contexts, stack.url + "/")
    page = watched.page
    await select(watched, SHOUT)
    job = await ask(watched, unique_prompt("shout twice", "tokens=80 rate=80"))
    await wait_for_review(watched)
    await done_record(http, stack, job)
    await page.locator("#reject").click()
    await expect(page.locator("#review")).to_be_hidden()
    await expect(page.locator(".tr-pending")).to_have_count(0)
    await expect(page.locator(".tr-target")).to_have_count(0)
    await expect(page.locator("#detail")).to_have_text("rejected: the document is unchanged")
    assert await watched.document() == BASE
    assert (await watched.inspect())["outcome"] == "rejected"
    await shot(watched, output_dir, "4-rejected")

    # Stop mid-stream: cancelled, nothing applied, the pending edit gone.
    await select(watched, SHOUT)
    await ask(watched, unique_prompt("a long rewrite", "tokens=3000 rate=60"))
    await wait_for_chars(watched, 40)
    await page.locator("#stop").click()
    await expect(page.locator("#status")).to_have_text("cancelled", timeout=5000)
    await expect(page.locator(".tr-pending")).to_have_count(0)
    assert await watched.document() == BASE

    # A retried attempt (reset) starts the pending edit over; the diff has only its text.
    await select(watched, SHOUT)
    directives = "tokens=200 rate=60 fail=cut after=60 times=1"
    job = await ask(watched, unique_prompt("shout on retry", directives))
    await expect(page.locator("#detail")).to_contain_text("retrying (attempt 2)", timeout=8000)
    assert await watched.document() == BASE
    review = await wait_for_review(watched)
    record = await done_record(http, stack, job)
    assert record["attempt"] == 2
    assert review["modified"] == applied(BASE, SHOUT, record["output"])
    await page.locator("#reject").click()
    assert await watched.document() == BASE


async def test_an_edit_inside_the_target_while_streaming_is_never_applied_silently(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, output_dir: Path
) -> None:
    watched = await edit_page(contexts, stack.url + "/")
    page = watched.page
    await select(watched, SLUGIFY)
    job = await ask(watched, unique_prompt("slug with underscores", "tokens=300 rate=40"))
    await wait_for_chars(watched, 30)
    # The person types inside the targeted function while it streams.
    await page.evaluate(
        "() => { const e = window.tokenrelay.editor; e.setPosition({lineNumber: 8, column: 5});"
        " e.focus(); }"
    )
    await page.keyboard.type("# edited meanwhile\n    ")
    edited = await watched.document()
    assert edited != BASE and "# edited meanwhile" in edited
    warning = page.locator("#stale-warning")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text("never applied without your review")
    assert (await watched.inspect())["stale"] is True
    await shot(watched, output_dir, "5-stale-while-streaming")

    review = await wait_for_review(watched)
    record = await done_record(http, stack, job)
    # The diff is against the current text, and nothing was applied.
    assert review["stale"] is True and review["original"] == edited
    assert review["modified"] != edited
    await expect(page.locator("#accept")).to_have_text("Apply anyway")
    await expect(warning).to_contain_text("this diff is against your current text")
    await shot(watched, output_dir, "6-stale-review")
    await asyncio.sleep(0.5)
    assert await watched.document() == edited, "a stale edit was applied without asking"
    # Applying it anyway replaces the target as it is now (with the person's edit inside it).
    await page.locator("#accept").click()
    text = normalise_eol(record["output"]).removesuffix("\n")
    assert await watched.document() == review["modified"]
    assert text in review["modified"] and "# edited meanwhile" not in review["modified"]


async def test_an_edit_elsewhere_moves_the_target_and_accept_lands_right(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, output_dir: Path
) -> None:
    watched = await edit_page(contexts, stack.url + "/")
    page = watched.page
    await select(watched, SHOUT)
    job = await ask(watched, unique_prompt("shout in red", "tokens=300 rate=40"))
    await wait_for_chars(watched, 30)
    header = "# a header typed while the edit streams\n# and one more line\n"
    await page.evaluate(
        "() => { const e = window.tokenrelay.editor; e.setPosition({lineNumber: 1, column: 1});"
        " e.focus(); }"
    )
    await page.keyboard.type(header)
    assert await watched.document() == header + BASE
    await expect(page.locator("#stale-warning")).to_be_hidden()
    await expect(page.locator("#review-title")).to_have_text(
        "Generating into lines 14–15 of text.py…"
    )  # the target moved down two lines
    await shot(watched, output_dir, "7-target-moved")

    review = await wait_for_review(watched)
    record = await done_record(http, stack, job)
    expected = header + applied(BASE, SHOUT, record["output"])
    assert review == {
        "original": header + BASE,
        "modified": expected,
        "stale": False,
        "owner": True,
    }
    await page.locator("#accept").click()
    assert await watched.document() == expected


async def test_a_share_viewer_sees_the_same_pending_edit_and_diff_through_a_network_cut(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, output_dir: Path
) -> None:
    author = await edit_page(contexts, stack.url + "/")
    await select(author, SLUGIFY)
    job = await ask(author, unique_prompt("slugify with a max length", "tokens=500 rate=60"))
    await wait_for_chars(author, 40)
    share_url = await author.page.locator("#share-link").input_value()

    assert stack.port is not None
    proxy = await TcpProxy("127.0.0.1", stack.port).start()
    try:
        viewer_context = await contexts(viewport={"width": 400, "height": 800})
        viewer = await open_page(viewer_context, share_url.replace(stack.url, proxy.url))
        page = viewer.page
        # The base document as it was at submit, the pending edit streaming at the same place.
        await poll(viewer.shown, lambda text: text == BASE, within=10, what="the base document")
        state = await poll(
            viewer.inspect,
            lambda s: s["host"] == "viewer" and bool(s["pendingShown"]),
            within=10,
            what="the viewer's pending edit",
        )
        author_text = await author.text()
        assert author_text.startswith(state["pendingShown"]) or state["pendingShown"].startswith(
            author_text
        )
        await expect(page.locator("#review-title")).to_contain_text(
            "Watching an edit of lines 6–9 of text.py land"
        )
        await expect(page.locator("#stop")).to_be_hidden()
        await expect(page.locator("#accept")).to_be_hidden()
        await expect(page.locator(".tr-target").first).to_be_visible()
        await shot(viewer, output_dir, "8-viewer-400px-pending", full_page=True)

        # A real cut: every connection through the proxy reset, new ones refused for 2 s.
        await viewer_context.set_offline(True)
        assert proxy.drop_all() >= 1
        proxy.refuse(2.0)
        await expect(page.locator("#conn")).to_have_text("reconnecting…", timeout=2000)
        chars_at_cut = await viewer.chars()
        await viewer_context.set_offline(False)
        await asyncio.wait_for(proxy.accepting.wait(), timeout=5)

        viewer_review = await wait_for_review(viewer, within=30)
        author_review = await wait_for_review(author)
        record = await done_record(http, stack, job)
        assert chars_at_cut < len(record["output"]), "the cut was not mid-stream"
        assert await viewer.reconnects() >= 1
        expected = applied(BASE, SLUGIFY, record["output"])
        assert author_review == {
            "original": BASE,
            "modified": expected,
            "stale": False,
            "owner": True,
        }
        assert viewer_review == {**author_review, "owner": False}
        assert normalise_eol((await viewer.inspect())["pendingShown"]) == normalise_eol(
            record["output"]
        )
        await expect(page.locator("#accept")).to_be_hidden()
        await expect(page.locator("#open-result")).to_be_visible()
        await shot(viewer, output_dir, "9-viewer-400px-diff", full_page=True)
        width = await page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 400

        # The viewer keeps the result as a document of their own; the author's is untouched.
        await page.locator("#open-result").click()
        assert await viewer.document() == expected
        await expect(page.locator("#doc-name")).to_have_value("text.py")
        assert await author.document() == BASE
    finally:
        await proxy.close()


async def test_history_reopens_a_running_job_live(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, output_dir: Path
) -> None:
    context = await contexts()
    first = await open_page(context, stack.url + "/")
    await open_document(first, "text.py", BASE)
    await select(first, SHOUT)
    prompt = unique_prompt("shout politely", "tokens=400 rate=50")
    job = await ask(first, prompt)
    await wait_for_chars(first, 20)

    # Another tab of the same browser: its history lists the job, running.
    second = await open_page(context, stack.url + "/")
    item = second.page.locator(f'.history-item[data-job-id="{job[0]}"]')
    await expect(item).to_be_visible()
    await expect(item.locator(".state")).to_have_text("running", timeout=10_000)
    await expect(item.locator(".history-prompt")).to_have_text(prompt.split("\n")[0])
    await shot(second, output_dir, "10-history")

    await item.click()
    assert await second.page.evaluate("() => window.tokenrelay.jobId()") == job[0]
    await expect(second.page.locator("#status")).to_have_text("running", timeout=5000)
    at_open = await wait_for_chars(second, 1)
    await wait_for_chars(second, at_open + 20)  # live: it keeps coming
    await expect(item).to_have_attribute("aria-current", "true")
    await expect(second.page.locator("#stop")).to_be_hidden()  # the other tab holds the token

    review = await wait_for_review(second)
    record = await done_record(http, stack, job)
    assert review["modified"] == applied(BASE, SHOUT, record["output"])
    assert normalise_eol(await second.text()) == normalise_eol(record["output"])
    await expect(item.locator(".state")).to_have_text("done")


async def test_theme_toggle_copy_download_drop_and_keyboard_only(
    stack: Child, contexts: Any, http: aiohttp.ClientSession, output_dir: Path
) -> None:
    context = await contexts(color_scheme="light")
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
    watched = await open_page(context, stack.url + "/")
    page = watched.page
    root = page.locator("html")
    editor = page.locator("#editor .monaco-editor")
    # The theme follows the OS, then the toggle.
    await expect(root).to_have_attribute("data-theme", "light")
    await expect(editor).to_have_class(has_class("vs"))
    await page.locator("#theme-toggle").click()
    await expect(root).to_have_attribute("data-theme", "dark")
    await expect(editor).to_have_class(has_class("vs-dark"))
    assert await page.evaluate("() => window.tokenrelay.theme()") == "dark"

    # A file dropped on the page opens as the document, its language from its name.
    await page.evaluate(
        """([name, text]) => {
          const data = new DataTransfer();
          data.items.add(new File([text], name, { type: 'text/plain' }));
          const target = document.querySelector('#editor');
          for (const type of ['dragenter', 'dragover', 'drop']) {
            target.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true,
              cancelable: true }));
          }
        }""",
        ["text.py", BASE],
    )
    await poll(watched.document, lambda text: text == BASE, within=5, what="the dropped file")
    await expect(page.locator("#language")).to_have_value("python")
    await expect(page.locator("#doc-name")).to_have_value("text.py")

    # Copy and download the document.
    await page.locator("#copy-doc").click()
    await expect(page.locator("#copy-doc")).to_have_text("Copied")
    assert await page.evaluate("() => navigator.clipboard.readText()") == BASE
    async with page.expect_download() as download_info:
        await page.locator("#download-doc").click()
    download = await download_info.value
    assert download.suggested_filename == "text.py"
    saved = await download.path()
    assert await asyncio.to_thread(Path(saved).read_text) == BASE
    await shot(watched, output_dir, "11-dark-theme")

    # Keyboard only: select shout() with the keys, Ctrl+K, the prompt, Ctrl+Enter; the decision
    # takes the focus when the diff is ready, and Enter accepts.
    await page.evaluate(
        "() => { const e = window.tokenrelay.editor; e.setPosition({lineNumber: 12, column: 1});"
        " e.focus(); }"
    )
    await page.keyboard.press("Shift+ArrowDown")
    await page.keyboard.press("Shift+End")
    job = await ask(watched, unique_prompt("shout louder", "tokens=60 rate=100"))
    review = await wait_for_review(watched)
    record = await done_record(http, stack, job)
    await expect_focused(watched, "#accept")
    await shot(watched, output_dir, "12-dark-review-keyboard")
    await page.keyboard.press("Enter")
    assert await watched.document() == review["modified"]
    assert review["modified"] == applied(BASE, SHOUT, record["output"])

    # Copy the result of a job.
    await select(watched, SHOUT)
    await ask(watched, unique_prompt("shout softly", "tokens=40 rate=200"))
    await wait_for_review(watched)
    await page.locator("#copy-result").click()
    output = await page.evaluate("() => window.tokenrelay.getText()")
    assert await page.evaluate("() => navigator.clipboard.readText()") == output
    await page.locator("#theme-toggle").click()  # back to the OS's (light)
    await expect(root).to_have_attribute("data-theme", "light")
    await shot(watched, output_dir, "13-light-review")
    assert watched.page_errors == [] and watched.console_errors == []
    assert await watched.csp_violations() == []


def has_class(theme: str) -> re.Pattern[str]:
    """Monaco's editor element carries its theme as a class (``vs`` or ``vs-dark``)."""
    return re.compile(rf"(^|\s){re.escape(theme)}(\s|$)")


async def test_a_resync_reset_reads_as_a_resync_not_a_retry(
    stack: Child, contexts: Any, http: aiohttp.ClientSession
) -> None:
    # A finished job for its record; its event stream is played by hand: text, then a reset
    # with reason unknown_position (the server lost the viewer's position) and the whole job.
    author = await open_page(await contexts(), stack.url + "/")
    await open_document(author, "text.py", BASE)
    await select(author, SHOUT)
    job_id, token = await ask(author, unique_prompt("shout once", "tokens=30 rate=300"))
    record = await done_record(http, stack, (job_id, token))
    output = record["output"]

    def frame(event: str, event_id: str, data: str) -> str:
        return f"event: {event}\nid: {event_id}\ndata: {data}\n\n"

    first = (
        "retry: 200\n\n"
        + frame("status", "1-0", '{"status": "running", "attempt": 1}')
        + frame("token", "2-0", '{"text": "stale text"}')
        + frame("reset", "3-0", '{"attempt": 0, "reason": "unknown_position"}')
        + frame("status", "4-0", '{"status": "running", "attempt": 1}')
    )
    release = asyncio.Event()
    calls = 0

    async def play(route: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await route.fulfill(status=200, content_type="text/event-stream", body=first)
            return
        await release.wait()
        rest = frame("token", "5-0", json.dumps({"text": output})) + frame(
            "done", "6-0", '{"finish_reason": "stop"}'
        )
        await route.fulfill(status=200, content_type="text/event-stream", body=rest)

    viewer = await open_page(
        await contexts(),
        f"{stack.url}/#job={job_id}&token={token}",
        route=("**/v1/jobs/*/events*", play),
    )
    await expect(viewer.page.locator("#detail")).to_contain_text("resynced", timeout=10_000)
    await expect(viewer.page.locator("#detail")).not_to_contain_text("retrying")
    assert await viewer.text() == ""  # the text before the reset is gone
    release.set()
    review = await wait_for_review(viewer)
    assert review["modified"] == applied(BASE, SHOUT, output)
