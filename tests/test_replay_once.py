"""A dead letter is replayed at most once, even when `s3sim replay` runs several times at once;
`--again` is the explicit way to replay it once more."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.testing import SimulatorProcess
from tests.helpers import drop, handler_source, make_workspace, results, simple_config

pytestmark = pytest.mark.integration
_QUEUED = re.compile(
    r"^queued: replay of 1 dead letter\(s\) with new request ids "
    r"\((\d+) -> ([0-9a-f-]{36})\), through the current alias mapping"
)


def s3sim(ws: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "simulator", "-w", str(ws), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def replays_of(ws: Path, dead_id: int) -> int:
    with sqlite3.connect(ws / ".s3sim/journal.sqlite3") as db:
        return int(
            db.execute(
                "SELECT count(*) FROM deliveries WHERE replay_of = ?", (dead_id,)
            ).fetchone()[0]
        )


def test_concurrent_replays_of_one_dead_letter_run_it_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    ws = make_workspace(
        tmp_path / "ws", simple_config(out, retries=0), {"fn": {"handler.py": handler_source()}}
    )
    sim = SimulatorProcess(ws).start()
    try:
        drop(ws / "buckets/uploads/fail.txt")
        (dead,) = sim.wait_for(lambda e: e.get("event") == "event.dead_lettered")
        dead_id = dead["delivery_id"]

        outcomes = [finish(p) for p in [s3sim(ws, "replay", str(dead_id)) for _ in range(3)]]
        winners = [o for o in outcomes if o[0] == 0]
        assert len(winners) == 1, outcomes
        match = _QUEUED.match(winners[0][1])
        assert match is not None and match.group(1) == str(dead_id), winners
        new_id = match.group(2)
        refused = (
            f"s3sim: dead letter {dead_id} was already replayed as request {new_id}; "
            f"`s3sim replay --again {dead_id}` replays it once more\n"
        )
        assert sorted((code, err) for code, _, err in outcomes if code != 0) == [
            (1, refused),
            (1, refused),
        ]

        (replayed,) = sim.wait_for(lambda e: e.get("event") == "event.replayed")
        assert replayed["request_id"] == new_id
        sim.wait_for(
            lambda e: e.get("event") == "event.dead_lettered" and e.get("request_id") == new_id
        )
        assert replays_of(ws, dead_id) == 1
        assert sorted(r["context"]["aws_request_id"] for r in results(out)) == sorted(
            [dead["request_id"], new_id]
        )

        # The replayed dead letter is no longer a dead letter; its replay (which failed) is.
        code, listing, _ = finish(s3sim(ws, "dead-letters"))
        assert code == 0 and dead["request_id"] not in listing and new_id in listing
        code, listing, _ = finish(s3sim(ws, "dead-letters", "--replayed"))
        assert re.split(r"\s{2,}", listing.splitlines()[0]) == [
            "ID",
            "REQUEST ID",
            "TARGET",
            "OBJECT",
            "CONDITION",
            "ATTEMPTS",
            "ERROR",
            "REPLAYED AS",
        ]
        (row,) = [
            re.split(r"\s{2,}", line)
            for line in listing.splitlines()
            if line.startswith(f"{dead_id} ")
        ]
        assert row[:4] + row[-1:] == [
            str(dead_id),
            dead["request_id"],
            "fn:live",
            "s3://uploads/fail.txt",
            new_id,
        ]
        code, status, _ = finish(s3sim(ws, "status", "--json"))
        assert json.loads(status)["functions"]["fn"]["dead"] == 1

        # Later, a plain replay is still refused; --again replays it once more.
        assert finish(s3sim(ws, "replay", str(dead_id)))[:3:2] == (1, refused)
        code, again, _ = finish(s3sim(ws, "replay", "--again", str(dead_id)))
        assert code == 0
        match = _QUEUED.match(again)
        assert match is not None
        sim.wait_for(
            lambda e: (
                e.get("event") == "event.dead_lettered" and e.get("request_id") == match.group(2)
            )
        )
        assert replays_of(ws, dead_id) == 2
        assert len(results(out)) == 3
    finally:
        sim.stop()
