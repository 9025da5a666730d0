"""Logging: JSON lines when not on a terminal, readable lines on one; context from ``extra``
and from :mod:`service.contract.telemetry.log_context`; secrets redacted from every line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from service.contract.telemetry.log_context import ContextFilter

# Attributes every LogRecord has; anything else came from ``extra=`` and is context.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# Viewer tokens travel as ``?token=``; keys as ``Authorization: Bearer``. Neither may reach a log
# line, whatever library wrote it.
_QUERY_SECRET = re.compile(r"(?i)([?&](?:token|api_key|key)=)[^&\s\"'\\]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"'\\]+")
REDACTED = "[redacted]"
_MIN_SECRET_CHARS = 4


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class Redactor:
    """Removes known secret values and secret-looking URL parameters from a finished line."""

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def add(self, values: Iterable[str]) -> None:
        """Redact these values from now on (longest first, so no secret is left half-shown)."""
        known = set(self._secrets)
        known.update(v for v in values if len(v) >= _MIN_SECRET_CHARS)
        self._secrets = sorted(known, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, REDACTED)
        if "=" in line:
            line = _QUERY_SECRET.sub(r"\1" + REDACTED, line)
        if "earer" in line:
            line = _BEARER.sub(r"\1" + REDACTED, line)
        return line


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(self.render(record))

    def render(self, record: logging.LogRecord) -> str:
        raise NotImplementedError


class JsonFormatter(_RedactingFormatter):
    """One JSON object per line, for log collectors."""

    def render(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


class ConsoleFormatter(_RedactingFormatter):
    """``time level logger: message key=value ...`` for people at a terminal."""

    def render(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        extras = " ".join(f"{k}={v}" for k, v in _context(record).items())
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(level: str, *, process: str) -> None:
    """Install the formatter on the root logger; ``process`` names the component."""
    handler = logging.StreamHandler(sys.stderr)
    redactor = Redactor()
    handler.setFormatter(
        ConsoleFormatter(redactor) if sys.stderr.isatty() else JsonFormatter(redactor)
    )
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    old_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        record.process_name = process
        return record

    logging.setLogRecordFactory(factory)


def redact_secrets(values: Iterable[str]) -> None:
    """Keep these values (keys, signing secrets) out of every line the root logger writes."""
    secrets = list(values)
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, _RedactingFormatter):
            handler.formatter.redactor.add(secrets)
