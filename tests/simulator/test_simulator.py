"""The simulated upstream over real HTTP: OpenAI's wire format, pacing, faults, the log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from simulator import FaultKind, FaultRule, SimConfig, create_app

Client = TestClient[web.Request, web.Application]
MakeSim = Callable[..., Awaitable[Client]]


@dataclass
class Stream:
    """A raw SSE body taken apart the simplest way: one ``data:`` line per event."""

    data: list[Any] = field(default_factory=list)  # decoded JSON, or the string "[DONE]"
    comments: list[str] = field(default_factory=list)
    tail: bytes = b""  # bytes after the last complete event

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [d for d in self.data if d != "[DONE]"]

    @property
    def contents(self) -> list[str]:
        return [
            c["choices"][0]["delta"]["content"]
            for c in self.chunks
            if c["choices"]
            and "content" in c["choices"][0]["delta"]
            and "role" not in c["choices"][0]["delta"]
        ]

    @property
    def text(self) -> str:
        return "".join(self.contents)


def parse_sse(raw: bytes) -> Stream:
    # JSON escapes CR and LF, so OpenAI's frames are `data: <one line>\n\n`, LF only.
    assert b"\r" not in raw
    *frames, tail = raw.split(b"\n\n")
    stream = Stream(tail=tail)
    for frame in frames:
        assert b"\n" not in frame, frame
        if frame.startswith(b":"):
            stream.comments.append(frame[1:].decode().strip())
        elif frame == b"data: [DONE]":
            stream.data.append("[DONE]")
        else:
            assert frame.startswith(b"data: "), frame
            stream.data.append(json.loads(frame[len(b"data: ") :]))
    return stream


def chat(prompt: str, **params: Any) -> dict[str, Any]:
    return {"model": "gpt-sim", "messages": [{"role": "user", "content": prompt}], **params}


@pytest.fixture
def make_sim(aiohttp_client: AiohttpClient) -> MakeSim:
    async def make(**config: Any) -> Client:
        config.setdefault("tokens_per_second", 0)
        return await aiohttp_client(create_app(SimConfig(**config)))

    return make


@pytest.fixture
async def sim(make_sim: MakeSim) -> Client:
    return await make_sim()


async def stream_of(client: Client, prompt: str, **params: Any) -> Stream:
    async with client.post("/v1/chat/completions", json=chat(prompt, stream=True, **params)) as r:
        assert r.status == 200, await r.text()
        return parse_sse(await r.read())


async def sim_requests(client: Client, **query: str) -> list[dict[str, Any]]:
    async with client.get("/_sim/requests", params=query) as response:
        records: list[dict[str, Any]] = await response.json()
        return records


async def last_request(client: Client) -> dict[str, Any]:
    return (await sim_requests(client))[-1]


async def wait_for_status(client: Client, seq: int, status: str) -> dict[str, Any]:
    """Poll the log until request ``seq`` reaches ``status`` (a condition with a timeout)."""
    async with asyncio.timeout(1.5):
        while True:
            record = next(r for r in await sim_requests(client) if r["seq"] == seq)
            if record["status"] == status:
                return record
            await asyncio.sleep(0.01)


# --- the stream's wire format -------------------------------------------------------


async def test_stream_sends_role_chunk_content_chunks_finish_usage_then_done(
    make_sim: MakeSim,
) -> None:
    client = await make_sim(keepalive_every=16)
    body = chat("write python\n#sim tokens=40", stream=True, stream_options={"include_usage": True})
    async with client.post("/v1/chat/completions", json=body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        stream = parse_sse(await response.read())

    assert stream.tail == b""
    assert stream.data[-1] == "[DONE]"
    role, *content, finish, usage_chunk = stream.chunks
    assert role["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert len(content) == 40
    for chunk in content:
        (choice,) = chunk["choices"]
        assert set(choice["delta"]) == {"content"}
        assert choice["finish_reason"] is None and choice["logprobs"] is None
        assert chunk["usage"] is None
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 40
    assert usage_chunk["usage"]["prompt_tokens"] > 0
    assert usage_chunk["usage"]["total_tokens"] == usage_chunk["usage"]["prompt_tokens"] + 40
    for chunk in stream.chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["id"] == role["id"] and chunk["id"].startswith("chatcmpl-")
        assert chunk["model"] == "gpt-sim"
        assert chunk["created"] == role["created"]
        assert chunk["system_fingerprint"].startswith("fp_")
    assert stream.comments == ["keepalive", "keepalive"]  # after chunks 16 and 32


async def test_stream_without_include_usage_ends_with_finish_chunk_and_done(sim: Client) -> None:
    stream = await stream_of(sim, "hello\n#sim tokens=5")

    assert stream.data[-1] == "[DONE]"
    assert stream.chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in stream.chunks)
    assert len(stream.contents) == 5


async def test_streamed_content_equals_the_logged_text(sim: Client) -> None:
    stream = await stream_of(sim, "a rust tokenizer\n#sim tokens=150")

    record = await last_request(sim)
    assert record["status"] == "completed"
    assert record["text"] == stream.text
    assert record["chunks_sent"] == 150 == len(stream.contents)
    assert record["request_id"] == stream.chunks[0]["id"]
    assert record["finish_reason"] == "stop"
    assert "fn " in stream.text  # the prompt's language


async def test_max_tokens_caps_the_completion_and_finish_reason_is_length(sim: Client) -> None:
    stream = await stream_of(
        sim, "go\n#sim tokens=50", max_tokens=7, stream_options={"include_usage": True}
    )

    assert len(stream.contents) == 7
    assert stream.chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert stream.chunks[-1]["usage"]["completion_tokens"] == 7
    full = await stream_of(sim, "go\n#sim tokens=50")
    assert full.text.startswith(stream.text)


async def test_finish_directive_sets_the_finish_reason(sim: Client) -> None:
    stream = await stream_of(sim, "#sim tokens=3 finish=length")

    assert stream.chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_rate_paces_the_chunks(make_sim: MakeSim) -> None:
    client = await make_sim(tokens_per_second=5)
    received = bytearray()
    async with client.post("/v1/chat/completions", json=chat("x", stream=True)) as response:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                async for data in response.content.iter_any():
                    received += data
        response.close()
    stream = parse_sse(bytes(received))

    # 5 tokens/s: the first chunk is due at 0.2 s, the third at 0.6 s.
    assert stream.chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(stream.contents) <= 3
    record = await wait_for_status(client, 1, "client_disconnected")
    assert record["chunks_sent"] <= 3
    assert record["text"] == stream.text


async def test_rate_directive_overrides_the_configured_rate(make_sim: MakeSim) -> None:
    client = await make_sim(tokens_per_second=0.01)  # one token per 100 s

    async with asyncio.timeout(1.5):
        stream = await stream_of(client, "#sim tokens=200 rate=inf")

    assert len(stream.contents) == 200


# --- faults ---------------------------------------------------------------------------


async def test_429_answers_openai_rate_limit_error_with_retry_after(sim: Client) -> None:
    body = chat("#sim fail=429 retry_after=2", stream=True)
    async with sim.post("/v1/chat/completions", json=body) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "2"
        assert response.headers["retry-after-ms"] == "2000"
        error = (await response.json())["error"]

    assert error["code"] == "rate_limit_exceeded"
    assert error["type"] == "requests"
    assert error["param"] is None
    assert "Rate limit reached" in error["message"]
    record = await last_request(sim)
    assert (record["fault"], record["status"], record["http_status"]) == ("429", "failed", 429)
    assert record["text"] == ""


async def test_500_answers_openai_server_error(sim: Client) -> None:
    async with sim.post("/v1/chat/completions", json=chat("#sim fail=500")) as response:
        assert response.status == 500
        error = (await response.json())["error"]

    assert error == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }


async def test_cut_ends_the_connection_after_n_chunks_without_done(sim: Client) -> None:
    received = bytearray()
    body = chat("python\n#sim fail=cut after=3", stream=True)
    async with sim.post("/v1/chat/completions", json=body) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in response.content.iter_any():
                received += data
    stream = parse_sse(bytes(received))

    assert stream.tail == b""
    assert "[DONE]" not in stream.data
    assert len(stream.chunks) == 4  # role + 3 content, no finish chunk
    assert all(c["choices"][0]["finish_reason"] is None for c in stream.chunks)
    record = await last_request(sim)
    assert (record["fault"], record["status"], record["chunks_sent"]) == ("cut", "failed", 3)
    assert record["text"] == stream.text


async def test_cut_after_the_last_token_still_withholds_the_finish_chunk(sim: Client) -> None:
    received = bytearray()
    body = chat("#sim tokens=4 fail=cut after=99", stream=True)
    async with sim.post("/v1/chat/completions", json=body) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in response.content.iter_any():
                received += data

    stream = parse_sse(bytes(received))
    assert len(stream.contents) == 4
    assert "[DONE]" not in stream.data


async def test_stall_holds_the_connection_open_and_silent(sim: Client) -> None:
    received = bytearray()
    body = chat("#sim tokens=40 fail=stall after=2", stream=True)
    async with sim.post("/v1/chat/completions", json=body) as response:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                async for data in response.content.iter_any():
                    received += data
        record = await last_request(sim)
        assert record["fault"] == "stall"
        assert (record["status"], record["chunks_sent"]) == ("streaming", 2)
        response.close()
    stream = parse_sse(bytes(received))

    assert len(stream.contents) == 2
    assert stream.comments == []  # no keepalives while stalled
    assert stream.tail == b""
    await wait_for_status(sim, record["seq"], "client_disconnected")


async def test_times_1_faults_the_first_request_and_the_retry_repeats_the_text(
    sim: Client,
) -> None:
    prompt = "a ruby cache\n#sim fail=cut after=5 times=1"
    received = bytearray()
    async with sim.post("/v1/chat/completions", json=chat(prompt, stream=True)) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in response.content.iter_any():
                received += data
    first = parse_sse(bytes(received))

    retry = await stream_of(sim, prompt)
    plain = await stream_of(sim, "a ruby cache")

    assert len(first.contents) == 5
    assert retry.data[-1] == "[DONE]"
    assert retry.text.startswith(first.text)
    assert retry.text == plain.text  # the #sim line does not change the text
    first_record, retry_record, _ = await sim_requests(sim)
    assert (first_record["status"], first_record["fault"]) == ("failed", "cut")
    assert (retry_record["status"], retry_record["fault"]) == ("completed", "none")
    assert first_record["text"] == first.text


async def test_429_with_times_1_then_succeeds(sim: Client) -> None:
    body = chat("#sim fail=429 times=1 tokens=3", stream=True)
    async with sim.post("/v1/chat/completions", json=body) as response:
        assert response.status == 429
    async with sim.post("/v1/chat/completions", json=body) as response:
        assert response.status == 200
        assert parse_sse(await response.read()).data[-1] == "[DONE]"


async def test_default_fault_applies_unless_the_prompt_overrides_it(make_sim: MakeSim) -> None:
    client = await make_sim(fault=FaultRule(fault=FaultKind.SERVER_ERROR))

    async with client.post("/v1/chat/completions", json=chat("a")) as response:
        assert response.status == 500
    async with client.post("/v1/chat/completions", json=chat("a\n#sim fail=none")) as response:
        assert response.status == 200


async def test_sim_faults_endpoint_sets_the_default_fault_at_run_time(sim: Client) -> None:
    rule = {"fault": "429", "after": 0, "times": 1, "retry_after": 0.25}
    async with sim.post("/_sim/faults", json=rule) as response:
        assert response.status == 200
    async with sim.get("/_sim/faults") as response:
        assert await response.json() == rule

    async with sim.post("/v1/chat/completions", json=chat("p")) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "0.25"
    async with sim.post("/v1/chat/completions", json=chat("p")) as response:
        assert response.status == 200
    async with sim.post("/_sim/faults", json={"fault": "explode"}) as response:
        assert response.status == 400


# --- text fidelity ----------------------------------------------------------------------


async def test_unicode_text_round_trips_exactly_through_json(sim: Client) -> None:
    body = chat("typescript\n#sim unicode=1 tokens=400", stream=True)
    async with sim.post("/v1/chat/completions", json=body) as response:
        raw = await response.read()
    stream = parse_sse(raw)
    text = stream.text

    assert text == (await last_request(sim))["text"]
    for needle in ("é", "中文", "🚀", "👩\u200d💻", "\u2028", "\u0085", "\t", '"', "\\"):
        assert needle in text, needle
    assert "\r\n" in text
    pairs = zip(stream.contents, stream.contents[1:], strict=False)
    assert any(t.endswith("\r") and n.startswith("\n") for t, n in pairs)  # a CRLF split
    assert "\r" in text.replace("\r\n", "")  # a lone CR
    assert "\n\nid: x" in text and "\ndata: [DONE]" in text
    assert "\x00" not in text
    # Non-ASCII goes out as raw UTF-8 (U+2028 and NEL included), as a JSON encoder may.
    assert "\u2028".encode() in raw and "\u0085".encode() in raw


async def test_nul_appears_only_with_the_nul_directive(sim: Client) -> None:
    with_nul = await stream_of(sim, "#sim nul=1 tokens=60")
    without = await stream_of(sim, "#sim unicode=1 tokens=300")

    assert "\x00" in with_nul.text
    assert with_nul.text == (await sim_requests(sim))[0]["text"]
    assert "\x00" not in without.text


# --- requests OpenAI refuses ------------------------------------------------------------


async def test_api_key_is_required_when_configured(make_sim: MakeSim) -> None:
    client = await make_sim(api_key="sk-sim-secret-key")
    body = chat("#sim tokens=2")

    async with client.post("/v1/chat/completions", json=body) as response:
        assert response.status == 401
        error = (await response.json())["error"]
        assert error["type"] == "invalid_request_error" and error["code"] is None
    wrong = {"Authorization": "Bearer sk-wrong-key-1234"}
    async with client.post("/v1/chat/completions", json=body, headers=wrong) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "invalid_api_key"
    right = {"Authorization": "Bearer sk-sim-secret-key"}
    async with client.post("/v1/chat/completions", json=body, headers=right) as response:
        assert response.status == 200
    async with client.get("/v1/models") as response:
        assert response.status == 401
    assert [r["http_status"] for r in await sim_requests(client)] == [401, 401, 200]


async def test_invalid_json_is_400_invalid_request_error(sim: Client) -> None:
    async with sim.post("/v1/chat/completions", data=b"{not json") as response:
        assert response.status == 400
        error = (await response.json())["error"]

    assert error["type"] == "invalid_request_error"
    assert "could not parse the JSON body" in error["message"]
    assert (await last_request(sim))["status"] == "failed"


async def test_missing_messages_is_400_naming_the_param(sim: Client) -> None:
    async with sim.post("/v1/chat/completions", json={"model": "m"}) as response:
        assert response.status == 400
        error = (await response.json())["error"]

    assert error == {
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }


async def test_bad_sim_directive_is_400(sim: Client) -> None:
    async with sim.post("/v1/chat/completions", json=chat("#sim tokens=many")) as response:
        assert response.status == 400
        assert "tokens" in (await response.json())["error"]["message"]
    async with sim.post("/v1/chat/completions", json=chat("#sim colour=red")) as response:
        assert response.status == 400


async def test_unknown_model_is_404_when_models_are_configured(make_sim: MakeSim) -> None:
    client = await make_sim(models=["gpt-sim"])

    async with client.post("/v1/chat/completions", json={**chat("x"), "model": "gpt-9"}) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "model_not_found"
    async with client.get("/v1/models") as response:
        listing = await response.json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["gpt-sim"]


async def test_unknown_path_is_404_in_openai_shape(sim: Client) -> None:
    async with sim.post("/v1/completions/nope") as response:
        assert response.status == 404
        error = (await response.json())["error"]
    assert error["message"] == "Invalid URL (POST /v1/completions/nope)"


# --- non-streaming ----------------------------------------------------------------------


async def test_non_stream_answers_one_chat_completion(sim: Client) -> None:
    async with sim.post("/v1/chat/completions", json=chat("java\n#sim tokens=30")) as response:
        assert response.status == 200
        completion = await response.json()

    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-")
    (choice,) = completion["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert completion["usage"]["completion_tokens"] == 30
    streamed = await stream_of(sim, "java\n#sim tokens=30")
    assert choice["message"]["content"] == streamed.text
    assert (await sim_requests(sim))[0]["text"] == streamed.text


async def test_non_stream_cut_closes_without_a_response(sim: Client) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with sim.post("/v1/chat/completions", json=chat("#sim fail=cut after=2")):
            pass
    assert (await last_request(sim))["status"] == "failed"


# --- the /_sim log ----------------------------------------------------------------------


async def test_log_keeps_only_the_tokenrelay_headers_and_filters_by_job(sim: Client) -> None:
    headers = {"X-Tokenrelay-Job": "job-1", "X-Tokenrelay-Attempt": "2", "X-Other": "no"}
    async with sim.post("/v1/chat/completions", json=chat("#sim tokens=1"), headers=headers):
        pass
    async with sim.post("/v1/chat/completions", json=chat("#sim tokens=1")):
        pass

    (record,) = await sim_requests(sim, job="job-1")
    assert record["headers"] == {"x-tokenrelay-job": "job-1", "x-tokenrelay-attempt": "2"}
    assert record["prompt"] == "#sim tokens=1"
    assert record["model"] == "gpt-sim"
    assert record["ended_at"] >= record["started_at"]
    assert [r["seq"] for r in await sim_requests(sim)] == [1, 2]
    async with sim.delete("/_sim/requests") as response:
        assert await response.json() == {"cleared": 2}
    assert await sim_requests(sim) == []


async def test_log_is_bounded(make_sim: MakeSim) -> None:
    client = await make_sim(log_limit=3)
    for _ in range(5):
        async with client.post("/v1/chat/completions", json=chat("#sim tokens=1")):
            pass

    assert [r["seq"] for r in await sim_requests(client)] == [3, 4, 5]


async def test_healthz(sim: Client) -> None:
    async with sim.get("/healthz") as response:
        assert await response.json() == {"ok": True}


async def test_the_default_answer_is_a_whole_program_and_a_cap_that_cuts_it_says_length(
    make_sim: MakeSim,
) -> None:
    client = await make_sim(default_tokens=50)
    for prompt, last_line in (("a python config loader", "    return "), ("a go cache", "}")):
        whole = await stream_of(client, prompt)
        assert whole.chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert len(whole.contents) >= 50
        assert whole.text.endswith("\n")  # a function's last line, whole
        assert whole.text.rstrip("\n").splitlines()[-1].startswith(last_line), whole.text
        cut = await stream_of(client, prompt, max_tokens=len(whole.contents) - 1)
        assert cut.chunks[-1]["choices"][0]["finish_reason"] == "length"
        assert whole.text.startswith(cut.text) and cut.text != whole.text
