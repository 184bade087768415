"""Reading what an execution environment writes: its stdout/stderr as lines, and the runtime
client's telemetry log descriptor as records. Pure: bytes in, text out.

The telemetry frames are those of awslambdaric's `FramedTelemetryLogSink`: a 4-byte type
(0xa55a00XX, big-endian), a 4-byte length, an 8-byte timestamp in microseconds, then the
message. One frame is one log record, however many lines it has (a traceback stays whole).
"""

from __future__ import annotations

import struct

_FRAME = struct.Struct(">IIQ")
_FRAME_MAGIC = 0xA55A0000
_MAX_LINE = 256 * 1024  # a line without a newline is cut here, so memory stays bounded
_MAX_RECORD = 1024 * 1024  # a larger frame is not the runtime client's (CloudWatch: 256 KB)


def _text(data: bytes) -> str:
    # Handlers print undecodable bytes (a non-UTF-8 file name); show them, never fail on them.
    return data.decode("utf-8", "backslashreplace")


class LineDecoder:
    """Bytes of a stream in, complete lines out (without their newline); `feed(b"")` at the end
    of the stream returns the last partial line."""

    def __init__(self) -> None:
        self._pending = b""

    def flush(self) -> list[str]:
        """The partial last line, if any (the writer has finished a unit of output)."""
        rest, self._pending = self._pending, b""
        return [_text(rest)] if rest else []

    def feed(self, chunk: bytes) -> list[str]:
        if not chunk:
            return self.flush()
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > _MAX_LINE:
            lines.append(self._pending)
            self._pending = b""
        return [_text(line.removesuffix(b"\r")) for line in lines]


class FrameDecoder:
    """Telemetry frames in, one text per record out (a trailing newline removed)."""

    def __init__(self) -> None:
        self._pending = b""
        self._broken = False  # not frames after all: pass the bytes on as lines
        self._lines = LineDecoder()

    def feed(self, chunk: bytes) -> list[str]:
        if self._broken:
            return self._lines.feed(chunk)
        data, records = self._pending + chunk, list[str]()
        while len(data) >= _FRAME.size:
            kind, length, _micros = _FRAME.unpack_from(data)
            if kind & 0xFFFF0000 != _FRAME_MAGIC or length > _MAX_RECORD:
                self._broken = True
                return records + self._lines.feed(data)
            if len(data) < _FRAME.size + length:
                break
            body = data[_FRAME.size : _FRAME.size + length]
            records.append(_text(body).removesuffix("\n"))
            data = data[_FRAME.size + length :]
        self._pending = data
        if not chunk and data:  # end of stream inside a frame: keep what there is
            records.append(_text(data[_FRAME.size :]))
            self._pending = b""
        return records
