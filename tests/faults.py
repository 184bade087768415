"""Helpers for the fault-injection suite: the simulator as a separate process."""

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

ROOT = Path(__file__).parents[1]

# Appends one line per invocation: cheap enough for bursts of thousands.
COUNTING_HANDLER = '''
import os, random
from urllib.parse import unquote_plus
LOG = os.path.join(os.environ["OUT"], "calls.log")
FAIL = float(os.environ.get("FAIL_FRACTION", "0"))

def handler(event, context):
    key = unquote_plus(event["Records"][0]["s3"]["object"]["key"])
    failed = random.random() < FAIL
    line = f"{context.aws_request_id}\\t{key}\\t{'fail' if failed else 'ok'}\\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line.encode())
    os.close(fd)
    if failed:
        raise RuntimeError("injected failure")
    return key
'''


class Simulator:
    """`s3sim run` in its own process; waits on events in its JSON-lines log file."""

    def __init__(self, ws: Path) -> None:
        self.ws = ws
        self.log_path = ws / ".s3sim" / "logs" / "events.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self, *args: str) -> "Simulator":
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "-w", str(self.ws), "run", "--json", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.wait_for(lambda e: e.get("event") == "watch.rescanned")
        return self

    def events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        return [json.loads(line) for line in data.splitlines() if line.strip().endswith(b"}")]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1,
                 timeout: float = 120.0) -> list[dict[str, Any]]:
        """Poll the log file (the signal) until `count` events match."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events() if predicate(e)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {count} events, got {len(found)}")
            if self.proc is not None and self.proc.poll() is not None and not found:
                raise AssertionError(f"simulator exited with {self.proc.returncode}")
            time.sleep(0.02)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def run_until_idle(self, timeout: float = 300) -> int:
        """A separate `run --exit-when-idle`: finishes all pending work, returns its exit code."""
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        result = subprocess.run(
            [sys.executable, "-m", "simulator", "-w", str(self.ws), "run", "--exit-when-idle"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        return result.returncode

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def calls(out: Path) -> list[tuple[str, str, str]]:
    path = out / "calls.log"
    if not path.exists():
        return []
    return [tuple(line.split("\t")) for line in path.read_text().splitlines()]  # type: ignore[misc]


def journal_rows(ws: Path) -> list[tuple[str, str, str, int]]:
    import sqlite3

    db = sqlite3.connect(ws / ".s3sim" / "journal.sqlite3")
    try:
        return [(r, k, s, a) for r, k, s, a in db.execute(
            "SELECT request_id, key, state, attempts FROM deliveries")]
    finally:
        db.close()


def write_files(folder: Path, count: int, prefix: str = "f", start: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(start, start + count):
        name = f"{prefix}{i:05d}.dat"
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, b"x" * 64)
        os.close(fd)
        names.append(name)
    return names
