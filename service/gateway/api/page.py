"""The page: ``web/`` and its pinned Monaco, served by the gateway (no CDN at run time)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parents[3] / "web"
MONACO_DIR = WEB_DIR / "node_modules" / "monaco-editor" / "min" / "vs"
# The page's own files: app.css and its ES modules (app.js and js/*.js), nothing else of web/.
_PAGE_FILES = re.compile(r"(app\.css|app\.js|js/[a-z][a-z0-9_-]*\.js)")
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
        headers = {"Content-Security-Policy": csp, "Cache-Control": "no-cache"}
        return web.FileResponse(page, headers=headers)

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = WEB_DIR / name
        if _PAGE_FILES.fullmatch(name) is None or not path.is_file():
            raise web.HTTPNotFound(text=f"no page file {name!r}")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    app.router.add_get("/static/{name:.+}", static)
    if MONACO_DIR.exists():
        app.router.add_static("/vendor/monaco/vs", MONACO_DIR, follow_symlinks=False)
