"""Regressions of the adversarial review ("Nothing lost, nothing misread"): start-up, state
and disk faults. Real files, real `s3sim run` processes, real SQLite; every wait is on a log
event a user or script could wait on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.faults import COUNTING_HANDLER, calls, write_files
from tests.helpers import drop, make_workspace, running, simple_config

pytestmark = [pytest.mark.fault, pytest.mark.integration]


def workspace(tmp_path: Path, **settings: Any) -> Path:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    config = simple_config(out)
    config["simulator"].update(settings)
    return make_workspace(tmp_path / "ws", config, {"fn": {"handler.py": COUNTING_HANDLER}})


def keys_called(tmp_path: Path) -> list[str]:
    return sorted(key for _, key, _ in calls(tmp_path / "out"))


def test_a_file_renamed_into_a_new_folder_right_after_first_ready_fires(tmp_path: Path) -> None:
    """Item 1: ready used to be logged before the first-start scan ran; the scan then recorded
    files arriving just after ready as pre-existing, and they never fired."""
    ws = workspace(tmp_path)
    write_files(ws / "buckets/uploads/old", 5000)
    outside = drop(tmp_path / "outside/new.txt", b"arrived after ready")
    with running(ws) as (_, log):  # returns when `simulator.ready` has been logged
        (ws / "buckets/uploads/fresh/deep").mkdir(parents=True)
        os.rename(outside, ws / "buckets/uploads/fresh/deep/new.txt")
        log.wait_for(log.named("invoke.report"))
        (scan,) = log.matching(log.named("watch.rescanned"))
        ready_at = [e["event"] for e in log.events].index("simulator.ready")
    assert scan["fired"] is False and scan["changed"] == 5000
    assert [e["event"] for e in log.events].index("watch.rescanned") < ready_at
    assert keys_called(tmp_path) == ["fresh/deep/new.txt"]


def test_kill_9_right_after_first_ready_then_changes_while_down_fire(
        tmp_path: Path, simulator: Any) -> None:
    """Item 2: the first-start marker was written after the first scan, so a kill soon after
    the first start made the next start a first start again: changes made while it was down
    were only recorded."""
    ws = workspace(tmp_path)
    write_files(ws / "buckets/uploads/old", 2000)
    sim = simulator(ws).start()  # waits for `simulator.ready`
    sim.kill9()
    drop(ws / "buckets/uploads/while-down.txt")
    sim.start()
    sim.wait_for(lambda e: e.get("event") == "invoke.report")
    (scan,) = [e for e in sim.events() if e.get("event") == "watch.rescanned"]
    assert scan["reason"] == "catch-up" and scan["fired"] is True
    assert keys_called(tmp_path) == ["while-down.txt"]
