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
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol

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
    `log.lines_dropped` event saying how many were lost and why. The JSON file is rotated
    once it reaches the size set by `set_rotation` (`events.jsonl` -> `events.1.jsonl`).
    """

    def __init__(
        self,
        json_path: Path | None,
        console: Console | None,
        console_json: bool,
        verbose: bool = False,
    ) -> None:
        self._path, self._console, self._console_json = json_path, console, console_json
        self._verbose = verbose
        self.terminal = console is not None and not console_json and _is_terminal(console)
        self._progress_shown = False  # a progress line is on the terminal's last line
        self._json: int | None = None
        self._size = 0
        self._lock = threading.Lock()
        self._dropped = 0
        self._drop_reason = ""
        self._torn = False
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        assert self._path is not None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._json = os.open(self._path, flags, 0o644)
        self._size = os.fstat(self._json).st_size

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._json is not None:
            try:
                os.close(self._json)
            except OSError:
                pass
            self._json = None

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> str:
        try:
            line = orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # a lone surrogate somewhere (orjson insists on valid UTF-8)
            line = (json.dumps(event, default=str) + "\n").encode()
        with self._lock:
            if self._path is not None:
                self._write_json(line)
            if self._console is not None:
                try:
                    if self._progress_shown:  # the event's line replaces it
                        self._console.write("\r\x1b[K")
                        self._progress_shown = False
                    self._console.write(
                        line.decode() if self._console_json else render(event, self._verbose) + "\n"
                    )
                    self._console.flush()
                except (OSError, ValueError):  # a closed or broken console: keep the file
                    pass
        return ""

    def show_progress(self, text: str | None) -> None:
        """Draw (None: clear) the one progress line at the bottom of a terminal."""
        if not self.terminal or self._console is None:
            return
        with self._lock:
            try:
                self._console.write("\r\x1b[K" + (printable(text) if text else ""))
                self._console.flush()
            except (OSError, ValueError):
                pass
            self._progress_shown = bool(text)

    def _write_json(self, line: bytes) -> None:
        try:
            if self._json is None:  # a rotation could not open the new file: try again
                self._open()
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
            return
        if self._size >= _ROTATION[0]:
            try:
                self._rotate()
            except OSError:  # the line is written; the rotation is tried again next line
                pass

    def _rotate(self) -> None:
        """Shift `events.N.jsonl` up by one (the oldest beyond the kept number goes), then
        start a new file. Followers notice the new file by its inode (see `read_events`)."""
        assert self._path is not None
        rotated = rotated_files(self._path)
        keep = _ROTATION[1]
        for number in range(len(rotated), 0, -1):
            old = _numbered(self._path, number)
            if number >= keep:
                old.unlink(missing_ok=True)
            else:
                old.replace(_numbered(self._path, number + 1))
        self._path.replace(_numbered(self._path, 1))
        self._close()
        self._open()

    def _append(self, data: bytes) -> None:
        """One unbuffered append, so followers see whole lines; a short write (the disk
        filled mid-line) leaves a fragment that the next write terminates."""
        assert self._json is not None
        written = os.write(self._json, data)
        self._size += written
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


# [size at which the JSON file rotates, rotated files kept]; set from config.yaml
_ROTATION = [10 * 1024 * 1024, 5]


def set_rotation(max_bytes: int, keep: int) -> None:
    """The rotation settings in force (config.yaml's `log_rotate_bytes`, `log_keep`)."""
    _ROTATION[:] = [max_bytes, keep]


def _numbered(path: Path, number: int) -> Path:
    return path.with_name(f"{path.stem}.{number}{path.suffix}")


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of `path` that exist, newest first (`events.1.jsonl`, ...)."""
    found = []
    number = 1
    while _numbered(path, number).exists():
        found.append(_numbered(path, number))
        number += 1
    return found


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
    json_path: Path | None,
    console: Console | None,
    console_json: bool = False,
    level: str = "info",
    verbose: bool = False,
) -> None:
    if console is not None and _is_devnull(console):
        console = None  # nobody reads it: do not render lines for it
    sinks = Sinks(json_path, console, console_json, verbose)
    _close_previous(sinks)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _timestamp,
            structlog.processors.format_exc_info,
            sinks,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )


_OPEN: list[Sinks] = []  # the sinks of the configuration in force


def _close_previous(sinks: Sinks | None) -> None:
    """Each configure replaces the sinks; the old file descriptor is closed, not leaked."""
    for old in _OPEN:
        old.close()
    _OPEN[:] = [] if sinks is None else [sinks]


def close() -> None:
    """Close the JSON file of the configuration in force (for embedders and tests)."""
    _close_previous(None)


def _is_terminal(stream: Console) -> bool:
    try:
        isatty = getattr(stream, "isatty", None)
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):
        return False


class Progress:
    """A progress line for long work (a scan of many objects, a replay of many dead
    letters), on a terminal only: `what: 12,000 of 100,000 objects, 8,000/s, 11 s left`.
    It appears once the work has run for `delay_s` (short work shows none), is redrawn at
    most every `every_s`, and is cleared by `close`; the summary is the caller's event."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        unit: str = "objects",
        delay_s: float = 1.0,
        every_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.count = 0
        self._clock, self._every_s = clock, every_s
        self._started = clock()
        self._next = self._started + delay_s
        self._sinks = _OPEN[0] if _OPEN and _OPEN[0].terminal else None
        self._shown = False

    def advance(self, count: int = 1) -> None:
        self.count += count
        if self._sinks is None:
            return
        now = self._clock()
        if now >= self._next:
            self._next = now + self._every_s
            self._sinks.show_progress(self.line(now))
            self._shown = True

    def line(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = self.count / elapsed
        done = f"{self.count:,}" + (f" of {self.total:,}" if self.total else "")
        text = f"{self.what}: {done} {self.unit}, {rate:,.0f}/s"
        if self.total and rate > 0 and self.count < self.total:
            text += f", {math.ceil((self.total - self.count) / rate):,} s left"
        return text

    def rate(self) -> float:
        return self.count / max(self._clock() - self._started, 1e-9)

    def close(self) -> None:
        if self._sinks is not None and self._shown:
            self._sinks.show_progress(None)
            self._shown = False


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


def render(event: MutableMapping[str, Any], verbose: bool = False) -> str:
    """A readable line; invocations look like CloudWatch's platform lines. Each line of an
    invocation carries the first 8 characters of its request id (`[fn:1 08cb696c]`), so
    overlapping invocations can be told apart. Without `verbose`, lines lead with what a
    person looks for (`alias.resolved thumbnailer:prod -> 4`); the ids stay in the JSON file."""
    name = str(event.get("event", ""))
    stamp = str(event.get("timestamp", ""))[11:23]
    rid = str(event.get("request_id", ""))
    short = f" {rid[:8]}" if rid else ""
    tag = f"[{event.get('function', '?')}:{event.get('version', '?')}{short}]"
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
    head = f"{stamp} {level:<7} {name:<20}"
    if name in _BRIEF and not verbose:
        return f"{head} {printable(_BRIEF[name](event))}".rstrip()
    fields = " ".join(
        f"{k}={_value(v)}"
        for k, v in event.items()
        if k not in _PLAIN_KEYS and k not in ("changes", "problems", "exception")
    )
    lines = [f"{head} {fields}".rstrip()]
    lines += [f"    {c}" for c in event.get("changes", []) + event.get("problems", [])]
    if "exception" in event:
        lines.append(str(event["exception"]))
    return "\n".join(lines)


def _alias_resolved(event: Mapping[str, Any]) -> str:
    rid = str(event.get("request_id", ""))
    return (
        f"{event.get('function', '?')}:{event.get('alias', '?')} -> {event.get('version', '?')}"
        + (f"  [{rid[:8]}]" if rid else "")
    )


# Events whose console line is a sentence rather than every field (`--verbose` shows all).
_BRIEF: dict[str, Callable[[Mapping[str, Any]], str]] = {"alias.resolved": _alias_resolved}


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


def log_files(path: Path) -> list[Path]:
    """The JSON log and its rotated files, oldest first."""
    return [*reversed(rotated_files(path)), *([path] if path.exists() else [])]


def read_events(
    path: Path, follow: bool, stop: threading.Event | None = None
) -> Iterator[dict[str, Any]]:
    """Every event of the log, across its rotated files; with `follow`, keeps reading as
    it grows (and into the new file after a rotation)."""
    files = log_files(path)
    for older in files[:-1]:
        with open(older, "rb") as f:
            yield from _parse(f.read().splitlines())
    with open(path, "rb") as current:
        yield from _follow(path, current, follow, stop)


def tail_events(
    path: Path,
    count: int | None,
    wanted: Callable[[Mapping[str, Any]], bool],
    follow: bool,
    stop: threading.Event | None = None,
) -> Iterator[dict[str, Any]]:
    """The last `count` events that are `wanted` (None: all of them, oldest first), then
    with `follow` every later event as it is written, like `tail -n COUNT -f`."""
    if count is None:
        yield from (e for e in read_events(path, follow, stop) if wanted(e))
        return
    with open(path, "rb") as current:
        end = os.fstat(current.fileno()).st_size  # later lines are followed, not tailed
        last: list[dict[str, Any]] = []
        for older, limit in [(path, end), *((p, None) for p in rotated_files(path))]:
            if len(last) >= count:
                break
            for event in _parse(_reverse_lines(older, limit)):
                if len(last) >= count:
                    break
                if wanted(event):
                    last.append(event)
        yield from reversed(last)
        if follow:
            current.seek(end)
            yield from (e for e in _follow(path, current, True, stop) if wanted(e))


def _parse(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            event = orjson.loads(line)
        except ValueError:
            try:  # a lone surrogate (a file name's non-UTF-8 byte), which orjson refuses
                event = json.loads(line)
            except ValueError:  # a fragment a full disk cut short
                continue
        if isinstance(event, dict):
            yield event


def _reverse_lines(path: Path, limit: int | None, block: int = 1 << 16) -> Iterator[bytes]:
    """The whole lines of `path` before byte `limit`, last first, read in blocks from the end."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:  # rotated away meanwhile
        return
    with f:
        position = os.fstat(f.fileno()).st_size if limit is None else limit
        rest = b""
        while position > 0:
            size = min(block, position)
            position -= size
            f.seek(position)
            lines = (f.read(size) + rest).split(b"\n")
            rest = lines[0]
            yield from (line for line in reversed(lines[1:]) if line)
        if rest:
            yield rest


def _follow(
    path: Path, f: BinaryIO, follow: bool, stop: threading.Event | None
) -> Iterator[dict[str, Any]]:
    """Lines of the open file from where it stands; at its end, with `follow`, waits for
    more, and moves on to the file now at `path` once the open one has been rotated away."""
    partial = b""
    try:
        while True:
            chunk = f.readline()
            if chunk:
                partial += chunk
                if partial.endswith(b"\n"):
                    yield from _parse([partial])
                    partial = b""
                continue
            if not follow or (stop is not None and stop.is_set()):
                return
            if _rotated(path, f):
                rest = f.read()  # written before the rotation, after the last read
                yield from _parse((partial + rest).splitlines())
                f.close()
                f = open(path, "rb")
                partial = b""
                continue
            time.sleep(0.1)  # polling a file for `logs -f`; no test waits on this
    finally:
        f.close()


def _rotated(path: Path, f: BinaryIO) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:  # between the rename and the new file: not yet
        return False


LEVELS = ("debug", "info", "warning", "error", "critical")


def parse_since(text: str, now_s: float) -> str:
    """`--since` as the ISO timestamp the log's own compare against: `90s`, `10m`, `2h`,
    `1d` before now, or a timestamp (`2026-11-28T10:15`, UTC unless it says otherwise)."""
    import datetime as dt

    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
        at = dt.datetime.fromtimestamp(now_s - seconds, dt.UTC)
    else:
        try:
            at = dt.datetime.fromisoformat(text.strip().replace(" ", "T"))
        except ValueError:
            raise ValueError(
                f"--since takes a duration (30s, 10m, 2h, 1d) or a timestamp "
                f"(2026-11-28T10:15:00), got {text!r}"
            ) from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
