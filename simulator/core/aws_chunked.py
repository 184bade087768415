"""`Content-Encoding: aws-chunked` bodies, as current SDKs upload them. Pure.

`<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n` repeated, then a zero-size chunk, then
trailer lines (`x-amz-checksum-crc32:<base64>`, `x-amz-trailer-signature:<sig>`) and an
empty line. The decoder is fed the body as it arrives and returns the data in it.
"""

from __future__ import annotations

import re

_MAX_LINE = 4096
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class MalformedChunks(ValueError):
    pass


class Decoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._remaining = 0  # data bytes still to come in the current chunk
        self._crlf = False  # a chunk's data ended: its CRLF comes next
        self._in_trailers = False
        self.trailers: dict[str, str] = {}
        self.signatures: list[str] = []  # chunk signatures, in order (signed variants)
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            if data:
                raise MalformedChunks("bytes after the final chunk")
            return b""
        self._buffer += data
        out = bytearray()
        while not self.done:
            if self._remaining:
                take = self._buffer[: self._remaining]
                out += take
                self._buffer = self._buffer[len(take) :]
                self._remaining -= len(take)
                if self._remaining:
                    break
                self._crlf = True
                continue
            line = self._line()
            if line is None:
                break
            if self._crlf:
                if line:
                    raise MalformedChunks("chunk data is not followed by CRLF")
                self._crlf = False
            elif self._in_trailers:
                self._trailer(line)
            else:
                self._header(line)
        return bytes(out)

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_LINE:
                raise MalformedChunks("chunk header too long")
            return None
        line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        return line

    def _header(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        if not _HEX.fullmatch(size_text):  # int(_, 16) would take "-3", "0x3", "1_0"
            raise MalformedChunks(f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if extension.startswith(b"chunk-signature="):
            self.signatures.append(extension.split(b"=", 1)[1].decode("latin-1"))
        if size == 0:
            self._in_trailers = True
        self._remaining = size

    def _trailer(self, line: bytes) -> None:
        if not line:
            self.done = True
            if self._buffer:
                raise MalformedChunks("bytes after the final chunk")
            return
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise MalformedChunks(f"bad trailer line {line[:40]!r}")
        self.trailers[name.strip().lower()] = value.strip()
