"""The server-sent events parser: framing, fields, and chunk boundaries anywhere."""

from __future__ import annotations

from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplitude_experiment.flags.sse import SSEMessage, SSEParser, iter_messages


def parse(*chunks: bytes) -> List[SSEMessage]:
    return list(iter_messages(chunks))


def bytewise(stream: bytes) -> List[SSEMessage]:
    return parse(*[stream[i:i + 1] for i in range(len(stream))])


# ----- framing ---------------------------------------------------------------------------------

def test_one_message() -> None:
    assert parse(b"data: hello\n\n") == [SSEMessage("hello")]


def test_several_messages_in_one_chunk() -> None:
    assert parse(b"data: a\n\ndata: b\n\ndata: c\n\n") == [SSEMessage("a"), SSEMessage("b"), SSEMessage("c")]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_line_endings(eol: bytes) -> None:
    stream = b"data: a" + eol + b"data: b" + eol + eol + b"event: x" + eol + b"data: c" + eol + eol
    expected = [SSEMessage("a\nb"), SSEMessage("c", event="x")]
    assert parse(stream) == expected
    assert bytewise(stream) == expected


def test_mixed_line_endings() -> None:
    assert parse(b"data: a\rdata: b\r\ndata: c\n\r\n") == [SSEMessage("a\nb\nc")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # Were "\r" and "\n" counted separately, "a" would be dispatched alone.
    assert parse(b"data: a\r", b"\ndata: b\r\n\r\n") == [SSEMessage("a\nb")]
    assert parse(b"data: a\r", b"", b"\ndata: b\r\n\r\n") == [SSEMessage("a\nb")]


def test_cr_at_chunk_end_followed_by_other_text() -> None:
    assert parse(b"data: a\r", b"data: b\r", b"\r") == [SSEMessage("a\nb")]


def test_cr_then_split_lf_completes_a_message() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\n\r") == [SSEMessage("a")]
    # The "\n" here belongs to the "\r" above, so it is not another (empty) line.
    assert parser.feed(b"\ndata: b\n") == []
    assert parser.feed(b"\n") == [SSEMessage("b")]


def test_message_split_across_chunks_is_delivered_when_complete() -> None:
    parser = SSEParser()
    assert parser.feed(b"da") == []
    assert parser.feed(b"ta: [1,") == []
    assert parser.feed(b"2]\n") == []
    assert parser.feed(b"\n") == [SSEMessage("[1,2]")]


def test_incomplete_message_at_end_is_discarded() -> None:
    assert parse(b"data: a\n\ndata: b\n") == [SSEMessage("a")]
    assert parse(b"data: a\n\ndata: b") == [SSEMessage("a")]


def test_close_forgets_pending_state() -> None:
    parser = SSEParser()
    parser.feed(b"event: x\ndata: pending\n")
    parser.close()
    assert parser.feed(b"\n") == []


# ----- fields ----------------------------------------------------------------------------------

def test_multiline_data_joined_with_newline() -> None:
    assert parse(b"data: [\ndata:   1\ndata: ]\n\n") == [SSEMessage("[\n  1\n]")]


@pytest.mark.parametrize(
    "line, data",
    [
        (b"data:x", "x"),
        (b"data: x", "x"),
        (b"data:  x", " x"),
        (b"data: ", ""),
        (b"data:", ""),
        (b"data", ""),
        (b"data: x: y", "x: y"),
        (b"data:\tx", "\tx"),
    ],
)
def test_one_optional_space_after_colon(line: bytes, data: str) -> None:
    assert parse(line + b"\n\n") == [SSEMessage(data)]


def test_keepalive_is_a_single_space() -> None:
    assert parse(b"data:  \n\n") == [SSEMessage(" ")]


def test_empty_data_lines_are_kept() -> None:
    assert parse(b"data\ndata\n\n") == [SSEMessage("\n")]
    assert parse(b"data:\n\n") == [SSEMessage("")]


def test_comments_are_ignored() -> None:
    assert parse(b": hello\ndata: a\n:\n: more\ndata: b\n\n") == [SSEMessage("a\nb")]


def test_blocks_without_data_are_not_dispatched() -> None:
    assert parse(b": ping\n\n\n\nevent: x\n\ndata: a\n\n") == [SSEMessage("a")]


def test_event_type_resets_after_each_block() -> None:
    expected = [SSEMessage("a", event="update"), SSEMessage("b")]
    assert parse(b"event: update\ndata: a\n\ndata: b\n\n") == expected
    assert parse(b"event: update\n\ndata: b\n\n") == [SSEMessage("b")]


def test_empty_event_type_means_message() -> None:
    assert parse(b"event:\ndata: a\n\n") == [SSEMessage("a", event="message")]


def test_id_carries_over_and_can_be_reset() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 2\n\ndata: d\n\n"
    assert parse(stream) == [
        SSEMessage("a", id="1"),
        SSEMessage("b", id="1"),
        SSEMessage("c", id=""),
        SSEMessage("d", id="2"),
    ]


def test_id_with_nul_is_ignored() -> None:
    assert parse(b"id: 1\n\nid: 2\x003\ndata: a\n\n") == [SSEMessage("a", id="1")]


def test_retry_only_accepts_ascii_digits() -> None:
    parser = SSEParser()
    assert parser.feed(b"retry: 2500\ndata: a\n\n") == [SSEMessage("a", retry=2500)]
    messages = parser.feed(b"retry: 1.5\nretry: x\nretry:\nretry: \xd9\xa3\ndata: b\n\n")
    assert messages == [SSEMessage("b", retry=2500)]
    assert parser.retry == 2500
    assert parser.feed(b"retry: 0\n") == []
    assert parser.retry == 0


def test_unknown_fields_are_ignored() -> None:
    assert parse(b"foo: bar\nDATA: no\ndata : no\ndata: yes\n\n") == [SSEMessage("yes")]


def test_all_fields_together() -> None:
    stream = b"retry: 10\r\nid: 42\r\nevent: flags\r\ndata: [\r\ndata: ]\r\n\r\n"
    assert parse(stream) == [SSEMessage("[\n]", event="flags", id="42", retry=10)]


# ----- text encoding ---------------------------------------------------------------------------

def test_utf8_split_across_chunks() -> None:
    text = 'data: {"k": "é€😀"}\n\n'.encode("utf-8")
    assert bytewise(text) == [SSEMessage('{"k": "é€😀"}')]


def test_invalid_utf8_is_replaced() -> None:
    assert parse(b"data: a\xffb\n\n") == [SSEMessage("a\ufffdb")]


def test_leading_bom_is_dropped_once() -> None:
    bom = "\ufeff".encode("utf-8")
    assert parse(bom + b"data: a\n\n") == [SSEMessage("a")]
    assert parse(bom[:1], bom[1:], b"data: a\n\n") == [SSEMessage("a")]
    # A second BOM is part of the field name, which is then unknown.
    assert parse(bom + bom + b"data: a\n\ndata: b\n\n") == [SSEMessage("b")]


# ----- robustness ------------------------------------------------------------------------------

def test_large_message_in_small_chunks() -> None:
    payload = b"[" + b",".join(b'{"key":"flag-%d"}' % i for i in range(40000)) + b"]"
    stream = b"data: " + payload + b"\n\n"
    chunks = [stream[i:i + 4096] for i in range(0, len(stream), 4096)]
    assert parse(*chunks) == [SSEMessage(payload.decode("ascii"))]


_STREAM = (
    "\ufeffretry: 7\r\n: comment\ndata: é€😀\rdata\n\nid: 9\nevent: e\ndata:  x\r\n\r\n"
    "data:  \n\nfoo\ndata: [1,\ndata: 2]\r\r"
).encode("utf-8")
_EXPECTED = [
    SSEMessage("é€😀\n", retry=7),
    SSEMessage(" x", event="e", id="9", retry=7),
    SSEMessage(" ", id="9", retry=7),
    SSEMessage("[1,\n2]", id="9", retry=7),
]


def test_reference_stream_whole() -> None:
    assert parse(_STREAM) == _EXPECTED
    assert bytewise(_STREAM) == _EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(_STREAM)), max_size=12))
def test_any_chunking_gives_the_same_messages(cuts: List[int]) -> None:
    points = [0] + sorted(cuts) + [len(_STREAM)]
    chunks = [_STREAM[a:b] for a, b in zip(points, points[1:])]
    assert parse(*chunks) == _EXPECTED
