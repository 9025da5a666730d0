"""Driving the tokenrelay page from a test, under its CSP.

The page forbids eval, so ``page.wait_for_function("...")`` cannot run there: conditions are
polled with ``page.evaluate`` (which the CSP does not govern) and a deadline, or checked with
Playwright's locator assertions.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import aiohttp

try:
    from playwright.async_api import BrowserContext, ConsoleMessage, FilePayload, Page
except ImportError as exc:  # a clear failure at collection, never a skip
    raise ImportError(
        "the browser tests need Playwright for Python: `.venv/bin/pip install -e '.[dev]'` "
        "(or `pip install playwright`); they drive Debian's chromium, no `playwright install`"
    ) from exc

T = TypeVar("T")

# Runs before the page's own scripts; init scripts are not subject to the page's CSP.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || '(inline)'} ` +
    `at ${event.sourceFile}:${event.lineNumber}`);
});
"""


def normalise_eol(text: str) -> str:
    """Monaco keeps one EOL per model (LF on this page): compare with CRLF and CR made LF."""
    return re.sub(r"\r\n?", "\n", text)


def unique_prompt(description: str, directives: str) -> str:
    """A prompt no other test sends (the simulator counts ``times=`` per exact prompt)."""
    return f"{description} ({uuid.uuid4().hex[:8]})\n#sim {directives}"


async def poll(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    within: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Call ``probe`` until ``accept`` takes its value; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s (last seen: {value!r:.300})")
        await asyncio.sleep(interval)


@dataclass
class Watched:
    """A page with what it reported: console errors and uncaught exceptions."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    async def csp_violations(self) -> list[str]:
        """The `securitypolicyviolation` events the page has seen."""
        violations: list[str] = await self.page.evaluate("() => window.__cspViolations || []")
        return violations

    async def text(self) -> str:
        """The job's text as the page received it since the last reset (its pending edit)."""
        text: str = await self.page.evaluate("() => window.tokenrelay.getText()")
        return text

    async def document(self) -> str:
        """The person's own document (the editor's model when it shows the document)."""
        text: str = await self.page.evaluate("() => window.tokenrelay.documentText()")
        return text

    async def shown(self) -> str:
        """The text of the model the editor shows now (the document, or a viewer's base)."""
        text: str = await self.page.evaluate("() => window.tokenrelay.editor.getModel().getValue()")
        return text

    async def inspect(self) -> dict[str, Any]:
        """The edit on screen: text, pendingText, pendingShown, stale, host, review, outcome."""
        state: dict[str, Any] = await self.page.evaluate("() => window.tokenrelay.inspect()")
        return state

    async def state(self) -> str:
        state: str = await self.page.evaluate("() => window.tokenrelay.state()")
        return state

    async def reconnects(self) -> int:
        count: int = await self.page.evaluate("() => window.tokenrelay.reconnects()")
        return count

    async def chars(self) -> int:
        """Characters the page has received for the job on screen (its own counter, cheap)."""
        label = await self.page.locator("#chars").text_content() or ""
        return int(label.split()[0].replace(",", "") or 0)

    async def job(self) -> tuple[str, str]:
        """(job id, viewer token) of the job on screen, from the page's share URL."""
        url: str | None = await self.page.evaluate("() => window.tokenrelay.shareUrl()")
        assert url, "the page shows no job"
        fragment = parse_qs(urlsplit(url).fragment)
        return fragment["job"][0], fragment["token"][0]


async def open_page(
    context: BrowserContext,
    url: str,
    *,
    route: tuple[str, Callable[[Any], Awaitable[None]]] | None = None,
) -> Watched:
    """Open the page at ``url`` and wait until the editor is ready to generate (``route``: a
    URL pattern and a handler that answers those requests instead of the gateway)."""
    page = await context.new_page()
    if route is not None:
        await page.route(*route)
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(f"{message.text} @ {message.location}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    await page.add_init_script(RECORD_CSP_VIOLATIONS)
    await page.goto(url)

    async def ready() -> bool:
        ready: bool = await page.evaluate(
            "() => Boolean(window.tokenrelay) && !document.getElementById('generate').disabled"
        )
        return ready

    await poll(ready, bool, within=15, what="the page loads Monaco and enables Generate")
    return watched


async def generate(watched: Watched, prompt: str, language: str = "python") -> tuple[str, str]:
    """Type the prompt, pick the language, click Generate; the new job's (id, token)."""
    page = watched.page
    await page.locator("#prompt").fill(prompt)
    await page.locator("#language").select_option(language)
    await page.locator("#generate").click()

    async def job_id() -> str | None:
        found: str | None = await page.evaluate("() => window.tokenrelay.jobId()")
        return found

    await poll(job_id, bool, within=10, what="the page submits the job")
    return await watched.job()


async def wait_for_chars(watched: Watched, at_least: int, *, within: float = 10) -> int:
    """Wait until the page has received ``at_least`` characters of the job (mid-stream)."""
    return await poll(
        watched.chars,
        lambda n: n >= at_least,
        within=within,
        what=f"the page receives {at_least} characters",
    )


async def job_record(
    http: aiohttp.ClientSession, gateway_url: str, job_id: str, token: str
) -> dict[str, Any]:
    """``GET /v1/jobs/{id}?token=`` from the gateway."""
    async with http.get(f"{gateway_url}/v1/jobs/{job_id}", params={"token": token}) as response:
        record: dict[str, Any] = await response.json()
        assert response.status == 200, record
    return record


async def ended_record(
    http: aiohttp.ClientSession, gateway_url: str, job_id: str, token: str, within: float = 20
) -> dict[str, Any]:
    """The job's record once it is terminal."""

    async def read() -> dict[str, Any]:
        return await job_record(http, gateway_url, job_id, token)

    return await poll(
        read,
        lambda r: r.get("status") in ("done", "failed", "cancelled"),
        within=within,
        what=f"job {job_id} ends",
        interval=0.1,
    )


async def sim_requests(
    http: aiohttp.ClientSession, sim_url: str, job_id: str
) -> list[dict[str, Any]]:
    """The simulated upstream's log of the job's completion requests, oldest first."""
    async with http.get(f"{sim_url.removesuffix('/v1')}/_sim/requests") as response:
        log: list[dict[str, Any]] = await response.json()
    return [r for r in log if r.get("headers", {}).get("x-tokenrelay-job") == job_id]


@dataclass(frozen=True)
class Span:
    """A Monaco range: 1-based lines and columns (the tests' documents are ASCII)."""

    start_line: int
    start_column: int
    end_line: int
    end_column: int

    def offsets(self, text: str) -> tuple[int, int]:
        """(start, end) indices into ``text`` (LF line ends)."""
        starts = [0]
        for line in text.split("\n")[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        start = starts[self.start_line - 1] + self.start_column - 1
        end = starts[self.end_line - 1] + self.end_column - 1
        return start, end

    def to_js(self) -> str:
        return (
            f"{{startLineNumber: {self.start_line}, startColumn: {self.start_column}, "
            f"endLineNumber: {self.end_line}, endColumn: {self.end_column}}}"
        )


def applied(base: str, span: Span, output: str) -> str:
    """``base`` with ``output`` in place of ``span``, as the page places it (web/README.md): the
    text's final line break is left out when the selection does not end with one."""
    start, end = span.offsets(base)
    selected = base[start:end]
    text = normalise_eol(output)
    if selected and not selected.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return base[:start] + text + base[end:]


async def open_document(watched: Watched, name: str, text: str) -> None:
    """Open ``text`` as the file ``name`` through the page's file picker."""
    payload: FilePayload = {"name": name, "mimeType": "text/plain", "buffer": text.encode()}
    await watched.page.locator("#file-input").set_input_files(files=[payload])

    async def opened() -> str:
        return await watched.document()

    await poll(opened, lambda t: t == text, within=5, what=f"the page opens {name}")
    await poll(
        lambda: watched.page.locator("#doc-name").input_value(),
        lambda value: value == name,
        within=5,
        what="the file name shows",
    )


async def select(watched: Watched, span: Span) -> None:
    """Select ``span`` in the editor and focus it."""
    script = "() => { const e = window.tokenrelay.editor; e.setSelection(%s); e.focus(); }"
    await watched.page.evaluate(script % span.to_js())


async def ask(watched: Watched, prompt: str) -> tuple[str, str]:
    """From the editor: Ctrl+K, the prompt, Ctrl+Enter (keys only); the new job's (id, token)."""
    page = watched.page
    before: str | None = await page.evaluate("() => window.tokenrelay.jobId()")
    await page.keyboard.press("Control+k")
    await expect_focused(watched, "#prompt")
    await page.keyboard.insert_text(prompt)
    await page.keyboard.press("Control+Enter")

    async def job_id() -> str | None:
        found: str | None = await page.evaluate("() => window.tokenrelay.jobId()")
        return found

    await poll(job_id, lambda found: bool(found) and found != before, within=10, what="a job")
    return await watched.job()


async def expect_focused(watched: Watched, selector: str) -> None:
    """``selector`` has the keyboard focus."""

    async def focused() -> bool:
        return bool(
            await watched.page.evaluate(
                f"() => document.activeElement === document.querySelector({selector!r})"
            )
        )

    await poll(focused, bool, within=3, what=f"{selector} has the focus")


async def wait_for_review(watched: Watched, *, within: float = 20) -> dict[str, Any]:
    """Wait until the diff of the finished edit is on screen; return inspect()'s review."""
    state = await poll(
        watched.inspect,
        lambda s: bool(s.get("review")) and bool(s.get("diffReady")),
        within=within,
        what="the diff of the finished edit, computed and drawn",
    )
    review: dict[str, Any] = state["review"]
    return review
