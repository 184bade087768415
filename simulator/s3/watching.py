"""watchdog observers -> Hints on a queue. The callbacks only hand off; they never raise.

One observer watches everything (one inotify instance): buckets/ and functions/ and
versions/ recursively, and the workspace root (for config.yaml). The traps measured on this
machine (../shared/reference/perf-limits.md) each have an answer here:
- subscribe only to the events needed (`event_filter` narrows the kernel mask);
- the 500 ms hold after a move out of the tree blocks every later event, so it is shortened;
- files in new folders often get no close event: created/modified hints are settled by the
  intake (size and mtime stable), never fired at once;
- an exception in a handler kills the observer thread silently: callbacks catch everything;
- on queue overflow watchdog only logs: a logging handler turns that into an overflow hint.
"""

from __future__ import annotations

import errno
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

MOVE_OUT_HOLD_S = 0.01  # watchdog's default 0.5 s stalls all events; 10 ms still pairs moves


class Hint(NamedTuple):
    """Something may have changed at `path` (and `dest` for moves). Kinds: closed | created |
    modified | deleted | moved | dir_created | dir_deleted | dir_moved | overflow | watch_limit."""

    kind: str
    path: str = ""
    dest: str = ""


_KINDS: dict[type[FileSystemEvent], str] = {
    FileClosedEvent: "closed",
    FileCreatedEvent: "created",
    FileModifiedEvent: "modified",
    FileDeletedEvent: "deleted",
    FileMovedEvent: "moved",
    DirDeletedEvent: "dir_deleted",
    DirMovedEvent: "dir_moved",
    DirCreatedEvent: "dir_created",
}


def has_close_events(polling: bool) -> bool:
    return sys.platform.startswith("linux") and not polling


def event_filter(polling: bool) -> list[type[FileSystemEvent]]:
    wanted: list[type[FileSystemEvent]] = [
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileMovedEvent,
        DirDeletedEvent,
        DirMovedEvent,
    ]
    if not has_close_events(polling):  # no close events: modifications settle instead
        wanted.append(FileModifiedEvent)
    return wanted


class _Handler(FileSystemEventHandler):
    def __init__(self, sink: Callable[[Hint], None]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            kind = _KINDS.get(type(event))
            if kind is not None:
                self._sink(Hint(kind, _text(event.src_path), _text(event.dest_path)))
        except Exception:  # an exception here would kill watchdog's thread silently
            logging.getLogger("s3sim.watching").exception("watch callback failed")


class _OverflowDetector(logging.Handler):
    """watchdog reports a kernel queue overflow only as a log warning; catch it."""

    def __init__(self, sink: Callable[[Hint], None]) -> None:
        super().__init__(logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "overflow" in record.getMessage().lower():
                self._sink(Hint("overflow"))
        except Exception:
            pass


def _text(path: str | bytes) -> str:
    return path.decode(errors="surrogateescape") if isinstance(path, bytes) else path


class Watcher:
    """Owns the observer thread(s) and the overflow detector."""

    _LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")

    def __init__(
        self, workspace: Path, sink: Callable[[Hint], None], polling_interval_s: float | None = None
    ) -> None:
        self._workspace = workspace
        self._sink = sink
        self._polling_interval_s = polling_interval_s  # None: the platform's native observer
        self._observer: BaseObserver | None = None
        self._detector = _OverflowDetector(sink)

    @property
    def polling(self) -> bool:
        return self._polling_interval_s is not None

    def start(self) -> None:
        """Start watching; raises OSError if even the top folders cannot be watched."""
        tune_watchdog()
        for name in self._LOGGERS:
            logging.getLogger(name).addHandler(self._detector)
        polling = self._polling_interval_s is not None
        observer = _new_observer(self._polling_interval_s)
        handler = _Handler(self._sink)
        wanted = event_filter(polling)
        for folder in ("buckets", "functions", "versions"):
            (self._workspace / folder).mkdir(exist_ok=True)
            observer.schedule(
                handler, str(self._workspace / folder), recursive=True, event_filter=wanted
            )
        # The root watch also reports folders appearing: a deleted and re-created buckets/
        # needs a new watch.
        observer.schedule(
            handler, str(self._workspace), recursive=False, event_filter=[*wanted, DirCreatedEvent]
        )
        _report_watch_limit(observer, self._sink)
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        for name in self._LOGGERS:
            logging.getLogger(name).removeHandler(self._detector)


def _new_observer(polling_interval_s: float | None) -> BaseObserver:
    if polling_interval_s is not None:
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=polling_interval_s)
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        # Full events: a move in from outside arrives as a move with an empty source, so it
        # can be fired at once (the file is complete) instead of waiting to settle.
        return InotifyObserver(generate_full_events=True)
    return Observer()


def _report_watch_limit(observer: BaseObserver, sink: Callable[[Hint], None]) -> None:
    """watchdog swallows ENOSPC (watch limit reached) for folders below the top: those folders
    then go unwatched in silence. Wrap the observer's inotify handle so it is reported."""
    inotify_fd = getattr(observer, "_inotify_fd", None)
    if inotify_fd is None:
        return
    add_callback = inotify_fd.add_callback

    def reporting_add_callback(path: bytes, *args: object, **kwargs: object) -> object:
        try:
            return add_callback(path, *args, **kwargs)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE):
                sink(Hint("watch_limit", _text(path), exc.strerror or str(exc)))
            raise

    inotify_fd.add_callback = reporting_add_callback


def tune_watchdog() -> None:
    """The one place that changes watchdog's process-wide state (idempotent):
    - the hold after a move out of the tree (500 ms, blocking every later event) is shortened;
    - watchdog's warning about a benign race when folders appear fast (mkdir -p) is silenced:
      its message embeds every watch, so it grows with the tree, and the duplicate event it
      implies is harmless (the intake dedupes against the object index)."""
    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # not on Linux, or watchdog changed its internals
        return
    InotifyMoveEventGrouper.delay = MOVE_OUT_HOLD_S
