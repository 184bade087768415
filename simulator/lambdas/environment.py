"""One execution environment: a runtime process bound to one function version, talking to its
own Runtime API endpoint (runtime_api.py).

A Python environment is AWS's runtime interface client started by `launcher.py`; a custom
runtime is the function's own `bootstrap`. Either way the process learns of invocations only
through `next` and reports through `/response`, `/error` or `/init/error`, and everything it
writes (stdout and stderr at the descriptor level, the telemetry log descriptor) comes back
as messages on one queue. An Environment is used by one invocation at a time (the pool
guarantees it) and is owned by the pool, which starts and stops it.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from simulator.core import lambda_env, lambda_errors
from simulator.lambdas import processes, runtime_api
from simulator.lambdas.runtime_api import Endpoint, Message, RuntimeApi, Work
from simulator.lambdas.runtimes import LAUNCHER, Runtime

MEMORY_SAMPLE_S = 0.02  # how often a running handler's resident memory is checked
EXIT_GRACE_S = 5.0  # how long a process that closed its pipes gets to be reaped
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 4096 / 2**20
TOO_LARGE = "Function.ResponseSizeTooLarge"
NEXT_GRACE_S = 5.0  # a runtime that answered asks for its next invocation within this
PEAK_READ_MS = 20.0  # invocations longer than this read the process's peak memory
MEMORY_READ_S = 0.1  # shorter ones read the current size at most this often


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
    runtime: Runtime
    generation: int = 0  # bumps when $LATEST code changes, so stale environments retire
    pycache_dir: Path | None = None  # byte-code goes here, never into the code folder
    cache_bytecode: bool = True  # off for $LATEST: a same-size edit within a second would
    # otherwise match the old .pyc's (mtime, size) stamp and run stale code
    import_path: tuple[str, ...] = ()  # after the task root: the build, then the layers
    layers: tuple[Path, ...] = ()  # their bin/ and lib/ join PATH and LD_LIBRARY_PATH
    logging: Mapping[str, str] = field(default_factory=dict)  # log_format, log_level
    # Seen read-only where the launcher can mount (the buckets: in Lambda a handler reaches
    # S3 only through its API, so a write straight into a bucket folder cannot loop unseen).
    read_only: tuple[Path, ...] = ()

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


@dataclass
class Blank:
    """A started runtime process, with its own Runtime API endpoint and message queue, that
    has not yet been told which function it runs."""

    proc: subprocess.Popen[bytes]
    runtime: Runtime
    api: RuntimeApi
    endpoint: Endpoint
    messages: queue.SimpleQueue[Message]
    output_fd: int | None  # we read its stdout + stderr here
    telemetry_fd: int | None  # and its telemetry frames here
    telemetry_child_fd: int | None  # the descriptor number it writes them to
    control_fd: int | None  # its init message goes here (None: a custom runtime, started set)
    ready_fd: int | None = None  # readable once the runtime client is imported

    def preloaded(self) -> bool:
        """The runtime client is imported: taking it now costs only the handler's init."""
        if self.ready_fd is None:
            return True
        poller = select.poll()
        poller.register(self.ready_fd, select.POLLIN | select.POLLHUP)
        return bool(poller.poll(0))

    def close_fds(self) -> None:
        for fd in (self.output_fd, self.telemetry_fd, self.control_fd, self.ready_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        # Each descriptor is closed once: a second close could hit a number reused since.
        self.output_fd = self.telemetry_fd = self.control_fd = self.ready_fd = None

    def discard(self) -> None:
        processes.stop_tree(self.proc)
        self.api.close(self.endpoint)
        self.close_fds()


class Environment:
    def __init__(
        self,
        spec: Spec,
        tmp_dir: Path,
        log_limit: int,
        api: RuntimeApi,
        on_idle_output: Callable[[str], None] | None = None,
        endpoints: Mapping[str, str] | None = None,
    ) -> None:
        self._endpoints = endpoints or {}
        self.spec, self.tmp_dir, self._log_limit, self._api = spec, tmp_dir, log_limit, api
        self._on_idle_output = on_idle_output or (lambda text: None)
        self._blank: Blank | None = None
        self._endpoint: Endpoint | None = None
        self._messages: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.invocations = 0
        self.init_ms = 0.0
        self.peak_mb = 0
        self._memory_read_at = 0.0
        self._sampled_at = time.monotonic()
        self._init_output = 0  # bytes of output the init wrote, for the first invocation's cap
        self._stop_lock = threading.Lock()
        self.alive = False
        self._exited = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(
        self, on_output: Callable[[str], None], deadline: float, blank: Blank | None = None
    ) -> Result | None:
        """Turn a blank runtime (a spare, or one started now) into this environment and run
        the handler module's init. Returns a failure Result, or None once the runtime has
        asked for its first invocation.

        Init Duration counts from then to that first `next`: what the cold start costs the
        caller, like Lambda's runtime + module init.
        """
        started = time.monotonic()
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        if self.spec.runtime.custom:
            self._start_custom()
        else:
            self._start_python(blank)
        # A cold start's init output counts towards the limit of the invocation it serves.
        output = _Capped(on_output, self._log_limit)
        while True:
            message = self._next_message(deadline)
            if message is not None and message.kind == "output":
                output(message.text)
                continue
            break
        self.init_ms = (time.monotonic() - started) * 1000
        self._init_output = output.used
        if message is not None and message.kind == "ready":
            return None
        if message is not None and message.kind == "over_memory":
            self.stop()
            return Result.failed(
                {
                    "errorType": lambda_errors.OUT_OF_MEMORY,
                    "errorMessage": "Error: Runtime exited with error: signal: killed",
                },
                init_ms=self.init_ms,
                max_memory_mb=self.peak_mb,
                environment_lost=True,
            )
        if message is not None and message.kind == "init_error":
            payload = _error_payload(message.body, message.error_type)
            self._drain_output(output, EXIT_GRACE_S)  # the runtime logs it, then exits
        elif message is None:
            payload = {
                "errorType": lambda_errors.TIMED_OUT,
                "errorMessage": f"Error: Init timed out after {self.init_ms / 1000:.2f} seconds",
            }
        else:
            payload = self._exit_payload("")
        self.stop()
        return Result.failed(payload, init_ms=self.init_ms, environment_lost=True)

    def _start_python(self, blank: Blank | None) -> None:
        for candidate in (blank, None):
            adopted = candidate or launch_blank(self.spec.runtime, self._api)
            self._adopt(adopted)
            init = {
                "env": self._process_env(adopted.telemetry_child_fd),
                "code_dir": str(self.spec.code_dir),
                "path": [str(self.spec.code_dir), *self.spec.import_path],
                "handler": self.spec.handler,
                "pycache_prefix": self._pycache_prefix(),
                "cache_bytecode": self.spec.cache_bytecode,
                # Lambda's paths, where the launcher can mount them (it says if not).
                "layout": {
                    "task": str(self.spec.code_dir),
                    "runtime": str(self.spec.runtime.packages),
                    "layers": [str(layer) for layer in self.spec.layers],
                    "read_only": [str(folder) for folder in self.spec.read_only],
                },
            }
            try:
                _write_all(adopted.control_fd, orjson.dumps(init))
                assert adopted.control_fd is not None
                os.close(adopted.control_fd)
                adopted.control_fd = None
                return
            except OSError:  # a spare that died while waiting: start a fresh one instead
                self.stop()
                self._exited = False

    def _start_custom(self) -> None:
        """`bootstrap` from the code folder, started with the environment already set."""
        out_r, out_w = os.pipe()
        self._endpoint = self._api.open(self._messages, out_r, None)
        env = self._process_env(None)
        bootstrap = self.spec.code_dir / "bootstrap"
        try:
            proc = processes.spawn(
                [str(bootstrap)],
                env=env,
                cwd=str(self.spec.code_dir),
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=out_w,
                start_new_session=True,
            )
        except OSError as exc:
            self._api.close(self._endpoint)
            self._endpoint = None
            for fd in (out_r, out_w):
                os.close(fd)
            self._messages.put(Message("init_error", body=_bootstrap_error(exc)))
            self._messages.put(Message("exited"))
            self._blank = None
            return
        os.close(out_w)
        self._blank = Blank(
            proc,
            self.spec.runtime,
            self._api,
            self._endpoint,
            self._messages,
            out_r,
            None,
            None,
            None,
        )
        self.alive = True
        self._api.watch(self._endpoint, proc.pid)

    def _adopt(self, blank: Blank) -> None:
        self._blank, self._endpoint, self._messages = blank, blank.endpoint, blank.messages
        self.alive = True

    def _process_env(self, telemetry_fd: int | None) -> dict[str, str]:
        spec = self.spec
        assert self._endpoint is not None
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
            runtime=lambda_env.RuntimeVars(
                api=f"127.0.0.1:{self._endpoint.port}",
                execution_env=spec.runtime.execution_env,
                runtime_dir=str(spec.runtime.packages or spec.code_dir),
                telemetry_fd=telemetry_fd,
                log_format=spec.logging.get("log_format"),
                log_level=spec.logging.get("log_level"),
                bin_dirs=tuple(str(layer / "bin") for layer in spec.layers),
                lib_dirs=tuple(str(layer / "lib") for layer in spec.layers),
                endpoints=self._endpoints,
            ),
        )

    def _pycache_prefix(self) -> str | None:
        # Without caching, the prefix points at a folder that is never written, so no stale
        # byte-code is ever read either. One prefix per version: with Lambda's paths every
        # version's code is /var/task, and their caches must not take turns.
        if self.spec.pycache_dir is None:
            return None
        if not self.spec.cache_bytecode:
            return str(self.spec.pycache_dir / "never-written")
        return str(self.spec.pycache_dir / self.spec.function / self.spec.version)

    def usable(self) -> bool:
        """Alive, and its process has not exited while it sat idle."""
        if not self.alive or self._blank is None or self._blank.proc.poll() is not None:
            return False
        return not self._exited

    def stop(self) -> None:
        """Kill the process tree, close the endpoint and the pipes; safe to call twice, from
        two threads (the pool stops busy environments at shutdown while their invocation
        still waits)."""
        with self._stop_lock:
            if self._blank is not None:
                processes.stop_tree(self._blank.proc)  # the runtime and all its handler started
            if self._endpoint is not None:
                self._api.close(self._endpoint)
            if self._blank is not None:
                self._blank.close_fds()
            self.alive = False
            self._messages.put(Message("exited"))  # wakes an invocation still waiting

    # -- invocation ------------------------------------------------------------------------
    def invoke(
        self,
        request_id: str,
        invoked_arn: str,
        event: Any,
        on_output: Callable[[str], None],
        deadline_ms: int,
        trace_id: str = "",
        client_context: str | None = None,
    ) -> Result:
        deadline = time.monotonic() + (deadline_ms - time.time() * 1000) / 1000
        self.invocations += 1
        self._drain_idle()
        output = _Capped(on_output, self._log_limit, self._init_output)
        self._init_output = 0
        if not self.peak_mb:  # a handler that exits at once leaves nothing to read after it
            self.peak_mb = _rss_mb(self.pid)
        started = time.perf_counter()
        assert self._endpoint is not None
        work = Work(
            request_id, orjson.dumps(event), deadline_ms, invoked_arn, trace_id, client_context
        )
        self._api.submit(self._endpoint, work)
        while True:
            message = self._next_message(deadline)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if message is None:
                return self._timed_out(request_id, elapsed_ms, output)
            if message.kind == "output":
                output(message.text)
            elif message.kind in ("response", "error", "too_large"):
                result = self._finished(message, elapsed_ms)
                return result if result.environment_lost else self._await_next(result, output)
            elif message.kind == "over_memory":
                return self._out_of_memory(request_id, elapsed_ms)
            elif message.kind == "exited":
                self._drain_output(output, 0.05)
                return self._crashed(request_id, elapsed_ms)

    def _await_next(self, result: Result, output: Callable[[str], None]) -> Result:
        """An invocation ends when its runtime asks for the next one (as in Lambda): what the
        process writes until then is this invocation's, and the environment is not handed
        out again before it is ready. A runtime that never asks again is replaced."""
        deadline = time.monotonic() + NEXT_GRACE_S
        while True:
            message = self._next_message(deadline)
            if message is not None and message.kind == "output":
                output(message.text)
                continue
            if message is not None and message.kind == "next":
                return result
            if message is not None and message.kind == "exited":
                self._drain_output(output, 0.05)
            self.stop()
            return dataclasses.replace(result, environment_lost=True)

    def _finished(self, message: Message, elapsed_ms: float) -> Result:
        self._measure_memory(elapsed_ms)
        if message.kind == "response":
            value = runtime_api.decode_json(message.body)
            return Result(
                ok=True, payload=value, duration_ms=elapsed_ms, max_memory_mb=self.peak_mb
            )
        if message.kind == "too_large":
            # The runtime client raises on the 413 and exits: the environment is lost.
            self.stop()
            text = (
                f"Response payload size ({message.size} bytes) exceeded maximum allowed "
                f"payload size ({runtime_api.MAX_PAYLOAD} bytes)."
            )
            return Result.failed(
                {"errorMessage": text, "errorType": TOO_LARGE},
                duration_ms=elapsed_ms,
                max_memory_mb=self.peak_mb,
                environment_lost=True,
            )
        payload = _error_payload(message.body, message.error_type)
        return Result.failed(payload, duration_ms=elapsed_ms, max_memory_mb=self.peak_mb)

    def _timed_out(
        self, request_id: str, elapsed_ms: float, output: Callable[[str], None]
    ) -> Result:
        self.peak_mb = max(self.peak_mb, self._peak_mb())
        self.stop()
        self._flush_output(output)  # its last words, a partial line too, read as it stopped
        text = (
            f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout_s:.2f} seconds"
        )
        return self._lost({"errorType": lambda_errors.TIMED_OUT, "errorMessage": text}, elapsed_ms)

    def _out_of_memory(self, request_id: str, elapsed_ms: float) -> Result:
        self.stop()
        text = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
        payload = {"errorType": lambda_errors.OUT_OF_MEMORY, "errorMessage": text}
        return self._lost(payload, elapsed_ms)

    def _crashed(self, request_id: str, elapsed_ms: float) -> Result:
        payload = self._exit_payload(request_id)
        self.stop()
        return self._lost(payload, elapsed_ms)

    def _lost(self, payload: dict[str, Any], elapsed_ms: float) -> Result:
        """A failure that took the environment with it (it is stopped: the next one is cold)."""
        return Result.failed(
            payload, duration_ms=elapsed_ms, max_memory_mb=self.peak_mb, environment_lost=True
        )

    def _exit_payload(self, request_id: str) -> dict[str, str]:
        code = None
        if self._blank is not None:
            try:
                code = self._blank.proc.wait(timeout=EXIT_GRACE_S)  # it is exiting
            except subprocess.TimeoutExpired:
                self.stop()
                code = self._blank.proc.returncode
        if code is None or code == 0:
            reason = "Runtime exited without providing a reason"
        elif code < 0:
            reason = f"Runtime exited with error: signal: {_signal_name(-code)}"
        else:
            reason = f"Runtime exited with error: exit status {code}"
        prefix = f"RequestId: {request_id} " if request_id else ""
        return {"errorType": lambda_errors.EXIT_ERROR, "errorMessage": f"{prefix}Error: {reason}"}

    # -- messages --------------------------------------------------------------------------
    def _next_message(self, deadline: float) -> Message | None:
        """The next message from the endpoint; `over_memory` when the process is over its
        memory (sampled every MEMORY_SAMPLE_S, messages or not: a handler that prints
        without pause is checked too); `exited` when it is gone; None at the deadline."""
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return None
            if now - self._sampled_at >= MEMORY_SAMPLE_S:
                self._sampled_at = now
                if self._over_memory():
                    return Message("over_memory")
            try:
                message = self._messages.get(timeout=min(remaining, MEMORY_SAMPLE_S))
            except queue.Empty:
                if self._blank is None or self._blank.proc.poll() is not None:
                    self._exited = True  # no pidfd here, or its message is still on its way
                    return Message("exited")
                continue
            if message.kind == "exited":
                self._exited = True
            return message

    def _flush_output(self, output: Callable[[str], None]) -> None:
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                return
            if message.kind == "output":
                output(message.text)

    def _drain_idle(self) -> None:
        """Output written between invocations has no request id: it is logged without one."""
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                return
            if message.kind == "output":
                self._on_idle_output(message.text)
            elif message.kind == "exited":
                self._exited = True

    def _drain_output(self, on_output: Callable[[str], None], wait_s: float) -> None:
        """Output still on its way after a process ended (until its pipes close)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if message.kind == "output":
                on_output(message.text)
            elif message.kind == "exited":
                self._exited = True
                if wait_s < EXIT_GRACE_S:
                    continue
                return

    def _measure_memory(self, elapsed_ms: float) -> None:
        """Update the peak for the REPORT. The kernel's peak (VmHWM) costs ~0.3 ms to read and
        the current size ~0.02 ms, more when the simulator is busy; a run of short invocations
        (whose peak the current size shows) reads it at most every MEMORY_READ_S."""
        now = time.monotonic()
        if elapsed_ms > PEAK_READ_MS:
            self.peak_mb = max(self.peak_mb, self._peak_mb())
        elif now - self._memory_read_at > MEMORY_READ_S or not self.peak_mb:
            self.peak_mb = max(self.peak_mb, _rss_mb(self.pid))
        else:
            return
        self._memory_read_at = now

    def _over_memory(self) -> bool:
        """Sample the process's resident size; True once over the limit."""
        rss_mb = _rss_mb(self.pid)
        self.peak_mb = max(self.peak_mb, rss_mb)
        return rss_mb > self.spec.memory_mb

    def _peak_mb(self) -> int:
        """The process's peak resident size (VmHWM), as Max Memory Used reports it."""
        try:
            with open(f"/proc/{self.pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        return max(1, round(int(line.split()[1]) / 1024))
        except (OSError, ValueError, IndexError):
            pass
        return self.peak_mb

    @property
    def pid(self) -> int | None:
        return self._blank.proc.pid if self._blank is not None else None


class _Capped:
    """Forwards one invocation's output up to the log limit, then says it was cut."""

    def __init__(self, sink: Callable[[str], None], limit: int, used: int = 0) -> None:
        self._sink, self._limit, self._used = sink, limit, used

    @property
    def used(self) -> int:
        return self._used

    def __call__(self, text: str) -> None:
        if self._used >= self._limit:
            return
        self._used += len(text)
        if self._used >= self._limit:
            text = text[: max(0, self._limit - (self._used - len(text)))]
            text += f"\n[s3sim] output of this invocation truncated at {self._limit} bytes"
        self._sink(text)


def launch_blank(runtime: Runtime, api: RuntimeApi) -> Blank:
    """The launcher under the runtime's interpreter, isolated and without `site`: nothing of
    the simulator's environment but PATH and LANG, its output on two pipes of ours, and the
    address of its own endpoint (the runtime client reads it as it loads)."""
    assert runtime.interpreter is not None and runtime.packages is not None
    control_r, control_w = os.pipe()
    out_r, out_w = os.pipe()
    tel_r, tel_w = os.pipe()
    ready_r, ready_w = os.pipe()
    messages: queue.SimpleQueue[Message] = queue.SimpleQueue()
    endpoint = api.open(messages, out_r, tel_r)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{endpoint.port}",
    }
    try:
        proc = processes.spawn(
            [
                runtime.interpreter,
                "-I",
                "-S",
                str(LAUNCHER),
                str(control_r),
                str(runtime.packages),
                str(ready_w),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=out_w,
            pass_fds=(control_r, tel_w, ready_w),
            start_new_session=True,
        )
    except BaseException:
        api.close(endpoint)
        for fd in (control_w, out_r, tel_r, ready_r):
            os.close(fd)
        raise
    finally:
        for fd in (control_r, out_w, tel_w, ready_w):
            os.close(fd)
    api.watch(endpoint, proc.pid)
    return Blank(proc, runtime, api, endpoint, messages, out_r, tel_r, tel_w, control_w, ready_r)


def _write_all(fd: int | None, data: bytes) -> None:
    if fd is None:
        raise OSError("no control descriptor")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _error_payload(body: bytes, error_type: str) -> dict[str, Any]:
    """An error a runtime posted: its JSON body when it is an object, else one built from the
    Lambda-Runtime-Function-Error-Type header, as Lambda does."""
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict):
        return payload
    return {
        "errorType": error_type or "Runtime.Unknown",
        "errorMessage": body.decode("utf-8", "replace"),
    }


def _bootstrap_error(exc: OSError) -> bytes:
    message = f"Couldn't find valid bootstrap(s): [{exc.filename}] ({exc.strerror})"
    return orjson.dumps({"errorType": "Runtime.InvalidEntrypoint", "errorMessage": message})


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
