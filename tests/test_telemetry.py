"""The output decoders (simulator/core/telemetry.py): bytes as an environment writes them, text
records out. Frames are those awslambdaric's FramedTelemetryLogSink writes (its docstring: a
4-byte type 0xa55a00XX, a 4-byte length, an 8-byte timestamp in microseconds, the message, all
big-endian); here they are written by that class itself, and by hand from its layout."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from simulator.core.telemetry import FrameDecoder, LineDecoder

LOG_FRAME = bytes.fromhex("a55a0003")  # the documented type of a (text) log frame


def frame(message: bytes, kind: bytes = LOG_FRAME, micros: int = 1_700_000_000_123_456) -> bytes:
    return kind + len(message).to_bytes(4, "big") + micros.to_bytes(8, "big") + message


def written_by_the_runtime_client(tmp_path: Path, *records: str | list[str]) -> bytes:
    """What FramedTelemetryLogSink writes for `log(text)` (a str) or `log_error(lines)`."""
    from awslambdaric.bootstrap import FramedTelemetryLogSink  # type: ignore[import-untyped]

    path = tmp_path / "telemetry"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with FramedTelemetryLogSink(fd) as sink:  # closes fd
        for record in records:
            if isinstance(record, str):
                sink.log(record)
            else:
                sink.log_error(record)
    return path.read_bytes()


def feed_in_pieces(decoder: LineDecoder | FrameDecoder, data: bytes, cuts: list[int]) -> list[str]:
    out: list[str] = []
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        out += decoder.feed(data[start:cut]) if cut > start else []
        start = max(start, cut)
    out += decoder.feed(data[start:]) if start < len(data) else []
    return out + decoder.feed(b"")


# -- lines --------------------------------------------------------------------------------------


def test_lines_are_joined_across_chunks_and_lose_their_line_end() -> None:
    lines = LineDecoder()
    assert lines.feed(b"fd-one\nfd-") == ["fd-one"]
    assert lines.feed(b"two\r\n\n") == ["fd-two", ""]
    assert lines.feed(b"no newline") == []
    assert lines.feed(b"") == ["no newline"]  # the end of the stream flushes it
    assert lines.feed(b"") == []


def test_bytes_that_are_not_utf8_are_shown_not_fatal() -> None:
    # print('\udcff') under surrogateescape writes the byte 0xff
    assert LineDecoder().feed(b"\xff\ncaf\xc3\xa9\n") == ["\\xff", "café"]


def test_a_line_without_newline_is_cut_at_256_kib() -> None:
    lines = LineDecoder()
    assert lines.feed(b"x" * (256 * 1024)) == []  # at the limit: still waiting
    assert lines.feed(b"yz") == ["x" * (256 * 1024) + "yz"]  # over it: given out as it is
    assert lines.feed(b"\n") == [""]


@given(st.lists(st.binary(max_size=20), max_size=8), st.lists(st.integers(0, 200), max_size=6))
def test_any_chunking_gives_the_same_lines(parts: list[bytes], cuts: list[int]) -> None:
    data = b"\n".join(parts)
    *complete, last = data.split(b"\n")
    whole = [p.removesuffix(b"\r").decode("utf-8", "backslashreplace") for p in complete]
    whole += [last.decode("utf-8", "backslashreplace")] if last else []  # flushed at the end
    assert feed_in_pieces(LineDecoder(), data, cuts) == whole


# -- telemetry frames ------------------------------------------------------------------------


def test_a_frame_is_one_record_however_many_lines(tmp_path: Path) -> None:
    data = written_by_the_runtime_client(
        tmp_path,
        "[ERROR]\t2024-01-01T00:00:00.123Z\t8f5c\tcaught\nTraceback (most recent call last):\n"
        '  File "/var/task/handler.py", line 5, in handler\nValueError: inner\n',
        "[ERROR]\t2024-01-01T00:00:00.124Z\t8f5c\tx\n",
        [
            "[ERROR] Exception: Handler fails",
            "Traceback (most recent call last):",
            "\u00a0\u00a0File",
        ],
    )
    assert data[:4] == bytes.fromhex("a55a0003")  # a plain log record
    assert FrameDecoder().feed(data) == [
        "[ERROR]\t2024-01-01T00:00:00.123Z\t8f5c\tcaught\nTraceback (most recent call last):\n"
        '  File "/var/task/handler.py", line 5, in handler\nValueError: inner',
        "[ERROR]\t2024-01-01T00:00:00.124Z\t8f5c\tx",
        "[ERROR] Exception: Handler fails\nTraceback (most recent call last):\n\u00a0\u00a0File",
    ]


def test_frames_split_anywhere_are_put_back_together() -> None:
    data = frame(b"first\n") + frame(b"second\nline\n", kind=bytes.fromhex("a55a0017"))
    decoder = FrameDecoder()
    records = [r for i in range(len(data)) for r in decoder.feed(data[i : i + 1])]
    assert records == ["first", "second\nline"]
    assert decoder.feed(b"") == []


def test_a_frame_cut_by_the_end_of_the_stream_keeps_what_arrived() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(frame(b"abcdef")[: 16 + 3]) == []
    assert decoder.feed(b"") == ["abc"]


def test_a_stream_that_is_not_frames_is_read_as_lines() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"plain output, not a frame\nmore") == ["plain output, not a frame"]
    assert decoder.feed(b"\n") == ["more"]


def test_text_that_is_not_utf8_inside_a_frame() -> None:
    assert FrameDecoder().feed(frame(b"\xff\xfe ok\n")) == ["\\xff\\xfe ok"]


FRAME_TYPES = [
    0xA55A0002,
    0xA55A000A,
    0xA55A000E,
    0xA55A0012,
    0xA55A0016,
    0xA55A001A,  # JSON, NOTSET..CRITICAL
    0xA55A0003,
    0xA55A000B,
    0xA55A000F,
    0xA55A0013,
    0xA55A0017,
    0xA55A001B,  # text, NOTSET..CRITICAL
]


@given(
    st.lists(st.tuples(st.text(max_size=40), st.sampled_from(FRAME_TYPES)), max_size=6),
    st.lists(st.integers(0, 400), max_size=6),
)
def test_any_chunking_of_any_frames_gives_one_record_each(
    records: list[tuple[str, int]], cuts: list[int]
) -> None:
    data = b"".join(frame(text.encode(), kind.to_bytes(4, "big")) for text, kind in records)
    expected = [text.removesuffix("\n") for text, _ in records]
    assert feed_in_pieces(FrameDecoder(), data, cuts) == expected


def test_the_level_frame_types_are_the_runtime_clients() -> None:
    from awslambdaric.lambda_runtime_log_utils import (  # type: ignore[import-untyped]
        _JSON_FRAME_TYPES,
        _TEXT_FRAME_TYPES,
    )

    levels = [
        logging.NOTSET,
        logging.DEBUG,
        logging.INFO,
        logging.WARNING,
        logging.ERROR,
        logging.CRITICAL,
    ]
    ric = [_JSON_FRAME_TYPES[lv] for lv in levels] + [_TEXT_FRAME_TYPES[lv] for lv in levels]
    assert [int.from_bytes(t, "big") for t in ric] == FRAME_TYPES
