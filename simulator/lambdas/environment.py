"""One execution environment: a worker process bound to one function version.

The parent side of the pipe protocol in `worker.py`. An Environment is used by one invocation
at a time (the pool guarantees it) and is owned by the pool, which starts and stops it.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from simulator.core import lambda_env, lambda_errors
from simulator.lambdas import processes

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
MEMORY_SAMPLE_S = 0.02  # how often a running handler's resident memory is checked
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 4096 / 2**20
_HEADER = struct.Struct(">I")


@dataclass(frozen=True)
class Spec:
    """Everything needed to start an environment for one function version."""

    function: str
    version: str  # "$LATEST" or "N"
    code_dir: Path
    handler: str
    timeout_s: int
    memory_mb: int
    user_env: Mapping[str, str]  # the function's own variables (may hold ${NAME} references)
    region: str
    generation: int = 0  # bumps when $LATEST code changes, so stale environments retire
    pycache_dir: Path | None = None  # byte-code goes here, never into the code folder
    cache_bytecode: bool = True  # off for $LATEST: a same-size edit within a second would
    # otherwise match the old .pyc's (mtime, size) stamp and run stale code

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.function, self.version, self.generation)


@dataclass(frozen=True, kw_only=True)
class Result:
    """What one invocation produced, before the invoker turns it into log lines."""

    ok: bool
    payload: Any
    error_type: str | None = None
    duration_ms: float = 0.0
    max_memory_mb: int = 0
    init_ms: float | None = None  # set on a cold start
    environment_lost: bool = False  # timeout or crash: the environment must be replaced

    @classmethod
    def failed(cls, payload: dict[str, Any], **measures: Any) -> Result:
        """A failure whose type is the payload's `errorType`, as Lambda reports it."""
        return cls(ok=False, payload=payload, error_type=str(payload.get("errorType")), **measures)


class Environment:
    def __init__(self, spec: Spec, tmp_dir: Path, log_limit: int) -> None:
        self.spec, self.tmp_dir, self._log_limit = spec, tmp_dir, log_limit
        self._proc: subprocess.Popen[bytes] | None = None
        self._rfd = self._wfd = -1
        self._buffer = b""
        self.invocations = 0
        self.init_ms = 0.0
        self._started = 0.0
        self.peak_mb = 0
        self.out_of_memory = False
        self._peer_closed = False
        self._stop_lock = threading.Lock()
        self.alive = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(
        self, on_output: Callable[[str], None], deadline: float, blank: Blank | None = None
    ) -> Result | None:
        """Turn a blank runtime (a spare, or one started now) into this environment and run
        the handler module's init. Returns a failure Result, or None.

        Init Duration counts from then to the handler being loaded: what the cold start
        costs the caller, like Lambda's runtime + module init.
        """
        self._started = time.monotonic()
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        spec = self.spec
        init = {
            "code_dir": str(spec.code_dir),
            "handler": spec.handler,
            "log_limit": self._log_limit,
            "env": self._process_env(),
            "output": str(self.tmp_dir / "runtime.out"),
            "pycache_prefix": self._pycache_prefix(),
            "cache_bytecode": spec.cache_bytecode,
        }
        for candidate in (blank, None):
            adopted = candidate or launch_blank()
            self._proc, self._rfd, self._wfd = adopted.proc, adopted.rfd, adopted.wfd
            self.alive = True
            try:
                self._send(init)
                break
            except OSError:  # a spare that died while waiting: start a fresh one instead
                self.stop()
        return self._await_init(on_output, deadline)

    def _process_env(self) -> dict[str, str]:
        spec = self.spec
        return lambda_env.build(
            function=spec.function,
            version=spec.version,
            region=spec.region,
            handler=spec.handler,
            memory_mb=spec.memory_mb,
            code_dir=str(spec.code_dir),
            tmp_dir=str(self.tmp_dir),
            log_stream=lambda_env.log_stream_name(spec.version),
            user_env=spec.user_env,
            host=os.environ,
        )

    def _pycache_prefix(self) -> str | None:
        # Without caching, the prefix points at a folder that is never written, so no stale
        # byte-code is ever read either.
        if self.spec.pycache_dir is None:
            return None
        if not self.spec.cache_bytecode:
            return str(self.spec.pycache_dir / "never-written")
        return str(self.spec.pycache_dir)

    def _await_init(self, on_output: Callable[[str], None], deadline: float) -> Result | None:
        started = self._started
        message = self._receive_until(deadline, on_output)
        if message is not None and message["type"] == "ready":
            self.init_ms = (time.monotonic() - started) * 1000
            return None
        if message is not None:  # init_error: the runtime reports it and exits
            payload, init_ms = message["payload"], (time.monotonic() - started) * 1000
        elif not self._peer_closed:
            init_ms = (time.monotonic() - started) * 1000
            payload = {
                "errorType": lambda_errors.TIMED_OUT,
                "errorMessage": f"Error: Init timed out after {init_ms / 1000:.2f} seconds",
            }
        else:
            payload, init_ms = self._exit_payload(""), (time.monotonic() - started) * 1000
        self.stop()
        return Result.failed(payload, init_ms=init_ms, environment_lost=True)

    def stop(self) -> None:
        """Kill the worker's process tree and close the pipes; safe to call twice, from two threads
        (the pool stops busy environments at shutdown while their invocation still waits)."""
        with self._stop_lock:
            if self._proc is not None:
                processes.stop_tree(self._proc)  # the worker and all its handler started
            for fd in (self._rfd, self._wfd):
                if fd >= 0:
                    os.close(fd)
            self._rfd = self._wfd = -1
            self.alive = False

    # -- invocation ------------------------------------------------------------------------
    def invoke(
        self,
        request_id: str,
        invoked_arn: str,
        event: Any,
        on_output: Callable[[str], None],
        deadline_ms: int,
    ) -> Result:
        deadline = time.monotonic() + (deadline_ms - time.time() * 1000) / 1000
        self.invocations += 1
        started = time.perf_counter()
        try:
            self._send(
                {
                    "request_id": request_id,
                    "invoked_arn": invoked_arn,
                    "event": event,
                    "deadline_ms": deadline_ms,
                }
            )
        except OSError:
            pass  # the process died; receiving reports it as Runtime.ExitError
        message = self._receive_until(deadline, on_output)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if message is not None:
            self.peak_mb = max(self.peak_mb, int(message["max_memory_mb"]))
            return Result(
                ok=bool(message["ok"]),
                payload=message["payload"],
                error_type=message["error_type"],
                duration_ms=float(message["duration_ms"]),
                max_memory_mb=self.peak_mb,
            )
        if self.out_of_memory:
            self.stop()
            text = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
            return Result.failed(
                {"errorType": lambda_errors.OUT_OF_MEMORY, "errorMessage": text},
                duration_ms=elapsed_ms,
                max_memory_mb=self.peak_mb,
                environment_lost=True,
            )
        if not self._peer_closed:  # still running at the deadline: timed out
            self.stop()
            text = (
                f"RequestId: {request_id} Error: Task timed out after "
                f"{self.spec.timeout_s:.2f} seconds"
            )
            return Result.failed(
                {"errorType": lambda_errors.TIMED_OUT, "errorMessage": text},
                duration_ms=elapsed_ms,
                environment_lost=True,
            )
        payload = self._exit_payload(request_id)
        self.stop()
        return Result.failed(payload, duration_ms=elapsed_ms, environment_lost=True)

    def _exit_payload(self, request_id: str) -> dict[str, str]:
        code = None
        if self._proc is not None:
            try:
                code = self._proc.wait(timeout=5)  # it closed its pipe: it is exiting
            except subprocess.TimeoutExpired:
                self.stop()
                code = self._proc.returncode
        if code is None or code == 0:
            reason = "Runtime exited without providing a reason"
        elif code < 0:
            reason = f"Runtime exited with error: signal: {_signal_name(-code)}"
        else:
            reason = f"Runtime exited with error: exit status {code}"
        prefix = f"RequestId: {request_id} " if request_id else ""
        return {"errorType": lambda_errors.EXIT_ERROR, "errorMessage": f"{prefix}Error: {reason}"}

    # -- framing ---------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        body = orjson.dumps(message)
        data = memoryview(_HEADER.pack(len(body)) + body)
        while data:
            data = data[os.write(self._wfd, data) :]

    def _receive_until(
        self, deadline: float, on_output: Callable[[str], None]
    ) -> dict[str, Any] | None:
        """The next non-log frame, forwarding log frames; None on timeout or process exit."""
        while True:
            frame = self._next_frame(deadline)
            if frame is None or frame.get("type") != "log":
                return frame
            on_output(str(frame["data"]))

    def _next_frame(self, deadline: float) -> dict[str, Any] | None:
        while True:
            if len(self._buffer) >= _HEADER.size:
                size = _HEADER.unpack_from(self._buffer)[0]
                if len(self._buffer) >= _HEADER.size + size:
                    body = self._buffer[_HEADER.size : _HEADER.size + size]
                    self._buffer = self._buffer[_HEADER.size + size :]
                    return orjson.loads(body)  # type: ignore[no-any-return]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            rfd = self._rfd
            if rfd < 0:  # stopped from another thread (shutdown)
                self._peer_closed = True
                return None
            poller = select.poll()  # poll, not select: descriptors may exceed FD_SETSIZE
            poller.register(rfd, select.POLLIN)
            if not poller.poll(min(remaining, MEMORY_SAMPLE_S) * 1000):
                if self._over_memory():
                    return None
                continue
            try:
                chunk = os.read(rfd, 1 << 16) if self._rfd == rfd else b""
            except OSError:
                chunk = b""
            if not chunk:
                self._peer_closed = True  # the process exited (or closed its end)
                return None
            self._buffer += chunk

    def _over_memory(self) -> bool:
        """Sample the process's resident size; True (and remember it) once over the limit."""
        rss_mb = _rss_mb(self.pid)
        self.peak_mb = max(self.peak_mb, rss_mb)
        self.out_of_memory = rss_mb > self.spec.memory_mb
        return self.out_of_memory

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


@dataclass(frozen=True)
class Blank:
    """A started runtime process that has not yet been told which function it runs."""

    proc: subprocess.Popen[bytes]
    rfd: int  # we read its frames here
    wfd: int  # and write ours here

    def discard(self) -> None:
        processes.stop_tree(self.proc)
        os.close(self.rfd)
        os.close(self.wfd)


def launch_blank() -> Blank:
    """`python -I worker.py`: nothing of the simulator's environment but PATH and LANG."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    try:
        proc = processes.spawn(
            [sys.executable, "-I", str(WORKER_SCRIPT), str(to_child_r), str(from_child_w)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_child_r, from_child_w),
            start_new_session=True,
        )
    finally:
        os.close(to_child_r)
        os.close(from_child_w)
    return Blank(proc, from_child_r, to_child_w)


def _rss_mb(pid: int | None) -> int:
    """Resident memory of a process in MB (Linux /proc; 0 where it cannot be read)."""
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(int(f.read().split()[1]) * _PAGE_MB)
    except (OSError, IndexError, ValueError):
        return 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG").lower().replace("kill", "killed")
    except ValueError:
        return str(number)
