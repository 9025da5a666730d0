"""The page: ``web/`` and its pinned Monaco, served by the gateway (no CDN at run time)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
MONACO_DIR = WEB_DIR / "node_modules" / "monaco-editor" / "min" / "vs"
_PAGE_FILES = frozenset({"app.js", "app.css"})
_FALLBACK_CSP = "default-src 'self'"


def content_security_policy() -> str:
    """The policy the page is written for (kept beside it in ``web/CSP.txt``)."""
    path = WEB_DIR / "CSP.txt"
    return path.read_text("utf-8").strip() if path.exists() else _FALLBACK_CSP


def add_page_routes(app: web.Application) -> None:
    """Routes for ``/``, ``/static/<file>`` and ``/vendor/monaco/vs/...``."""
    csp = content_security_policy()

    async def index(request: web.Request) -> web.StreamResponse:
        page = WEB_DIR / "index.html"
        if not page.exists():
            raise web.HTTPNotFound(text="the web page is not installed (web/index.html)")
        if not MONACO_DIR.exists():
            raise web.HTTPServiceUnavailable(
                text="Monaco is not installed: run `npm ci --prefix web` (the README's run "
                "command does it)"
            )
        return web.FileResponse(page, headers={"Content-Security-Policy": csp,
                                               "Cache-Control": "no-cache"})  # fmt: skip

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in _PAGE_FILES:
            raise web.HTTPNotFound(text=f"no page file {name!r}")
        return web.FileResponse(WEB_DIR / name, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    if MONACO_DIR.exists():
        app.router.add_static("/vendor/monaco/vs", MONACO_DIR, follow_symlinks=False)
