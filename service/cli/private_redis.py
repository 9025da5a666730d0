"""Where ``tokenrelay up``'s private Redis is: recorded in ``.tokenrelay/redis.url`` while it
runs (its port is random), so that every ``tokenrelay`` command run in the same folder finds
it without ``TOKENRELAY_REDIS_URL``. The note names ``up``'s process too: a note left by an
``up`` that was killed is ignored rather than pointing at whatever took its port since."""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR = Path(".tokenrelay")
URL_FILE = STATE_DIR / "redis.url"


def record(url: str) -> None:
    """Note the private Redis's URL (and this process) for the commands beside ``up``."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    temporary = URL_FILE.with_suffix(".tmp")
    temporary.write_text(f"{url}\n{os.getpid()}\n", "utf-8")
    temporary.replace(URL_FILE)  # whole or absent, never half written


def forget(url: str) -> None:
    """Remove the note, if it is still this Redis's (a later ``up`` may have replaced it)."""
    if recorded() == url:
        URL_FILE.unlink(missing_ok=True)


def recorded() -> str | None:
    """The URL a running ``tokenrelay up`` recorded in this folder, if any."""
    try:
        lines = URL_FILE.read_text("utf-8").split()
    except FileNotFoundError:
        return None
    if len(lines) != 2 or not lines[1].isdigit() or not _alive(int(lines[1])):
        return None
    return lines[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
