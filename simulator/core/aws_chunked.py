"""`Content-Encoding: aws-chunked` bodies, as current SDKs upload them. Pure.

`<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n` repeated, then a zero-size chunk, then
trailer lines (`x-amz-checksum-crc32:<base64>`, `x-amz-trailer-signature:<sig>`) and an
empty line. The decoder is fed the body as it arrives and returns the data in it.

The signed variants (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`) chain a signature per
chunk from the request's seed signature, and one over the trailers; a `SignatureChain` checks
each as it completes (S3's "Signature Calculations ... Chunked Upload" and "... Trailing
Headers").
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

_MAX_LINE = 4096
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class MalformedChunks(ValueError):
    pass


class BadChunkSignature(ValueError):
    """A chunk or the trailers were not signed with the request's key, in this order."""


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class SignatureChain:
    """The chained signatures of a signed aws-chunked body. `sign` turns a string to sign
    into its hex signature with the request's signing key (the shell's, from botocore)."""

    def __init__(self, seed: str, timestamp: str, scope: str, sign: Callable[[str], str]) -> None:
        self._previous, self._timestamp, self._scope, self._sign = seed, timestamp, scope, sign

    def _check(self, kind: str, digest: str, given: str) -> None:
        text = "\n".join((kind, self._timestamp, self._scope, self._previous, digest))
        expected = self._sign(text)
        if not hmac.compare_digest(expected, given):
            raise BadChunkSignature(kind)
        self._previous = given

    def chunk(self, data_sha256: str, given: str) -> None:
        self._check("AWS4-HMAC-SHA256-PAYLOAD", f"{EMPTY_SHA256}\n{data_sha256}", given)

    def trailer(self, trailers: dict[str, str], given: str) -> None:
        canonical = "".join(f"{name}:{value}\n" for name, value in trailers.items())
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        self._check("AWS4-HMAC-SHA256-TRAILER", digest, given)


class Decoder:
    def __init__(self, chain: SignatureChain | None = None, signed_trailer: bool = False) -> None:
        self._chain = chain
        self._signed_trailer = signed_trailer  # the -TRAILER variant: trailers are signed
        self._chunk_sha: Any = None  # the current chunk's SHA-256 (signed variants)
        self._chunk_signature = ""
        self._buffer = b""
        self._remaining = 0  # data bytes still to come in the current chunk
        self._crlf = False  # a chunk's data ended: its CRLF comes next
        self._in_trailers = False
        self.trailers: dict[str, str] = {}
        self.signatures: list[str] = []  # chunk signatures, in order (signed variants)
        self.done = False
        self._trailer_signed = False

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
                if self._chunk_sha is not None:
                    self._chunk_sha.update(take)
                self._buffer = self._buffer[len(take) :]
                self._remaining -= len(take)
                if self._remaining:
                    break
                self._end_chunk()
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
        if self._chain is not None:
            if not extension.startswith(b"chunk-signature="):
                raise BadChunkSignature("a chunk without its signature")
            self._chunk_signature = self.signatures[-1]
            self._chunk_sha = hashlib.sha256()
        if size == 0:
            self._end_chunk()
            self._in_trailers = True
        self._remaining = size

    def _end_chunk(self) -> None:
        if self._chain is not None and self._chunk_sha is not None:
            self._chain.chunk(self._chunk_sha.hexdigest(), self._chunk_signature)
            self._chunk_sha = None

    def _trailer(self, line: bytes) -> None:
        if not line:
            if self._chain is not None and self._signed_trailer and not self._trailer_signed:
                raise BadChunkSignature("the trailers are not signed")
            self.done = True
            if self._buffer:
                raise MalformedChunks("bytes after the final chunk")
            return
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise MalformedChunks(f"bad trailer line {line[:40]!r}")
        name, value = name.strip().lower(), value.strip()
        if name == "x-amz-trailer-signature":
            if self._chain is not None:
                self._chain.trailer(self.trailers, value)
                self._trailer_signed = True
            return
        if self._trailer_signed:
            raise BadChunkSignature("a trailer after the trailer signature")
        self.trailers[name] = value
