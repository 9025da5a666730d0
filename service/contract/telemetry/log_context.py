"""Context that every log line of a request or a job carries without passing it around.

``with log_fields(job_id=..., worker_id=...)`` binds fields for the current task and the tasks
it creates; :class:`ContextFilter` (installed on the log handler) adds them to each record that
does not set them itself. The bound mapping is shared with child tasks, so :func:`update_fields`
(a new attempt, a trace id read from the job) reaches every later line of the job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

_FIELDS: ContextVar[dict[str, object] | None] = ContextVar("tokenrelay_log_fields", default=None)


@contextmanager
def log_fields(**fields: object) -> Iterator[dict[str, object]]:
    """Bind ``fields`` (on top of the ones already bound) until the block ends."""
    token = bind_fields(**fields)
    try:
        yield _FIELDS.get() or {}
    finally:
        unbind_fields(token)


def bind_fields(**fields: object) -> Token[dict[str, object] | None]:
    """Bind ``fields`` (on top of the ones already bound) until :func:`unbind_fields`: the
    block of ``log_fields`` without its generator and context manager, for a request that
    may stay open for hours (the gateway's event streams)."""
    return _FIELDS.set({**(_FIELDS.get() or {}), **fields})


def unbind_fields(token: Token[dict[str, object] | None]) -> None:
    """Restore the fields bound before :func:`bind_fields` returned ``token``."""
    _FIELDS.reset(token)


def update_fields(**fields: object) -> None:
    """Change bound fields in place, for this task and every task that shares its binding."""
    bound = _FIELDS.get()
    if bound is not None:
        bound.update(fields)


def current_fields() -> dict[str, object]:
    """A copy of the fields bound now."""
    return dict(_FIELDS.get() or {})


class ContextFilter(logging.Filter):
    """Adds the bound fields to a record; fields given with ``extra=`` win."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _FIELDS.get()
        if bound:
            for key, value in bound.items():
                if key not in record.__dict__:
                    setattr(record, key, value)
        return True
