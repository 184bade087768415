"""The log stream: one structlog pipeline, two renderings.

Every line is an event with a stable dotted name and fields. The JSON-lines file under
`.s3sim/logs/` keeps all of them (for `s3sim logs -f` and machines); the console shows them
for people, with CloudWatch-like START / END / REPORT lines for invocations.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog


class Console(Protocol):
    """Where people read the stream: a terminal, a file, or a test's stand-in."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_PLAIN_KEYS = ("timestamp", "level", "event")


class Sinks:
    """The last processor: writes each event to the JSON file and the console, in order.

    It never raises: a full disk or a closed console must not kill the thread that logged
    (it would take the scheduler or the intake with it). Lines that could not be written
    are counted, and the first line that can be written again is preceded by a
    `log.lines_dropped` event saying how many were lost and why.
    """

    def __init__(self, json_file: int | None, console: Console | None, console_json: bool) -> None:
        self._json, self._console, self._console_json = json_file, console, console_json
        self._lock = threading.Lock()
        self._dropped = 0
        self._drop_reason = ""
        self._torn = False

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> str:
        try:
            line = orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # a lone surrogate somewhere (orjson insists on valid UTF-8)
            line = (json.dumps(event, default=str) + "\n").encode()
        with self._lock:
            if self._json is not None:
                self._write_json(line)
            if self._console is not None:
                try:
                    self._console.write(
                        line.decode() if self._console_json else render(event) + "\n"
                    )
                    self._console.flush()
                except (OSError, ValueError):  # a closed or broken console: keep the file
                    pass
        return ""

    def _write_json(self, line: bytes) -> None:
        try:
            if self._torn:  # end the fragment a full disk cut short, so readers skip it
                self._append(b"\n")
                self._torn = False
            if self._dropped:
                self._append(self._dropped_line())
                self._dropped = 0
            self._append(line)
        except OSError as exc:
            self._dropped += 1
            self._drop_reason = exc.strerror or str(exc)

    def _append(self, data: bytes) -> None:
        """One unbuffered append, so followers see whole lines; a short write (the disk
        filled mid-line) leaves a fragment that the next write terminates."""
        assert self._json is not None
        written = os.write(self._json, data)
        if written < len(data):
            self._torn = written > 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def _dropped_line(self) -> bytes:
        event = _timestamp(
            None,
            "",
            {
                "event": "log.lines_dropped",
                "level": "warning",
                "count": self._dropped,
                "reason": self._drop_reason,
            },
        )
        return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)


class Repeats:
    """Says whether a failure that keeps happening (a full disk, once a second) is worth a
    line: the first time, when its text changes, then every `every`-th time."""

    def __init__(self, every: int = 30) -> None:
        self._every, self._last, self._count = every, "", 0

    def worth_logging(self, text: str) -> bool:
        self._count = self._count + 1 if text == self._last else 1
        self._last = text
        return self._count == 1 or self._count % self._every == 0

    @property
    def count(self) -> int:
        return self._count

    def reset(self) -> None:
        self._last, self._count = "", 0


def configure(
    json_path: Path | None, console: Console | None, console_json: bool = False, level: str = "info"
) -> None:
    json_file = None
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_file = os.open(json_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    _close_previous(json_file)
    if console is not None and _is_devnull(console):
        console = None  # nobody reads it: do not render lines for it
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _timestamp,
            structlog.processors.format_exc_info,
            Sinks(json_file, console, console_json),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )


_OPEN: list[int] = []  # the JSON file descriptor of the configuration in force


def _close_previous(json_file: int | None) -> None:
    """Each configure replaces the sinks; the old file descriptor is closed, not leaked."""
    for fd in _OPEN:
        try:
            os.close(fd)
        except OSError:
            pass
    _OPEN[:] = [] if json_file is None else [json_file]


def close() -> None:
    """Close the JSON file of the configuration in force (for embedders and tests)."""
    _close_previous(None)


def _is_devnull(stream: Console) -> bool:
    try:
        fileno = getattr(stream, "fileno", None)
        if fileno is None:
            return False
        return os.path.samestat(os.fstat(fileno()), os.stat(os.devnull))
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


_SECOND = [-1, ""]  # the last whole second formatted, reused for every line within it


def _timestamp(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """ISO-8601 UTC with microseconds, like structlog's TimeStamper, formatted cheaply."""
    now = time.time()
    second = int(now)
    if second != _SECOND[0]:
        _SECOND[0], _SECOND[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    event["timestamp"] = f"{_SECOND[1]}.{int((now - second) * 1e6):06d}Z"
    return event


def render(event: MutableMapping[str, Any]) -> str:
    """A readable line; invocations look like CloudWatch's platform lines."""
    name = str(event.get("event", ""))
    stamp = str(event.get("timestamp", ""))[11:23]
    tag = f"[{event.get('function', '?')}:{event.get('version', '?')}]"
    rid = event.get("request_id", "")
    if name == "invoke.init_start":
        return (
            f"{stamp} {tag} INIT_START Runtime Version: {event.get('runtime')}"
            f"\tRuntime Version ARN: {event.get('runtime_arn')}"
        )
    if name == "invoke.start":
        return f"{stamp} {tag} START RequestId: {rid} Version: {event.get('version')}"
    if name == "invoke.report":
        return f"{stamp} {tag} END RequestId: {rid}\n{stamp} {tag} {report_line(event)}"
    if name == "function.log":  # a multi-line record (a traceback) keeps its lines
        lines = str(event.get("message", "")).split("\n")
        return "\n".join(f"{stamp} {tag} {printable(line)}" for line in lines)
    level = str(event.get("level", "info")).upper()
    fields = " ".join(
        f"{k}={_value(v)}"
        for k, v in event.items()
        if k not in _PLAIN_KEYS and k not in ("changes", "problems", "exception")
    )
    lines = [f"{stamp} {level:<7} {name:<20} {fields}".rstrip()]
    lines += [f"    {c}" for c in event.get("changes", []) + event.get("problems", [])]
    if "exception" in event:
        lines.append(str(event["exception"]))
    return "\n".join(lines)


def report_line(event: MutableMapping[str, Any]) -> str:
    line = (
        f"REPORT RequestId: {event.get('request_id', '')}\t"
        f"Duration: {float(event.get('duration_ms', 0)):.2f} ms\t"
        f"Billed Duration: {event.get('billed_ms')} ms\t"
        f"Memory Size: {event.get('memory_mb')} MB\t"
        f"Max Memory Used: {event.get('max_memory_mb')} MB\t"
    )
    if event.get("init_ms") is not None:
        line += f"Init Duration: {float(event['init_ms']):.2f} ms\t"
    return line


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if (" " in text or not text) and isinstance(value, str):
        text = json.dumps(text, ensure_ascii=False)
    return printable(text)


# What a terminal would act on instead of showing: C0 and C1 controls (ESC starts the ANSI
# sequences that move the cursor or retitle the window), DEL, bidirectional overrides (text
# that reads differently than it is), line separators, and lone surrogates (file-name bytes
# that are not UTF-8). A file name must not be able to rewrite the user's terminal.
_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def printable(text: str) -> str:
    """`text` with everything a terminal would interpret escaped (\\x1b, \\u202e, ...);
    other characters, non-ASCII letters included, are shown as they are."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def read_events(
    path: Path, follow: bool, stop: threading.Event | None = None
) -> Iterator[dict[str, Any]]:
    """Events from the JSON-lines file; with `follow`, keeps reading as it grows."""
    with open(path, encoding="utf-8") as f:
        partial = ""
        while True:
            chunk = f.readline()
            if chunk:
                partial += chunk
                if partial.endswith("\n"):
                    try:
                        yield json.loads(partial)
                    except json.JSONDecodeError:
                        pass
                    partial = ""
                continue
            if not follow or (stop is not None and stop.is_set()):
                return
            time.sleep(0.1)  # polling a file for `logs -f`; no test waits on this
