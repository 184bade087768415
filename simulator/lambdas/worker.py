"""The Lambda runtime inside one execution environment (a separate Python process).

Run as a script (`python -I worker.py READ_FD WRITE_FD`), so it imports nothing from the
simulator and the handler's interpreter holds nothing but the standard library and its own code.
It mirrors AWS's Python runtime interface client: handler resolution and its error types, the
context object, the error payload, and the `logging` format. Frames on the pipes are a 4-byte
big-endian length followed by UTF-8 JSON.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import io
import json
import logging
import marshal
import os
import resource
import struct
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

_HEADER = struct.Struct(">I")
_LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
_CHECKED_HASH = (0b11).to_bytes(4, "little")  # pyc flags: hash-based, check the source


class Channel:
    """Frame I/O with the simulator; writes are serialised because handler threads may print."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._rfile = os.fdopen(read_fd, "rb", buffering=0)
        self._wfd = write_fd
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, default=str).encode()
        with self._lock:
            _write_all(self._wfd, _HEADER.pack(len(body)) + body)

    def receive(self) -> dict[str, Any] | None:
        header = _read_exact(self._rfile, _HEADER.size)
        if header is None:
            return None
        body = _read_exact(self._rfile, _HEADER.unpack(header)[0])
        return None if body is None else json.loads(body)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(rfile: Any, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = rfile.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class Output:
    """sys.stdout / sys.stderr replacement: each line becomes a `log` frame, capped per request."""

    def __init__(self, channel: Channel, state: State) -> None:
        self._channel, self._state = channel, state
        self._buffer = ""

    def write(self, text: str) -> int:
        if self._state.log_bytes >= self._state.log_limit:
            return len(text)  # over the cap: dropped here, never buffered
        self._buffer += text
        if "\n" in self._buffer:
            complete, self._buffer = self._buffer.rsplit("\n", 1)
            self._emit(complete)
        if len(self._buffer) > 65536:  # a runaway line without newlines
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            text, self._buffer = self._buffer, ""
            self._emit(text)

    def _emit(self, text: str) -> None:
        state = self._state
        remaining = state.log_limit - state.log_bytes
        if remaining <= 0:
            return
        state.log_bytes += len(text)
        if state.log_bytes >= state.log_limit:
            text = text[:remaining] + (
                f"\n[s3sim] output of this invocation truncated at {state.log_limit} bytes"
            )
        self._channel.send({"type": "log", "data": text})

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise io.UnsupportedOperation("handler output is captured by s3sim")


class State:
    request_id = ""
    log_bytes = 0
    log_limit = 256 * 1024


class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __init__(self) -> None:
        self.cognito_identity_id: str | None = None
        self.cognito_identity_pool_id: str | None = None


class LambdaContext:
    """The context object of the Python runtime (awslambdaric lambda_context.py)."""

    def __init__(self, request_id: str, invoked_arn: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.identity = CognitoIdentity()
        self.client_context = None  # always None for asynchronous (S3) invocations
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg: str) -> None:
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},identity={self.identity},"
            f"tenant_id={self.tenant_id}])"
        )


class _RequestIdFilter(logging.Filter):
    def __init__(self, state: State) -> None:
        super().__init__()
        self._state = state

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self._state.request_id
        return True


def _install_logging(state: State) -> None:
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(_LOG_FORMAT, "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter(state))
    logging.getLogger().addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    if level:
        logging.getLogger().setLevel(level.upper())


class InitError(Exception):
    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.payload: dict[str, Any] = {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": "",
            "stackTrace": stack or [],
        }


def load_handler(handler: str) -> Callable[..., Any]:
    """Resolve `module.function` as the runtime does (awslambdaric bootstrap `_get_handler`)."""
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as exc:
        raise InitError("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise InitError(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {modname} as a handler module",
        )
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as exc:
        raise InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{modname}': {exc}"
        ) from None
    except SyntaxError as exc:
        raise InitError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {exc}", _stack(exc)
        ) from None
    except Exception as exc:
        raise InitError(type(exc).__name__, str(exc), _stack(exc)) from None
    function = getattr(module, fname, None)
    if function is None:
        raise InitError(
            "Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'"
        )
    return function  # type: ignore[no-any-return]


def _stack(exc: BaseException) -> list[str]:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop this runtime's own frames, as the Lambda runtime strips bootstrap.py's.
    user = [f for f in frames if f.filename != __file__ and "importlib" not in f.filename]
    return traceback.format_list(user)


def error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": _stack(exc),
    }


def _log_unhandled(payload: dict[str, Any]) -> None:
    lines = "".join(payload.get("stackTrace") or [])
    text = f"[ERROR] {payload['errorType']}: {payload['errorMessage']}"
    if lines:
        text += "\nTraceback (most recent call last):\n" + lines.rstrip("\n")
    sys.stdout.write(text + "\n")


def _max_rss_mb() -> int:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(1, round(kib / 1024)) if sys.platform != "darwin" else max(1, round(kib / 1048576))


def invoke(handler: Callable[..., Any], message: dict[str, Any], state: State) -> dict[str, Any]:
    state.request_id, state.log_bytes = message["request_id"], 0
    context = LambdaContext(message["request_id"], message["invoked_arn"], message["deadline_ms"])
    started = time.perf_counter()
    try:
        result = handler(message["event"], context)
        try:
            payload, ok, error_type = json.loads(json.dumps(result)), True, None
        except (TypeError, ValueError) as exc:
            payload = {
                "errorMessage": f"Unable to marshal response: {exc}",
                "errorType": "Runtime.MarshalError",
                "requestId": state.request_id,
                "stackTrace": [],
            }
            ok, error_type = False, "Runtime.MarshalError"
    except Exception as exc:  # the handler is foreign code: every failure becomes a payload
        payload, ok, error_type = error_payload(exc, state.request_id), False, type(exc).__name__
        _log_unhandled(payload)
    duration_ms = (time.perf_counter() - started) * 1000
    sys.stdout.flush()
    sys.stderr.flush()
    return {
        "type": "result",
        "ok": ok,
        "payload": payload,
        "error_type": error_type,
        "duration_ms": duration_ms,
        "max_memory_mb": _max_rss_mb(),
    }


class CheckedSourceLoader(importlib.machinery.SourceFileLoader):
    """Runs byte-code only if it was compiled from the source as read now: a checked-hash pyc
    whose hash matches. The default loader also trusts a pyc whose (mtime, size) stamp matches
    the source, which a stale or planted file can match, and unchecked-hash pycs without
    looking; both are compiled over here, never run."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        source = self.get_data(path)
        source_hash = importlib.util.source_hash(source)
        cache = _cache_path(path)
        code = _cached_code(cache, source_hash) if cache else None
        if code is None:
            code = self.source_to_code(source, path)
            if cache and not sys.dont_write_bytecode:
                _write_pyc(cache, source_hash, code)
        return code


def _cache_path(source_path: str) -> str | None:
    try:
        return importlib.util.cache_from_source(source_path)  # honours sys.pycache_prefix
    except NotImplementedError:
        return None


def _cached_code(cache: str, source_hash: bytes) -> types.CodeType | None:
    try:
        with open(cache, "rb") as f:
            data = f.read()
    except OSError:
        return None
    header = importlib.util.MAGIC_NUMBER + _CHECKED_HASH + source_hash
    if not data.startswith(header):
        return None
    try:
        code = marshal.loads(data[len(header) :])
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def _write_pyc(cache: str, source_hash: bytes, code: types.CodeType) -> None:
    data = importlib.util.MAGIC_NUMBER + _CHECKED_HASH + source_hash + marshal.dumps(code)
    tmp = f"{cache}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, cache)  # whole or absent: another environment may read it now
    except OSError:
        pass  # a cache that cannot be written only costs a compile


def _install_checked_imports(code_dir: str) -> None:
    """Source imports through CheckedSourceLoader everywhere; in the function's code folder no
    sourceless .pyc is imported at all (publishing never copies one, so none is the
    published source, and the code hash skips them)."""
    machinery = importlib.machinery
    extensions = (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES)
    sources = (CheckedSourceLoader, machinery.SOURCE_SUFFIXES)
    sourceless = (machinery.SourcelessFileLoader, machinery.BYTECODE_SUFFIXES)
    root = os.path.join(os.path.realpath(code_dir), "")

    def hook(path: str) -> machinery.FileFinder:
        if not os.path.isdir(path or "."):
            raise ImportError("only directories are supported", path=path)
        inside = os.path.join(os.path.realpath(path or "."), "").startswith(root)
        return machinery.FileFinder(path, extensions, sources, *(() if inside else (sourceless,)))

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()


def _become(init: dict[str, Any]) -> None:
    """Turn this blank runtime (started ahead of need) into the function's environment."""
    os.environ.clear()
    os.environ.update(init["env"])
    time.tzset()
    os.chdir(init["code_dir"])
    fd = os.open(init["output"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)  # fd-level output (C code, crash messages) goes to the slot's file
    os.dup2(fd, 2)
    os.close(fd)
    sys.pycache_prefix = init.get("pycache_prefix")
    sys.dont_write_bytecode = not init.get("cache_bytecode", True)
    _install_checked_imports(init["code_dir"])


def _become_subreaper() -> None:
    """Adopt the orphans of whatever the handler starts (Linux), so that a setsid()'d
    grandchild stays in this process's subtree, where stopping the environment finds it.
    (simulator/processes.py has the same call; this script imports nothing of the package.)"""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def main(argv: list[str]) -> int:
    _become_subreaper()  # before init: a spare pays for it while it waits, not a cold start
    channel = Channel(int(argv[1]), int(argv[2]))
    state = State()
    init = channel.receive()
    if init is None:
        return 0
    state.log_limit = int(init.get("log_limit", state.log_limit))
    _become(init)
    sys.stdout = sys.stderr = Output(channel, state)
    _install_logging(state)
    sys.path.insert(0, init["code_dir"])
    started = time.perf_counter()
    try:
        handler = load_handler(init["handler"])
    except InitError as exc:
        _log_unhandled(exc.payload)
        channel.send(
            {
                "type": "init_error",
                "payload": exc.payload,
                "init_ms": (time.perf_counter() - started) * 1000,
            }
        )
        return 1
    channel.send({"type": "ready", "init_ms": (time.perf_counter() - started) * 1000})
    while (message := channel.receive()) is not None:
        channel.send(invoke(handler, message, state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
