"""Where ``tokenrelay up``'s private Redis is: recorded in ``.tokenrelay/redis.url`` while it
runs (its port is random), so that every ``tokenrelay`` command run in the same folder finds
it without ``TOKENRELAY_REDIS_URL``."""

from __future__ import annotations

from pathlib import Path

STATE_DIR = Path(".tokenrelay")
URL_FILE = STATE_DIR / "redis.url"


def record(url: str) -> None:
    """Note the private Redis's URL for the commands run beside ``tokenrelay up``."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    temporary = URL_FILE.with_suffix(".tmp")
    temporary.write_text(url + "\n", "utf-8")
    temporary.replace(URL_FILE)  # whole or absent, never half written


def forget(url: str) -> None:
    """Remove the note, if it is still this Redis's (a later ``up`` may have replaced it)."""
    if recorded() == url:
        URL_FILE.unlink(missing_ok=True)


def recorded() -> str | None:
    """The URL a running ``tokenrelay up`` recorded in this folder, if any."""
    try:
        return URL_FILE.read_text("utf-8").strip() or None
    except FileNotFoundError:
        return None
