"""`s3sim run` as a separate process, for tests, benchmarks and CI scripts.

Start it on a workspace, wait on events in its JSON-lines log (the same stream `s3sim logs`
reads), and stop it: politely, with `kill -9`, or by pausing it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])  # importable without an install


def _parse_lines(data: bytes) -> list[dict[str, Any]]:
    """JSON lines; a fragment (cut short by a full disk, or still being written) is skipped."""
    events = []
    for line in data.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


class SimulatorProcess:
    def __init__(self, workspace: Path, console: Path | None = None) -> None:
        self.ws = workspace
        self.log_path = workspace / ".s3sim" / "logs" / "events.jsonl"
        self.console = console  # where the console's JSON lines go (default: nowhere)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_ns = 0
        self.ready_s = 0.0  # seconds from start to the event `start` waited for
        self._offset = 0  # events before this byte of the log belong to earlier runs
        self._inode = 0  # ... of the log file with this inode (it may have been rotated since)

    def start(
        self, *args: str, wait_event: str = "simulator.ready", timeout: float = 300
    ) -> SimulatorProcess:
        self._offset = self._log_size()
        self.started_ns = time.monotonic_ns()
        with open(self.console or os.devnull, "ab") as console:
            self.proc = subprocess.Popen(
                self._command("run", "--json", *args),
                stdout=subprocess.DEVNULL,
                stderr=console,
                env=self._env(),
            )
        try:
            self.wait_for(lambda e: e.get("event") == wait_event, timeout=timeout)
        except BaseException:
            self.stop()  # a start that fails leaves nothing running
            raise
        self.ready_s = (time.monotonic_ns() - self.started_ns) / 1e9
        return self

    def run_until_idle(self, timeout: float = 300) -> int:
        """A separate `run --exit-when-idle`: finishes all pending work, returns its exit code."""
        self._offset = self._log_size()
        return subprocess.run(
            self._command("run", "--exit-when-idle"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            env=self._env(),
        ).returncode

    def events(self) -> list[dict[str, Any]]:
        """This run's events so far (a line still being written is left for next time),
        across the rotated files (events.1.jsonl, ...) written since it started."""
        chunks = []
        paths = _oldest_first(self.log_path)
        # The file this run started in is gone (removed with .s3sim/, or rotated out of
        # the kept ones), or there was none: every file there is now is this run's.
        started = self._inode not in {_inode(path) for path in paths}
        for path in paths:
            try:
                with open(path, "rb") as f:
                    if os.fstat(f.fileno()).st_ino == self._inode:
                        started = True
                        f.seek(self._offset)
                    elif not started:
                        continue  # rotated before this run started: earlier runs' events
                    chunks.append(f.read())
            except FileNotFoundError:  # rotated away meanwhile: read again next time
                continue
        data = b"\n".join(chunks)  # files end between lines: no line spans two files
        return _parse_lines(data)

    def console_events(self) -> list[dict[str, Any]]:
        """Every event the console showed (all runs), when started with `console`."""
        return _parse_lines(self.console.read_bytes()) if self.console else []

    def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        count: int = 1,
        timeout: float = 120.0,
        after: int = 0,
    ) -> list[dict[str, Any]]:
        """Poll the log until `count` events match (of this run's events from index `after`
        on); fails fast if the process exited."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events()[after:] if predicate(e)]
            if len(found) >= count:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"s3sim exited with {self.proc.returncode} ({self.ws})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {count} events, saw {len(found)}")
            time.sleep(0.01)

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self, grace_s: float = 60.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace_s`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self) -> None:
        self._signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None, "not started"
        self.proc.send_signal(sig)

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "simulator", "-w", str(self.ws), *args]

    def _env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (_PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path}

    def _log_size(self) -> int:
        try:
            st = self.log_path.stat()
        except FileNotFoundError:
            self._inode = 0
            return 0
        self._inode = st.st_ino
        return st.st_size


def _inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return -1


def _oldest_first(path: Path) -> list[Path]:
    """`events.jsonl` and its rotated files (`events.1.jsonl` is the newest of those)."""
    rotated = []
    number = 1
    while (older := path.with_name(f"{path.stem}.{number}{path.suffix}")).exists():
        rotated.append(older)
        number += 1
    return [*reversed(rotated), path]
