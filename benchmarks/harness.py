"""Workspaces, the simulator as a separate process, and timing helpers for the benchmarks."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from simulator.testing import SimulatorProcess

ROOT = Path(__file__).parents[1]
ARN = "arn:aws:lambda:us-east-1:123456789012:function"

# Records its entry time first thing, on the system-wide monotonic clock the writer also uses.
HANDLER = """
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
"""


def scratch_root() -> Path:
    """tmpfs when the machine has one: the writer then outpaces the watcher (the hard case)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="s3sim-bench-", dir=base))


def make_workspace(
    root: Path,
    *,
    functions: int = 1,
    rules: int = 1,
    concurrency: int = 2,
    env: dict[str, str] | None = None,
) -> Path:
    ws = root / "ws"
    out = root / "entries.tsv"
    fns: dict[str, Any] = {}
    for i in range(functions):
        name = f"fn{i}"
        (ws / "functions" / name).mkdir(parents=True)
        (ws / "functions" / name / "handler.py").write_text(HANDLER)
        fns[name] = {
            "handler": "handler.handler",
            "timeout": 30,
            "retries": 0,
            "environment": {"OUT": str(out), **(env or {})},
            "aliases": {"live": "$LATEST"},
        }
    notes = [
        {
            "id": f"decoy{j}",
            "events": ["s3:ObjectCreated:*"],
            "prefix": f"decoy{j}/",
            "function": f"{ARN}:fn0:live",
        }
        for j in range(rules - 1)
    ]
    if functions == 1:  # with decoys, a prefix of its own (S3 rejects overlapping rules)
        notes.append(
            {
                "id": "all",
                "events": ["s3:ObjectCreated:*"],
                "function": f"{ARN}:fn0:live",
                **({"prefix": "burst/"} if rules > 1 else {}),
            }
        )
    else:
        notes += [
            {
                "id": f"p{i}",
                "events": ["s3:ObjectCreated:*"],
                "prefix": f"p{i}/",
                "function": f"{ARN}:fn{i}:live",
            }
            for i in range(functions)
        ]
    config = {
        "region": "us-east-1",
        "account": "123456789012",
        "simulator": {"concurrency": concurrency, "settle_ms": 20},
        "functions": fns,
        "buckets": {"bench": {"notifications": notes}},
    }
    (ws / "buckets" / "bench").mkdir(parents=True)
    (ws / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return ws


class Simulator(SimulatorProcess):
    """The simulator as its own process, plus the memory figures the benchmarks report."""

    def peak_rss_mb(self) -> float:
        return _status_kb(self.proc.pid if self.proc else None, "VmHWM") / 1024

    def worker_rss_mb(self) -> list[float]:
        return [
            _status_kb(p, "VmRSS") / 1024 for p in _children(self.proc.pid if self.proc else None)
        ]


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
    """The simulator's runtime processes (environments and spare runtimes): launcher.py
    started under the runtime's interpreter (simulator/lambdas/environment.py)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and any(arg.endswith(b"launcher.py") for arg in cmd.split(b"\0")):
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


def wait_entries(
    path: Path, count: int, timeout: float, stall_s: float = 5.0
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
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return {
        "p50": round(statistics.median(ms), 3),
        "p99": round(p99, 3),
        "max": round(ms[-1], 3),
        "n": len(ms),
    }


@contextmanager
def scratch() -> Iterator[Path]:
    root = scratch_root()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
