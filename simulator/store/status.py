"""`s3sim status`: what the journal says, plus what a running simulator publishes each second."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simulator.store import files
from simulator.store.journal import Journal


def write(path: Path, inflight: Mapping[str, int], warm: Mapping[str, int]) -> None:
    """Written by the running simulator (atomically), read by `s3sim status`."""
    body = {
        "pid": os.getpid(),
        "time": time.time(),
        "inflight": dict(inflight),
        "warm_environments": dict(warm),
    }
    files.write_atomic(path, json.dumps(body))


def clear(path: Path) -> None:
    path.unlink(missing_ok=True)


def report(journal: Journal, status_file: Path, now_s: float) -> dict[str, Any]:
    live: dict[str, Any] = {}
    try:
        live = json.loads(status_file.read_text())
    except (OSError, ValueError):
        pass
    running = bool(live) and now_s - float(live.get("time", 0)) < 5
    functions: dict[str, dict[str, Any]] = {}
    for function, state, attempts, due_s in journal.open_summary():
        entry = functions.setdefault(function, _empty())
        if state == "pending" and attempts == 0:
            entry["pending"] += 1
        elif state == "pending":
            entry["retrying"] += 1
            entry["next_attempt_in_s"] = min(
                entry["next_attempt_in_s"] or 1e18, max(0.0, round(due_s - now_s, 1))
            )
    for (function, state), count in journal.counts().items():
        entry = functions.setdefault(function, _empty())
        if state in ("done", "dead"):
            entry[state] = count
    for function, count in (live.get("inflight") or {}).items():
        entry = functions.setdefault(function, _empty())
        entry["in_flight"] = count
        entry["pending"] = max(0, entry["pending"] - count)  # in flight is not also pending
    return {
        "running": running,
        "pid": live.get("pid") if running else None,
        "functions": functions,
        "warm_environments": live.get("warm_environments", {}) if running else {},
    }


def _empty() -> dict[str, Any]:
    return {
        "pending": 0,
        "in_flight": 0,
        "retrying": 0,
        "next_attempt_in_s": None,
        "dead": 0,
        "done": 0,
    }
