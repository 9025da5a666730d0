"""What the gateway answers, as typed models. The request
(:class:`service.contract.jobs.JobRequest`) and
the events (:mod:`service.contract.event_data`) are the server's own models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from service.contract.events import TERMINAL


class SubmittedJob(BaseModel):
    """The ``202`` answer of ``POST /v1/jobs``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    status: str
    events_url: str
    job_url: str
    viewer_token: str
    # Given only to the submitter: a viewer token cannot cancel.
    cancel_token: str | None = None


class JobInfo(BaseModel):
    """``GET /v1/jobs/{id}``: the job's record and its output so far."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    status: str
    model: str
    language: str | None = None
    attempt: int = 0
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    queue_wait_ms: int | None = None
    time_to_first_token_ms: int | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    last_event_id: str | None = None
    output: str = ""
    # "code": ``output`` is the answer's code (``raw_output`` what the upstream said); "raw":
    # both are the upstream's text.
    output_mode: str = "code"
    raw_output: str = ""
    detected_language: str | None = None
    blocks_dropped: int = 0
    viewers: int | None = None

    @property
    def ended(self) -> bool:
        """Whether the job is done, failed or cancelled."""
        return self.status in TERMINAL
