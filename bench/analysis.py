"""After a measurement: what every viewer of a load-generator process received.

Two kinds of streams are understood:

- ``tokenrelay``: ``id: <ms>-<seq>`` is the Redis entry id, whose ms part is the XADD time;
  ``event: token`` carries ``{"text": ...}``; ``reset`` clears the text.
- ``peer`` (Nchan, resumable-stream, as the benchmark publishes to them): every message is
  ``{"s": <sequence>, "t": <publish ms>, "text": ...}``.

A payload is parsed once however many viewers received the same bytes (all viewers of a
job that joined before it started do).
"""

from __future__ import annotations

import hashlib
import random
import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

import orjson

from bench.ssewire import parse_events

if TYPE_CHECKING:
    from bench.loadgen import Viewer

TEXT_EVENTS = frozenset({"token", "message"})
# (payload end offset, event name, token text or None, stamp ms or None, order key or None)
Parsed = tuple[int, str, str | None, float | None, tuple[int, int] | None]


def _parse(payload: bytes, mode: str) -> list[Parsed]:
    out: list[Parsed] = []
    for event in parse_events(payload):
        text: str | None = None
        stamp: float | None = None
        key: tuple[int, int] | None = None
        if mode == "tokenrelay":
            if event.id is not None and "-" in event.id:
                ms, _, seq = event.id.partition("-")
                key = (int(ms), int(seq))
                stamp = float(ms)
            if event.event == "token":
                text = orjson.loads(event.data)["text"]
        elif event.event == "message":
            body = orjson.loads(event.data)
            text = body["text"]
            stamp = float(body["t"])
            key = (int(body["s"]), 0)
        out.append((event.end, event.event, text, stamp, key))
    return out


class _Cache:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.parsed: dict[bytes, list[Parsed]] = {}

    def get(self, payload: bytes) -> list[Parsed]:
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        found = self.parsed.get(digest)
        if found is None:
            found = _parse(payload, self.mode)
            self.parsed[digest] = found
        return found


def head_key(viewer: Viewer, mode: str) -> tuple[int, int] | None:
    """The order key of the last complete event the viewer has (for a reconnect storm)."""
    for conn in reversed(viewer.conns):
        if not conn.pieces:
            continue
        payload = b"".join(conn.pieces)
        cut = payload.rfind(b"\n\n")
        tail = payload[max(0, cut - 8192) : cut + 2]
        start = tail.find(b"\n\n")
        keys = [p[4] for p in _parse(tail[start + 2 :] if start >= 0 else tail, mode) if p[4]]
        if keys:
            return keys[-1]
    return None


def _recv_time(marks: list[tuple[float, int]], offsets: list[int], end: int) -> float | None:
    index = bisect_left(offsets, end)
    return marks[index][0] if index < len(marks) else None


def analyse(
    viewers: list[Viewer], args: dict[str, Any], t_drop: float | None, errors: dict[str, int]
) -> dict[str, Any]:
    """Counts, exactness, latency samples and per-viewer times of this process's viewers.

    ``args``: ``mode``; ``expected`` (job -> full text); optional ``schedules`` (job ->
    ``{"t0": s, "rate": tokens/s, "cum": [chars after each upstream token]}``) for
    latency from the upstream's write; optional ``head`` (order key) for catch-up times;
    ``sample_limit`` for the latency lists.
    """
    started = time.time()
    mode: str = args["mode"]
    expected: dict[str, str] = args.get("expected", {})
    schedules: dict[str, dict[str, Any]] = args.get("schedules", {})
    head = tuple(args["head"]) if args.get("head") else None
    cache = _Cache(mode)
    lat_stamp: list[float] = []
    lat_upstream: list[float] = []
    catchup: list[float] = []
    reconnect: list[float] = []
    # A storm's reconnect in steps: drop -> connect started (the load generator's own delay),
    # drop -> TCP connection up and request written
    storm_open: list[float] = []
    storm_connected: list[float] = []
    full_text: list[float] = []
    bytes_per_viewer: list[int] = []
    mismatches: list[dict[str, Any]] = []
    totals: dict[str, Any] = {
        "viewers": len(viewers),
        "done": 0,
        "finished": 0,
        "exact": 0,
        "events": 0,
        "chars": 0,
        "raw_bytes": 0,
        "connections": 0,
        "cutoffs": 0,
        "statuses": {},
    }
    first_stamp: float | None = None
    last_end = 0.0
    for viewer in viewers:
        job = viewer.spec["job"]
        schedule = schedules.get(job)
        cum: list[int] = schedule["cum"] if schedule else []
        parts: list[str] = []
        chars = 0
        caught: float | None = None
        for conn in viewer.conns:
            totals["connections"] += 1
            totals["raw_bytes"] += conn.raw_bytes
            totals["cutoffs"] += conn.reason == "cutoff"
            status = str(conn.status)
            totals["statuses"][status] = totals["statuses"].get(status, 0) + 1
            if not conn.pieces:
                continue
            parsed = cache.get(b"".join(conn.pieces))
            marks = conn.marks or []
            offsets = [m[1] for m in marks]
            for end, name, text, stamp, key in parsed:
                if name == "reset":
                    parts.clear()
                    chars = 0
                    continue
                if name not in TEXT_EVENTS or text is None:
                    continue
                parts.append(text)
                chars += len(text)
                totals["events"] += 1
                totals["chars"] += len(text)
                if stamp is not None and (first_stamp is None or stamp < first_stamp):
                    first_stamp = stamp
                if not marks:
                    continue
                received = _recv_time(marks, offsets, end)
                if received is None:
                    continue
                if stamp is not None:
                    lat_stamp.append(received * 1000 - stamp)
                if schedule and cum:
                    # Per token, like the peers' one-token messages: every token the event
                    # carries counts, each from its own due time (a merged event's first
                    # token waited longest).
                    first = bisect_left(cum, chars - len(text) + 1)
                    last = min(bisect_left(cum, chars), len(cum) - 1)
                    t0, rate = schedule["t0"], schedule["rate"]
                    lat_upstream += [
                        (received - t0 - (index + 1) / rate) * 1000
                        for index in range(first, last + 1)
                    ]
                if (
                    caught is None
                    and head is not None
                    and t_drop is not None
                    and conn.reason == "storm"
                    and key is not None
                    and key >= head
                ):
                    caught = received - t_drop
            last_end = max(last_end, conn.t_end)
            if conn.reason == "storm" and t_drop is not None and conn.t_headers:
                reconnect.append(conn.t_headers - t_drop)
                storm_open.append(conn.t_open - t_drop)
                if conn.t_connected:
                    storm_connected.append(conn.t_connected - t_drop)
        text = "".join(parts)
        bytes_per_viewer.append(sum(c.raw_bytes for c in viewer.conns))
        totals["done"] += viewer.done
        totals["finished"] += viewer.finished
        if viewer.finished and job in expected and text == expected[job]:
            totals["exact"] += 1
        elif job in expected and len(mismatches) < 3:
            mismatches.append(
                {
                    "job": job,
                    "got_chars": len(text),
                    "expected_chars": len(expected[job]),
                    "connections": [c.ended for c in viewer.conns],
                }
            )
        if caught is not None:
            catchup.append(caught)
        if viewer.done and viewer.conns and viewer.conns[-1].t_end:
            full_text.append(viewer.conns[-1].t_end - viewer.conns[0].t_open)
    limit = int(args.get("sample_limit", 200_000))
    rng = random.Random(7)
    return {
        **totals,
        "first_stamp_ms": first_stamp,
        "last_end": last_end,
        "lat_stamp_ms": _sample(lat_stamp, limit, rng),
        "lat_upstream_ms": _sample(lat_upstream, limit, rng),
        "catchup_s": catchup,
        "reconnect_s": reconnect,
        "storm_open_s": storm_open,
        "storm_connected_s": storm_connected,
        "full_text_s": full_text,
        "bytes_per_viewer": bytes_per_viewer,
        "mismatches": mismatches,
        "errors": errors,
        "distinct_payloads": len(cache.parsed),
        "analysis_s": round(time.time() - started, 3),
    }


def _sample(values: list[float], limit: int, rng: random.Random) -> list[float]:
    rounded = [round(v, 2) for v in values]
    return rounded if len(rounded) <= limit else rng.sample(rounded, limit)
