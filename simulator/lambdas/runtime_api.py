"""The Lambda Runtime API (2018-06-01) on loopback, one listening port per environment.

AWS's runtime interface client (and any custom `bootstrap`) polls `GET
/runtime/invocation/next`, runs the handler, and posts `/response` or `/error` for the request
id it was given; failures before the first `next` go to `/init/error`. That id is the only
thing that binds a result to an invocation, so nothing a handler prints or returns can be
recorded against another one.

One asyncio loop on one thread (owned by `RuntimeApi`) serves every environment: a blocked
`next` costs a parked connection, not a thread. The loop also reads each environment's output
pipes and watches its process (a pidfd where Linux has them), so everything an environment
does reaches its owner as `Message`s, in the order it happened, on one thread-safe queue.
Status codes and error bodies follow AWS's runtime interface emulator (RAPID).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from simulator.core import telemetry

PREFIX = b"/2018-06-01/runtime/"
MAX_PAYLOAD = 6 * 1024 * 1024 + 100  # RAPID's interop.MaxPayloadSize (6291556 bytes)
LOOP_WAIT_S = 10.0  # bound on waiting for the loop thread (it may be stopping)
_MAX_HEAD = 64 * 1024
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")  # request line + headers; a runtime never needs more


@dataclass(frozen=True)
class Message:
    """What an environment did, as its owner learns it (see `kind`)."""

    kind: str  # ready | init_error | response | error | too_large | output | exited
    request_id: str = ""
    body: bytes = b""
    error_type: str = ""
    content_type: str = ""
    text: str = ""  # output: one line of stdout/stderr, or one telemetry record
    size: int = 0  # too_large: the response's size


@dataclass(frozen=True)
class Work:
    """One invocation as `next` hands it to the runtime."""

    request_id: str
    body: bytes
    deadline_ms: int
    invoked_arn: str
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None


@dataclass(eq=False)
class Endpoint:
    """The Runtime API of one environment. Mutated on the loop thread only."""

    messages: queue.SimpleQueue[Message]
    port: int = 0
    initialised: bool = False  # the runtime has asked for its first `next`
    queued: Work | None = None  # handed to the next `next`
    waiting: asyncio.Transport | None = None  # a parked `next`
    current: str | None = None  # the request id in flight
    server: asyncio.Server | None = None
    transports: set[asyncio.Transport] = field(default_factory=set)
    readers: list[int] = field(default_factory=list)
    decoders: dict[int, Callable[[bytes], list[str]]] = field(default_factory=dict)
    lines: telemetry.LineDecoder | None = None  # stdout/stderr: its partial line is flushed

    def post(self, message: Message) -> None:
        self.messages.put(message)


class RuntimeApi:
    """Owns the event loop thread; every method is safe to call from any other thread."""

    def __init__(self) -> None:
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name="s3sim-runtime-api", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def open(
        self,
        messages: queue.SimpleQueue[Message],
        output_fd: int,
        telemetry_fd: int | None,
    ) -> Endpoint:
        """A new endpoint on 127.0.0.1 (its port chosen by the kernel), reading the
        environment's output pipe (and telemetry pipe) into `messages`."""
        future = asyncio.run_coroutine_threadsafe(
            self._open(messages, output_fd, telemetry_fd), self._loop
        )
        return future.result(LOOP_WAIT_S)

    async def _open(
        self, messages: queue.SimpleQueue[Message], output_fd: int, telemetry_fd: int | None
    ) -> Endpoint:
        endpoint = Endpoint(messages)
        endpoint.server = await self._loop.create_server(
            lambda: _Connection(endpoint), "127.0.0.1", 0
        )
        endpoint.port = endpoint.server.sockets[0].getsockname()[1]
        endpoint.lines = telemetry.LineDecoder()
        self._watch(endpoint, output_fd, endpoint.lines.feed)
        if telemetry_fd is not None:
            self._watch(endpoint, telemetry_fd, telemetry.FrameDecoder().feed)
        return endpoint

    def watch(self, endpoint: Endpoint, pid: int) -> None:
        """Post `exited` when the process ends (where Linux has pidfds; the owner polls too)."""
        self._loop.call_soon_threadsafe(self._watch_exit, endpoint, pid)

    def _watch(self, endpoint: Endpoint, fd: int, decode: Callable[[bytes], list[str]]) -> None:
        os.set_blocking(fd, False)
        endpoint.readers.append(fd)
        endpoint.decoders[fd] = decode
        self._loop.add_reader(fd, _drain_fd, endpoint, fd)

    def _watch_exit(self, endpoint: Endpoint, pid: int) -> None:
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return  # no pidfds: the owner notices the exit by polling the process
        endpoint.readers.append(pidfd)
        self._loop.add_reader(pidfd, _exited, endpoint, pidfd)

    def submit(self, endpoint: Endpoint, work: Work) -> None:
        """Hand `work` to the runtime: now if it is waiting in `next`, else at its next `next`."""
        self._loop.call_soon_threadsafe(_submit, endpoint, work)

    def close(self, endpoint: Endpoint) -> None:
        """Stop serving an endpoint and reading its pipes (the owner closes the descriptors)."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError, TimeoutError):  # the loop stopped meanwhile
            future = asyncio.run_coroutine_threadsafe(self._close(endpoint), self._loop)
            future.result(LOOP_WAIT_S)

    async def _close(self, endpoint: Endpoint) -> None:
        _drain_all(endpoint)  # the last words of a process being stopped (a timeout)
        _flush_lines(endpoint)
        for fd in endpoint.readers:
            self._loop.remove_reader(fd)
            if fd not in endpoint.decoders:  # the pidfd is ours; the pipes are the owner's
                os.close(fd)
        endpoint.readers.clear()
        if endpoint.server is not None:
            endpoint.server.close()
        for transport in list(endpoint.transports):
            transport.abort()

    def shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS): the loop is on the path of every
    invocation, and libuv's takes about half the CPU of asyncio's own per round trip."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# -- on the loop thread --------------------------------------------------------------------


def _submit(endpoint: Endpoint, work: Work) -> None:
    endpoint.queued = work
    if endpoint.waiting is not None:
        transport, endpoint.waiting = endpoint.waiting, None
        _hand_over(endpoint, transport)


def _hand_over(endpoint: Endpoint, transport: asyncio.Transport) -> None:
    work, endpoint.queued = endpoint.queued, None
    assert work is not None
    endpoint.current = work.request_id
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Lambda-Runtime-Aws-Request-Id", work.request_id.encode()),
        (b"Lambda-Runtime-Deadline-Ms", str(work.deadline_ms).encode()),
        (b"Lambda-Runtime-Invoked-Function-Arn", work.invoked_arn.encode()),
        (b"Lambda-Runtime-Trace-Id", work.trace_id.encode()),
    ]
    if work.client_context is not None:
        headers.append((b"Lambda-Runtime-Client-Context", work.client_context.encode()))
    if work.cognito_identity is not None:
        headers.append((b"Lambda-Runtime-Cognito-Identity", work.cognito_identity.encode()))
    transport.write(_response(200, work.body, headers))


def _drain_fd(endpoint: Endpoint, fd: int) -> None:
    """Read what is there; each complete line (or telemetry record) becomes a message."""
    decode = endpoint.decoders[fd]
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # every writer closed it: flush a last partial line, stop reading
            for text in decode(b""):
                endpoint.post(Message("output", text=text))
            asyncio.get_running_loop().remove_reader(fd)
            endpoint.readers.remove(fd)
            return
        for text in decode(chunk):
            endpoint.post(Message("output", text=text))


def _drain_all(endpoint: Endpoint) -> None:
    """Output written before a post or an exit is logged before it."""
    for fd in list(endpoint.readers):
        if fd in endpoint.decoders:
            _drain_fd(endpoint, fd)


def _flush_lines(endpoint: Endpoint) -> None:
    """A partial stdout line belongs to the invocation that wrote it, not the next one."""
    if endpoint.lines is not None:
        for text in endpoint.lines.flush():
            endpoint.post(Message("output", text=text))


def _exited(endpoint: Endpoint, pidfd: int) -> None:
    _drain_all(endpoint)
    asyncio.get_running_loop().remove_reader(pidfd)
    endpoint.readers.remove(pidfd)
    os.close(pidfd)
    endpoint.post(Message("exited"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection from the runtime (keep-alive; requests in sequence)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: tuple[bytes, bytes, dict[bytes, bytes]] | None = None
        self._length = 0
        self._discard = 0  # bytes of an oversized body still to swallow
        self._too_large = False  # the body just read was over MAX_PAYLOAD (and dropped)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport).
        stream = cast(asyncio.Transport, transport)
        self._transport = stream
        sock = stream.get_extra_info("socket")
        if sock is not None:  # one write per response, sent at once (no Nagle delay)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._endpoint.transports.add(stream)

    def connection_lost(self, exc: Exception | None) -> None:
        assert self._transport is not None
        self._endpoint.transports.discard(self._transport)
        if self._endpoint.waiting is self._transport:
            self._endpoint.waiting = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Parse and handle what the buffer holds; True while more may follow."""
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self._fail(431, "RequestHeaderFieldsTooLarge", "request head too large")
                return False
            head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            del self._buffer[: end + 4]
            parsed = _parse_head(head)
            if parsed is None:
                self._fail(400, "InvalidRequestFormat", "malformed HTTP request")
                return False
            self._head = parsed
            headers = parsed[2]
            if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                self._length = -1
            else:
                try:
                    self._length = int(headers.get(b"content-length", b"0"))
                except ValueError:
                    self._fail(400, "InvalidRequestFormat", "bad Content-Length")
                    return False
            if headers.get(b"expect", b"").lower() == b"100-continue":
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._too_large = self._length > MAX_PAYLOAD
            self._discard = self._length if self._too_large else 0
        body = self._body()
        if body is None:
            return False
        method, target, headers = self._head
        self._head = None
        self._handle(method, target, headers, body)
        return True

    def _body(self) -> bytes | None:
        if self._discard:  # too large: swallow it, remember only its size
            taken = min(self._discard, len(self._buffer))
            del self._buffer[:taken]
            self._discard -= taken
            return None if self._discard else b""
        if self._length >= 0:
            if len(self._buffer) < self._length:
                return None
            body = bytes(self._buffer[: self._length])
            del self._buffer[: self._length]
            return body
        return self._chunked()

    def _chunked(self) -> bytes | None:
        """A chunked body, once its last chunk has arrived (trailers are ignored)."""
        out, pos = bytearray(), 0
        while True:
            line_end = self._buffer.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size_text = bytes(self._buffer[pos:line_end]).split(b";")[0].strip()
            if not _HEX.fullmatch(size_text):  # int(_, 16) would take "-40", "0x3", "1_0"
                self._fail(400, "InvalidRequestFormat", "bad chunk size")
                return None
            size = int(size_text, 16)
            start = line_end + 2
            if size == 0:
                end = self._buffer.find(b"\r\n\r\n", line_end)
                if end < 0:
                    return None
                del self._buffer[: end + 4]
                self._too_large = len(out) > MAX_PAYLOAD
                return b"" if self._too_large else bytes(out)
            if len(self._buffer) < start + size + 2:
                return None
            out += self._buffer[start : start + size]
            pos = start + size + 2

    def _handle(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes
    ) -> None:
        endpoint = self._endpoint
        if not target.startswith(PREFIX):
            self._write(_response(404, b"404 page not found\n", [], b"text/plain; charset=utf-8"))
            return
        parts = target[len(PREFIX) :].split(b"?")[0].split(b"/")
        if method == b"GET" and parts == [b"invocation", b"next"]:
            self._next()
        elif method == b"POST" and parts == [b"init", b"error"]:
            if endpoint.initialised:
                self._forbidden("InitError")
                return
            kind = headers.get(b"lambda-runtime-function-error-type", b"").decode("latin-1")
            _drain_all(endpoint)
            endpoint.post(Message("init_error", body=body, error_type=kind))
            self._write(_accepted())
        elif method == b"POST" and len(parts) == 3 and parts[0] == b"invocation":
            request_id, action = parts[1].decode("latin-1"), parts[2]
            if action not in (b"response", b"error"):
                self._write(_response(404, b"404 page not found\n", [], b"text/plain"))
                return
            self._result(request_id, action, headers, body)
        else:
            self._write(_response(405 if parts[0] in (b"invocation", b"init") else 404, b"", []))

    def _next(self) -> None:
        endpoint = self._endpoint
        if endpoint.current is not None:  # asked again without answering the one in flight
            self._forbidden("Ready")
            return
        _drain_all(endpoint)  # what the last invocation wrote (a partial line too) is its own
        _flush_lines(endpoint)
        if not endpoint.initialised:
            endpoint.initialised = True
            endpoint.post(Message("ready"))
        else:
            endpoint.post(Message("next"))  # the last invocation has ended
        assert self._transport is not None
        if endpoint.queued is not None:
            _hand_over(endpoint, self._transport)
        else:
            endpoint.waiting = self._transport

    def _result(
        self, request_id: str, action: bytes, headers: dict[bytes, bytes], body: bytes
    ) -> None:
        endpoint = self._endpoint
        if endpoint.current is None:
            state = "InvocationResponse" if action == b"response" else "InvocationErrorResponse"
            self._forbidden(state)
            return
        if request_id != endpoint.current:
            self._write(_error(400, "InvalidRequestID", "Invalid request ID"))
            return
        _drain_all(endpoint)
        endpoint.current = None
        if self._too_large:
            size = self._length if self._length > 0 else MAX_PAYLOAD + 1
            endpoint.post(Message("too_large", request_id=request_id, size=size))
            message = f"Exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."
            self._write(_error(413, "RequestEntityTooLarge", message))
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if action == b"response":
            endpoint.post(Message("response", request_id, body, content_type=content_type))
        else:
            kind = headers.get(b"lambda-runtime-function-error-type", b"").decode("latin-1")
            endpoint.post(Message("error", request_id, body, kind, content_type))
        self._write(_accepted())

    def _forbidden(self, target_state: str) -> None:
        message = f"State transition to {target_state} failed for runtime. Error: invalid state"
        self._write(_error(403, "InvalidStateTransition", message))

    def _fail(self, status: int, kind: str, message: str) -> None:
        self._write(_error(status, kind, message))
        if self._transport is not None:
            self._transport.close()
        self._buffer.clear()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


def _parse_head(lines: list[str]) -> tuple[bytes, bytes, dict[bytes, bytes]] | None:
    request = lines[0].split(" ")
    if len(request) != 3 or not request[2].startswith("HTTP/1."):
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower().encode("latin-1")] = value.strip().encode("latin-1")
    return request[0].encode(), request[1].encode("latin-1"), headers


_REASONS = {
    200: b"OK",
    202: b"Accepted",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Request Entity Too Large",
    431: b"Request Header Fields Too Large",
}


def _response(
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    content_type: bytes | None = None,
) -> bytes:
    """Status line, headers and body as one buffer: written with one send."""
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown"))]
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type)
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _accepted() -> bytes:
    return _response(202, b'{"status":"OK"}\n', [], b"application/json")


def _error(status: int, kind: str, message: str) -> bytes:
    body = orjson.dumps({"errorMessage": message, "errorType": kind}) + b"\n"
    return _response(status, body, [], b"application/json")


def decode_json(body: bytes) -> Any:
    """A runtime's response as a value: JSON where it is JSON (NaN and Infinity included, as
    Python's runtime writes them), else the text, else the bytes as Latin-1 text."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)  # the standard library reads NaN and Infinity; orjson does not
    except ValueError:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body.decode("latin-1")
