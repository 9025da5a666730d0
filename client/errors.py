"""What the client raises."""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error of the tokenrelay client."""


class APIError(ClientError):
    """The gateway refused a request: ``status`` and the error's ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ConnectionLost(ClientError):
    """No gateway could be reached for longer than the client's reconnect limit."""
