"""The floor: the least a watchdog-based pipeline can do, with no simulator around it.

watchdog observer (close/move events only) -> queue -> one dispatcher thread -> a warm worker
process over a pipe -> the same trivial handler. No journal, no eTag, no routing, no logging.
Run as `python -m benchmarks.floor DIR HANDLER_FILE`; prints "ready" once watching.
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import queue
import sys
import threading
from multiprocessing.connection import Connection

from watchdog.events import FileClosedEvent, FileMovedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver


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
        module.handler({"Records": [{"s3": {"object": {"key": key}}}]}, context)


class _Handler(FileSystemEventHandler):
    def __init__(self, q: queue.SimpleQueue[str], root: str) -> None:
        self._q, self._root = q, root

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = event.dest_path if isinstance(event, FileMovedEvent) else event.src_path
        self._q.put(os.path.relpath(str(path), self._root))


def main(root: str, handler_file: str) -> None:
    import warnings

    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(target=worker, args=(child, handler_file))
    process.start()  # before the observer's threads exist
    q: queue.SimpleQueue[str] = queue.SimpleQueue()

    def dispatch() -> None:
        while True:
            parent.send(q.get())

    threading.Thread(target=dispatch, daemon=True).start()
    observer = InotifyObserver()
    observer.schedule(
        _Handler(q, root), root, recursive=True, event_filter=[FileClosedEvent, FileMovedEvent]
    )
    observer.start()
    print("ready", flush=True)
    sys.stdin.read()  # runs until the benchmark closes our stdin
    observer.stop()
    parent.send(None)
    process.join()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
