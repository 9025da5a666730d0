"""The Responses API's ``response`` object and its output message, built from a job.

Ids are derived, never stored: a response is ``resp_<job id>`` and the message item of the
job's attempt ``n`` is ``msg_<job id>_<n>``, so every gateway names them alike. The output
is the current attempt's message only: text of an attempt that was retried is not part of
the response (the event stream shows it ending ``incomplete``, see ``responses_events.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from service.contract.errors import NotFound
from service.contract.events import CANCELLED, DONE, FAILED, QUEUED, RUNNING
from service.contract.jobs import JobRecord, is_job_id

RESPONSE_PREFIX = "resp_"

# Job states as Responses states.
_STATUS = {QUEUED: "queued", RUNNING: "in_progress", FAILED: "failed", CANCELLED: "cancelled"}


def response_id(job_id: str) -> str:
    """The Responses id of a job."""
    return RESPONSE_PREFIX + job_id


def job_id_of(response_id_text: str) -> str:
    """The job behind a Responses id; 404 for anything else."""
    job_id = response_id_text.removeprefix(RESPONSE_PREFIX)
    if job_id == response_id_text or not is_job_id(job_id):
        raise NotFound(f"No response found with id '{response_id_text[:80]}'.", code="not_found")
    return job_id


def item_id(job_id: str, attempt: int) -> str:
    """The message item of one attempt of a job."""
    return f"msg_{job_id}_{attempt}"


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """What every snapshot of one response repeats."""

    job_id: str
    created_at: int  # seconds
    model: str
    temperature: float | None
    max_output_tokens: int | None

    @classmethod
    def from_record(cls, record: JobRecord) -> ResponseHead:
        """The head of the response of a job."""
        request = record.job_request
        return cls(
            job_id=record.id,
            created_at=int(record.created_at) // 1000,
            model=record.model,
            temperature=request.temperature,
            max_output_tokens=request.max_tokens,
        )


def message_item(item: str, text: str | None, status: str) -> dict[str, Any]:
    """An assistant message output item; ``text=None`` for one just added (no content yet)."""
    content = [] if text is None else [text_part(text)]
    return {
        "id": item,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def text_part(text: str) -> dict[str, Any]:
    """An ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat Completions usage (what upstreams report) in the Responses shape."""
    if not usage:
        return None
    input_tokens = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": int(usage.get("total_tokens") or input_tokens + output_tokens),
    }


def response_object(
    head: ResponseHead,
    status: str,
    output: list[dict[str, Any]],
    *,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` object as OpenAI's SDKs read it."""
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": response_id(head.job_id),
        "object": "response",
        "created_at": head.created_at,
        "status": status,
        "background": True,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": None,
        "max_output_tokens": head.max_output_tokens,
        "model": head.model,
        "output": output,
        "parallel_tool_calls": False,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": head.temperature,
        "text": {"format": {"type": "text"}},
        "tool_choice": "none",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": response_usage(usage),
        "metadata": {},
    }


def final_status(finish_reason: str | None) -> str:
    """``completed``, or ``incomplete`` when the output hit the token limit."""
    return "incomplete" if finish_reason == "length" else "completed"


def response_from_record(record: JobRecord, output_text: str) -> dict[str, Any]:
    """``GET /v1/responses/{id}``: the response as the job's record and output say now."""
    head = ResponseHead.from_record(record)
    if record.status == DONE:
        status = final_status(record.finish_reason)
        item_status = "completed" if status == "completed" else "incomplete"
    else:
        status = _STATUS.get(record.status, "in_progress")
        item_status = "in_progress" if record.status == RUNNING else "incomplete"
    output = []
    if output_text:
        output.append(message_item(item_id(record.id, record.attempt), output_text, item_status))
    error = None
    if record.status == FAILED and record.error:
        error = _error_object(record.error)
    usage = _usage_of(record.usage)
    return response_object(head, status, output, usage=usage, error=error)


def failure_object(code: str, message: str) -> dict[str, Any]:
    """The ``error`` of a failed response."""
    return {"code": code, "message": message}


def _error_object(raw: str) -> dict[str, Any] | None:
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        return None
    return failure_object(str(value.get("code", "failed")), str(value.get("message", "")))


def _usage_of(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    value = orjson.loads(raw)
    return value if isinstance(value, dict) else None
