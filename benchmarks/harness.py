"""Workspaces, the simulator as a separate process, and timing helpers for the benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).parents[1]
ARN = "arn:aws:lambda:us-east-1:123456789012:function"

# Records its entry time first thing, on the system-wide monotonic clock the writer also uses.
HANDLER = '''
import os, time
from urllib.parse import unquote_plus
OUT = os.environ["OUT"]
SLEEP_S = float(os.environ.get("SLEEP_S", "0"))
BURN_S = float(os.environ.get("BURN_S", "0"))

def handler(event, context):
    entered = time.monotonic_ns()
    key = unquote_plus(event["Records"][0]["s3"]["object"]["key"])
    line = f"{key}\\t{entered}\\t{context.function_version}\\n".encode()
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line)
    os.close(fd)
    if SLEEP_S:
        time.sleep(SLEEP_S)
    if BURN_S:
        end = time.process_time() + BURN_S
        while time.process_time() < end:
            pass
    return key
'''


def scratch_root() -> Path:
    """tmpfs when the machine has one: the writer then outpaces the watcher (the hard case)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="s3sim-bench-", dir=base))


def make_workspace(root: Path, *, functions: int = 1, rules: int = 1, concurrency: int = 2,
                   env: dict[str, str] | None = None) -> Path:
    ws = root / "ws"
    out = root / "entries.tsv"
    fns: dict[str, Any] = {}
    for i in range(functions):
        name = f"fn{i}"
        (ws / "functions" / name).mkdir(parents=True)
        (ws / "functions" / name / "handler.py").write_text(HANDLER)
        fns[name] = {"handler": "handler.handler", "timeout": 30, "retries": 0,
                     "environment": {"OUT": str(out), **(env or {})},
                     "aliases": {"live": "$LATEST"}}
    notes = [{"id": f"decoy{j}", "events": ["s3:ObjectCreated:*"], "prefix": f"decoy{j}/",
              "function": f"{ARN}:fn0:live"} for j in range(rules - 1)]
    if functions == 1:  # with decoys, a prefix of its own (S3 rejects overlapping rules)
        notes.append({"id": "all", "events": ["s3:ObjectCreated:*"], "function": f"{ARN}:fn0:live",
                      **({"prefix": "burst/"} if rules > 1 else {})})
    else:
        notes += [{"id": f"p{i}", "events": ["s3:ObjectCreated:*"], "prefix": f"p{i}/",
                   "function": f"{ARN}:fn{i}:live"} for i in range(functions)]
    config = {"region": "us-east-1", "account": "123456789012",
              "simulator": {"concurrency": concurrency, "settle_ms": 20},
              "functions": fns, "buckets": {"bench": {"notifications": notes}}}
    (ws / "buckets" / "bench").mkdir(parents=True)
    (ws / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return ws


class Simulator:
    def __init__(self, ws: Path) -> None:
        self.ws = ws
        self.log_path = ws / ".s3sim" / "logs" / "events.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self.started_ns = 0

    def start(self, wait_event: str = "watch.rescanned", timeout: float = 300) -> float:
        """Start `s3sim run`; returns seconds until `wait_event` was logged."""
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.started_ns = time.monotonic_ns()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "-w", str(self.ws), "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.wait_for(lambda e: e.get("event") == wait_event, timeout=timeout)
        return (time.monotonic_ns() - self.started_ns) / 1e9

    def events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        return [json.loads(line) for line in data.splitlines() if line.endswith(b"}")]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 300
                 ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if predicate(event):
                    return event
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"s3sim exited with {self.proc.returncode} ({self.ws})")
            time.sleep(0.01)
        raise TimeoutError("simulator event not seen")

    def peak_rss_mb(self) -> float:
        return _status_kb(self.proc.pid if self.proc else None, "VmHWM") / 1024

    def worker_rss_mb(self) -> list[float]:
        pids = [p for p in _children(self.proc.pid if self.proc else None)]
        return [_status_kb(p, "VmRSS") / 1024 for p in pids]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def _status_kb(pid: int | None, field: str) -> float:
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def _children(pid: int | None) -> list[int]:
    """The simulator's worker processes (environments and spare runtimes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"worker.py" in cmd:
            found.append(int(entry.name))
    return found


def write_file(path: Path, data: bytes) -> int:
    """Write and close; returns the monotonic time right after close."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, data)
    os.close(fd)
    return time.monotonic_ns()


def read_entries(path: Path) -> dict[str, tuple[int, str]]:
    entries: dict[str, tuple[int, str]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, ns, version = line.split("\t")
            entries.setdefault(key, (int(ns), version))
    return entries


def wait_entries(path: Path, count: int, timeout: float, stall_s: float = 5.0
                 ) -> dict[str, tuple[int, str]]:
    """Entries once `count` arrived, or when nothing new came for `stall_s` (lost ones)."""
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    while True:
        entries = read_entries(path)
        now = time.monotonic()
        if len(entries) != last_count:
            last_count, last_change = len(entries), now
        if len(entries) >= count or now > deadline or now - last_change > stall_s:
            return entries
        time.sleep(0.02)


def summary_ms(values_ns: list[int]) -> dict[str, float]:
    ms = sorted(v / 1e6 for v in values_ns)
    if not ms:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return {"p50": round(statistics.median(ms), 3), "p99": round(p99, 3),
            "max": round(ms[-1], 3), "n": len(ms)}


@contextmanager
def scratch() -> Iterator[Path]:
    root = scratch_root()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
