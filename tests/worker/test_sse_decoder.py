"""The SSE decoder against the WHATWG "Parsing an event stream" rules, and round trips."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.contract.sse_decoder import SSEDecodeError, SSEDecoder, SSEEvent


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events


def msg(data: str, event: str = "message", id: str | None = None) -> SSEEvent:
    return SSEEvent(event=event, data=data, id=id)


# --- line ends -------------------------------------------------------------------------


@pytest.mark.parametrize("end", [b"\r\n", b"\n", b"\r"], ids=["crlf", "lf", "cr"])
def test_lines_end_with_crlf_lf_or_cr(end: bytes) -> None:
    stream = b"data: a" + end + b"data: b" + end + end
    assert decode(stream) == [msg("a\nb")]


def test_cr_lf_split_across_chunks_is_one_line_end() -> None:
    # Were CR and LF two line ends, the LF would be a blank line dispatching "a" alone.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [msg("a\nb")]


def test_cr_then_lf_after_an_empty_chunk_is_one_line_end() -> None:
    assert decode(b"data: a\r", b"", b"\ndata: b\r\n\r\n") == [msg("a\nb")]


def test_cr_at_chunk_end_before_other_text_is_a_line_end() -> None:
    assert decode(b"data: a\r", b"data: \xc3", b"\xa9\r", b"\r") == [msg("a\né")]


def test_cr_cr_is_two_line_ends() -> None:
    assert decode(b"data: a\r\rdata: b\r\r") == [msg("a"), msg("b")]


def test_u2028_and_other_unicode_breaks_are_not_line_ends() -> None:
    text = "a\u2028b\u2029c\x85d\x0be\x0cf"
    assert decode(f"data: {text}\n\n".encode()) == [msg(text)]


# --- BOM ---------------------------------------------------------------------------------


def test_leading_bom_is_dropped() -> None:
    assert decode(b"\xef\xbb\xbfdata: a\n\n") == [msg("a")]


def test_leading_bom_split_across_chunks_is_dropped() -> None:
    assert decode(b"\xef", b"\xbb", b"\xbfdata: a\n\n") == [msg("a")]


def test_only_one_leading_bom_is_dropped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n") == [msg("b")]


def test_bom_inside_data_is_kept() -> None:
    assert decode("data: \ufeffa\n\n".encode()) == [msg("\ufeffa")]


# --- fields ------------------------------------------------------------------------------


def test_lines_starting_with_colon_are_comments() -> None:
    assert decode(b": ping\n:\ndata: a\n: data: b\n\n") == [msg("a")]


def test_comment_alone_does_not_dispatch() -> None:
    assert decode(b": ping\n\n") == []


def test_field_without_colon_is_field_name_with_empty_value() -> None:
    assert decode(b"data\n\n") == [msg("")]
    assert decode(b"data: a\ndata\n\n") == [msg("a\n")]


def test_one_space_after_colon_is_removed() -> None:
    assert decode(b"data: a\n\n") == [msg("a")]


def test_no_space_after_colon_keeps_value() -> None:
    assert decode(b"data:a\n\n") == [msg("a")]


def test_only_one_space_after_colon_is_removed() -> None:
    assert decode(b"data:  a \n\n") == [msg(" a ")]


def test_value_is_everything_after_first_colon() -> None:
    assert decode(b'data: {"a": "b:c"}\n\n') == [msg('{"a": "b:c"}')]


def test_data_lines_are_joined_with_lf() -> None:
    assert decode(b"data: a\ndata:\ndata: b\n\n") == [msg("a\n\nb")]


def test_event_field_sets_type() -> None:
    assert decode(b"event: token\ndata: a\n\n") == [msg("a", event="token")]


def test_empty_event_field_means_message() -> None:
    assert decode(b"event:\ndata: a\n\n") == [msg("a")]


def test_event_type_resets_after_dispatch() -> None:
    assert decode(b"event: x\ndata: a\n\ndata: b\n\n") == [msg("a", "x"), msg("b")]


def test_id_field_sets_id_of_event() -> None:
    assert decode(b"id: 1-0\ndata: a\n\n") == [msg("a", id="1-0")]


def test_id_persists_for_following_events() -> None:
    assert decode(b"id: 7\ndata: a\n\ndata: b\n\n") == [msg("a", id="7"), msg("b", id="7")]


def test_empty_id_resets_last_event_id_to_empty() -> None:
    assert decode(b"id: 7\ndata: a\n\nid\ndata: b\n\n") == [msg("a", id="7"), msg("b", id="")]


def test_id_containing_nul_is_ignored() -> None:
    assert decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n") == [
        msg("a", id="1"),
        msg("b", id="1"),
    ]


def test_id_without_data_sets_last_event_id_without_dispatch() -> None:
    assert decode(b"id: 5\n\ndata: a\n\n") == [msg("a", id="5")]


def test_unknown_fields_are_ignored() -> None:
    assert decode(b"foo: bar\nData: x\nbaz\ndata: a\n\n") == [msg("a")]


def test_retry_with_digits_only_is_recorded() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"retry: 1500\n\nretry: 2x\n\n")
    assert decoder.retry == 1500


# --- dispatch ----------------------------------------------------------------------------


def test_event_is_dispatched_only_on_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"data: b\n") == []
    assert decoder.feed(b"\n") == [msg("a\nb")]


def test_event_with_empty_data_buffer_is_not_dispatched() -> None:
    assert decode(b"event: x\n\n\n\n") == []


def test_incomplete_event_at_end_of_stream_is_discarded() -> None:
    assert decode(b"data: a\n\ndata: b\n") == [msg("a")]
    assert decode(b"data: a\n\ndata: b") == [msg("a")]


def test_finish_returns_nothing_and_allows_a_new_stream() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 3\ndata: a\n\ndata: cut") == [msg("a", id="3")]
    assert decoder.finish() == []
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\n") == [msg("b", id="3")]


# --- UTF-8 -------------------------------------------------------------------------------


def test_multibyte_character_split_across_feeds_is_decoded() -> None:
    raw = "data: 😀é\n\n".encode()
    assert decode(*[raw[i : i + 1] for i in range(len(raw))]) == [msg("😀é")]


@pytest.mark.parametrize(
    "chunks",
    [[b"data: \xff\n\n"], [b"data: \xe2\x82", b"x\n\n"], [b"data: \xed\xa0\x80\n\n"]],
    ids=["invalid-byte", "broken-sequence-across-chunks", "surrogate"],
)
def test_invalid_utf8_raises_value_error(chunks: list[bytes]) -> None:
    decoder = SSEDecoder()
    with pytest.raises(SSEDecodeError) as caught:
        for chunk in chunks:
            decoder.feed(chunk)
    assert isinstance(caught.value, ValueError)


# --- limits and speed --------------------------------------------------------------------


def test_event_larger_than_limit_raises() -> None:
    decoder = SSEDecoder(max_event_chars=100)
    decoder.feed(b"data: " + b"x" * 50 + b"\n")
    with pytest.raises(SSEDecodeError):
        decoder.feed(b"data: " + b"y" * 60)


def test_long_line_in_small_chunks_takes_linear_time() -> None:
    # 1 MB in 20,000 pieces: re-scanning or re-joining the buffer per feed would
    # copy gigabytes and take many seconds; linear work takes milliseconds.
    decoder = SSEDecoder()
    piece = b"x" * 50
    started = time.perf_counter()
    decoder.feed(b"data: ")
    for _ in range(20_000):
        assert decoder.feed(piece) == []
    events = decoder.feed(b"\n\n")
    elapsed = time.perf_counter() - started
    assert events == [msg("x" * 1_000_000)]
    assert elapsed < 1.0


# --- round trips -------------------------------------------------------------------------

_TRICKY = st.sampled_from(["\r", "\n", "\u2028", "😀", "é", "\x00", " ", ":", "\ufeff"])
_DATA_TEXT = st.text(alphabet=st.one_of(_TRICKY, st.characters(codec="utf-8")), max_size=12)
_LINE_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from([" ", ":", "😀", "\x00"]),
        st.characters(codec="utf-8", exclude_characters="\r\n"),
    ),
    max_size=8,
)
_NOISE = st.sampled_from(["retry: 1000", "retry", "foo: bar", "foo", "Data: x", "id: a\x00b"])
_COMMENT = _LINE_TEXT.map(":".__add__)
_EXTRA_LINES = st.lists(st.one_of(_NOISE, _COMMENT), max_size=2)
_LINE_ENDS = ["\n", "\r", "\r\n"]


@dataclass(frozen=True)
class Block:
    """One blank-line-terminated block: an event if it has data, else only id/type updates."""

    data: str | None
    event: str | None
    id: str | None


_BLOCKS = st.builds(
    Block,
    data=st.one_of(st.none(), _DATA_TEXT),
    event=st.one_of(st.none(), _LINE_TEXT),
    id=st.one_of(st.none(), _LINE_TEXT),
)


def expected_events(blocks: list[Block]) -> list[SSEEvent]:
    """What the spec says a receiver sees: line ends inside data become LF, ids persist."""
    events: list[SSEEvent] = []
    last_id: str | None = None
    for block in blocks:
        if block.id is not None and "\x00" not in block.id:
            last_id = block.id
        if block.data is not None:
            data = "\n".join(re.split(r"\r\n|\r|\n", block.data))
            events.append(SSEEvent(event=block.event or "message", data=data, id=last_id))
    return events


def encode(blocks: list[Block], data: st.DataObject) -> bytes:
    """Encode as SSE with drawn line ends, comments, noise fields, spacing and BOM."""
    draw = data.draw
    lines: list[str] = []
    for block in blocks:
        fields: list[str] = []
        if block.data is not None:
            for piece in re.split(r"\r\n|\r|\n", block.data):
                space = piece.startswith(" ") or draw(st.booleans())
                fields.append(("data: " if space else "data:") + piece)
        for name, value in (("event", block.event), ("id", block.id)):
            if value is not None:
                space = value.startswith(" ") or draw(st.booleans())
                at = draw(st.integers(0, len(fields)))
                fields.insert(at, (f"{name}: " if space else f"{name}:") + value)
        for extra in draw(_EXTRA_LINES):
            fields.insert(draw(st.integers(0, len(fields))), extra)
        lines.extend(fields)
        lines.append("")
    out = ["\ufeff"] if draw(st.booleans()) else []
    previous_end = ""
    for line in lines:
        # A CR then an empty line ended by LF would read as one CRLF: not our encoding.
        ends = ["\r", "\r\n"] if previous_end == "\r" and not line else _LINE_ENDS
        previous_end = draw(st.sampled_from(ends))
        out.append(line + previous_end)
    return "".join(out).encode()


# Fast enough for every run; database=None keeps hypothesis from writing into the tree.
_ROUND_TRIP = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@_ROUND_TRIP
@given(blocks=st.lists(_BLOCKS, max_size=6), data=st.data())
def test_round_trip_with_random_chunking(blocks: list[Block], data: st.DataObject) -> None:
    raw = encode(blocks, data)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    chunks = [raw[start:end] for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert decode(*chunks) == expected_events(blocks)


@_ROUND_TRIP
@given(blocks=st.lists(_BLOCKS, max_size=6), data=st.data())
def test_round_trip_one_byte_at_a_time(blocks: list[Block], data: st.DataObject) -> None:
    # Single bytes put a chunk boundary at every position at once: inside every
    # multi-byte character and between every CR and LF.
    raw = encode(blocks, data)
    assert decode(*[raw[i : i + 1] for i in range(len(raw))]) == expected_events(blocks)


def test_round_trip_split_in_two_at_every_position() -> None:
    raw = "\ufeffid: 1\r\nevent: tök\rdata: a😀\r\n: c\ndata:\r\r\ndata: \u2028é\n\r\n".encode()
    expected = [SSEEvent(event="tök", data="a😀\n", id="1"), SSEEvent(data="\u2028é", id="1")]
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == expected, cut
