"""The Python client of tokenrelay: ``TokenRelayClient`` (asyncio) and ``SyncTokenRelayClient``.

>>> with SyncTokenRelayClient("http://127.0.0.1:8000") as relay:
...     job = relay.submit(prompt="a quicksort", language="python")
...     for event in relay.watch(job.id):      # reconnects on its own, each event once
...         print(event)

The request is the server's :class:`service.contract.jobs.JobRequest`; the events are the server's
:mod:`service.contract.event_data` models.
"""

from __future__ import annotations

from client.async_client import DEFAULT_URL, TokenRelayClient
from client.backoff import Backoff
from client.errors import APIError, ClientError, ConnectionLost
from client.models import JobInfo, SubmittedJob
from client.sync_client import SyncTokenRelayClient
from client.transcript import Transcript
from service.contract.event_data import (
    CancelledEvent,
    DoneEvent,
    FailedEvent,
    JobEvent,
    ResetEvent,
    StatusEvent,
    TokenEvent,
)
from service.contract.jobs import JobRequest

__all__ = [
    "DEFAULT_URL",
    "APIError",
    "Backoff",
    "CancelledEvent",
    "ClientError",
    "ConnectionLost",
    "DoneEvent",
    "FailedEvent",
    "JobEvent",
    "JobInfo",
    "JobRequest",
    "ResetEvent",
    "StatusEvent",
    "SubmittedJob",
    "SyncTokenRelayClient",
    "TokenEvent",
    "TokenRelayClient",
    "Transcript",
]
