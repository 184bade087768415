"""The floors: the least a watchdog-based pipeline can do, with no simulator around it.

Both are watchdog observer (close/move events only) -> queue -> one dispatcher thread -> one
warm process running the same trivial handler. No journal, no eTag, no routing, no logging.

- `ric` (the floor the simulator is measured against): AWS's runtime interface client
  (awslambdaric), started the way s3sim starts it (`python -I -S launcher.py CONTROL_FD
  RUNTIME_DIR`, AWS_LAMBDA_RUNTIME_API set at spawn, then the init message on the control
  descriptor), polling a minimal Runtime API server: one asyncio loop on one thread that
  hands out `next`, accepts `/response` and `/error`, and does nothing else.
- `pipe` (the floor before handlers ran under the runtime client): the handler in a worker
  process fed over a multiprocessing pipe. Kept so the cost of fidelity (ric vs pipe) stays
  visible.

Run as `python -m benchmarks.floor pipe DIR HANDLER_FILE` or `python -m benchmarks.floor ric
DIR HANDLER_FILE INTERPRETER RUNTIME_DIR`; prints "ready" once watching (and, for ric, once
the runtime has asked for its first invocation).
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import multiprocessing as mp
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path

from watchdog.events import FileClosedEvent, FileMovedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

LAUNCHER = Path(__file__).parents[1] / "simulator" / "lambdas" / "launcher.py"
_ARN = b"arn:aws:lambda:us-east-1:123456789012:function:floor"
_TRACE = b"Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"
_ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
    b'{"status":"OK"}\n'
)


def _event(key: str) -> dict[str, object]:
    return {"Records": [{"s3": {"object": {"key": key}}}]}


class _Handler(FileSystemEventHandler):
    def __init__(self, q: queue.SimpleQueue[str], root: str) -> None:
        self._q, self._root = q, root

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = event.dest_path if isinstance(event, FileMovedEvent) else event.src_path
        self._q.put(os.path.relpath(str(path), self._root))


def _watch(q: queue.SimpleQueue[str], root: str) -> InotifyObserver:
    import warnings

    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
    observer = InotifyObserver()
    observer.schedule(
        _Handler(q, root), root, recursive=True, event_filter=[FileClosedEvent, FileMovedEvent]
    )
    observer.start()
    return observer


# -- pipe: a warm worker process over a multiprocessing pipe -------------------------------


class _Context:
    function_version = "$LATEST"
    aws_request_id = "floor"


def worker(conn: Connection, handler_file: str) -> None:
    spec = importlib.util.spec_from_file_location("floor_handler", handler_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = _Context()
    while True:
        key = conn.recv()
        if key is None:
            return
        module.handler(_event(key), context)


def pipe_main(root: str, handler_file: str) -> None:
    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(target=worker, args=(child, handler_file))
    process.start()  # before the observer's threads exist
    q: queue.SimpleQueue[str] = queue.SimpleQueue()

    def dispatch() -> None:
        while True:
            parent.send(q.get())

    threading.Thread(target=dispatch, daemon=True).start()
    observer = _watch(q, root)
    print("ready", flush=True)
    sys.stdin.read()  # runs until the benchmark closes our stdin
    observer.stop()
    parent.send(None)
    process.join()


# -- ric: awslambdaric over a minimal Runtime API -------------------------------------------


class _Api:
    """`next` hands out queued events one at a time; results are acknowledged and dropped (the
    handler records its own entry). Loop thread only, except `first_next`."""

    def __init__(self) -> None:
        self.pending: deque[bytes] = deque()
        self.parked: asyncio.Transport | None = None
        self.first_next = threading.Event()
        self._ids = itertools.count()

    def submit(self, body: bytes) -> None:
        if self.parked is not None:
            transport, self.parked = self.parked, None
            self._hand_over(transport, body)
        else:
            self.pending.append(body)

    def next(self, transport: asyncio.Transport) -> None:
        self.first_next.set()
        if self.pending:
            self._hand_over(transport, self.pending.popleft())
        else:
            self.parked = transport

    def _hand_over(self, transport: asyncio.Transport, body: bytes) -> None:
        request_id = b"00000000-0000-4000-8000-%012x" % next(self._ids)
        deadline_ms = time.time_ns() // 1_000_000 + 30_000
        head = [
            b"HTTP/1.1 200 OK",
            b"Content-Type: application/json",  # without it the runtime client hangs up
            b"Lambda-Runtime-Aws-Request-Id: " + request_id,
            b"Lambda-Runtime-Deadline-Ms: %d" % deadline_ms,
            b"Lambda-Runtime-Invoked-Function-Arn: " + _ARN,
            b"Lambda-Runtime-Trace-Id: " + _TRACE,
            b"Content-Length: %d" % len(body),
        ]
        transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)  # one send


class _Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive, requests in sequence, Content-Length or chunked bodies."""

    def __init__(self, api: _Api) -> None:
        self._api = api
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._continued = False  # 100 Continue sent for the request being received

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._api.parked is self._transport:
            self._api.parked = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._request():
            pass

    def _request(self) -> bool:
        """Handle one whole request from the buffer; False until one is there."""
        buffer, transport = self._buffer, self._transport
        assert transport is not None
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(buffer[:end]).lower()
        body_end = end + 4
        if b"transfer-encoding: chunked" in head:
            last = buffer.find(b"\r\n0\r\n\r\n", end)  # the body is not read, only skipped
            if last < 0:
                return False
            body_end = last + 7
        elif (at := head.find(b"\r\ncontent-length:")) >= 0:
            body_end += int(head[at + 17 :].split(b"\r\n", 1)[0])
        if len(buffer) < body_end:
            if b"\r\nexpect: 100-continue" in head and not self._continued:
                self._continued = True
                transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return False
        self._continued = False
        del buffer[:body_end]
        if head.startswith(b"get /2018-06-01/runtime/invocation/next "):
            self._api.next(transport)
        elif head.startswith(b"post "):  # /response, /error or /init/error
            if b"/init/error " in head.split(b"\r\n", 1)[0]:
                print("floor: the runtime reported an init error", file=sys.stderr, flush=True)
            transport.write(_ACCEPTED)
        else:
            transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True


def ric_main(root: str, handler_file: str, interpreter: str, runtime_dir: str) -> None:
    api = _Api()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(lambda: _Connection(api), "127.0.0.1", 0))
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    code_dir = os.path.dirname(os.path.abspath(handler_file))
    handler = Path(handler_file).stem + ".handler"
    control_r, control_w = os.pipe()
    runtime = subprocess.Popen(
        [interpreter, "-I", "-S", str(LAUNCHER), str(control_r), runtime_dir],
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "AWS_LAMBDA_RUNTIME_API": address},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        pass_fds=(control_r,),
    )
    os.close(control_r)
    env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": address,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{Path(runtime_dir).name}",  # e.g. python3.11
        "AWS_LAMBDA_FUNCTION_NAME": "floor",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "_HANDLER": handler,
        "LAMBDA_TASK_ROOT": code_dir,
        "LAMBDA_RUNTIME_DIR": runtime_dir,
        "OUT": os.environ["OUT"],
    }
    init = {"env": env, "code_dir": code_dir, "path": [code_dir], "handler": handler}
    with os.fdopen(control_w, "wb") as control:
        control.write(json.dumps(init).encode())
    threading.Thread(target=loop.run_forever, daemon=True).start()
    q: queue.SimpleQueue[str] = queue.SimpleQueue()

    def dispatch() -> None:
        while True:
            body = json.dumps(_event(q.get())).encode()
            loop.call_soon_threadsafe(api.submit, body)

    threading.Thread(target=dispatch, daemon=True).start()
    if not api.first_next.wait(60):
        runtime.kill()
        raise SystemExit("floor: the runtime client never asked for an invocation")
    observer = _watch(q, root)
    print("ready", flush=True)
    sys.stdin.read()  # runs until the benchmark closes our stdin
    observer.stop()
    runtime.kill()
    runtime.wait()
    loop.call_soon_threadsafe(loop.stop)


if __name__ == "__main__":
    if sys.argv[1] == "pipe":
        pipe_main(sys.argv[2], sys.argv[3])
    else:
        ric_main(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
