"""Helpers for the fault-injection suite: the simulator as a separate process."""

from __future__ import annotations

import os
from pathlib import Path

# Appends one line per invocation: cheap enough for bursts of thousands.
COUNTING_HANDLER = """
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
"""


def calls(out: Path) -> list[tuple[str, str, str]]:
    path = out / "calls.log"
    if not path.exists():
        return []
    return [tuple(line.split("\t")) for line in path.read_text().splitlines()]  # type: ignore[misc]


def journal_rows(ws: Path) -> list[tuple[str, str, str, int]]:
    import sqlite3

    db = sqlite3.connect(ws / ".s3sim" / "journal.sqlite3")
    try:
        return [
            (r, k, s, a)
            for r, k, s, a in db.execute("SELECT request_id, key, state, attempts FROM deliveries")
        ]
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
