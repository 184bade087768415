"""State across restarts: first start records, later starts catch up, pending work resumes."""

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from simulator.errors import WorkspaceLocked
from simulator.runtime import Runtime
from tests.helpers import drop, results, running

pytestmark = pytest.mark.integration


def keys_seen(ws: Path) -> list[tuple[str, str]]:
    return sorted(
        (r["event"]["Records"][0]["eventName"], r["event"]["Records"][0]["s3"]["object"]["key"])
        for r in results(ws.parent / "out")
    )


def test_first_start_records_existing_objects_without_firing(ws: Path) -> None:
    drop(ws / "buckets/uploads/existing.txt")
    with running(ws) as (_, log):
        (scan,) = log.matching(log.named("watch.rescanned"))
        drop(ws / "buckets/uploads/new.txt")
        log.wait_for(log.named("invoke.report"))
    assert scan["fired"] is False and scan["changed"] == 1
    assert keys_seen(ws) == [("ObjectCreated:Put", "new.txt")]


def test_changes_while_stopped_fire_on_next_start(ws: Path) -> None:
    drop(ws / "buckets/uploads/keep.txt")
    drop(ws / "buckets/uploads/change.txt", b"old")
    drop(ws / "buckets/uploads/remove.txt")
    with running(ws):
        pass
    drop(ws / "buckets/uploads/change.txt", b"new content")
    (ws / "buckets/uploads/remove.txt").unlink()
    drop(ws / "buckets/uploads/added.txt")
    with running(ws) as (_, log):
        log.wait_for(log.named("invoke.report"), count=3)
    assert keys_seen(ws) == [
        ("ObjectCreated:Put", "added.txt"),
        ("ObjectCreated:Put", "change.txt"),
        ("ObjectRemoved:Delete", "remove.txt"),
    ]


def test_pending_retry_resumes_after_restart_with_same_request_id(ws: Path) -> None:
    config = (ws / "config.yaml").read_text().replace("time_scale: 0.002", "time_scale: 0.5")
    (ws / "config.yaml").write_text(config)  # first retry due in 30 s: it will still be pending
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/fail-once.txt")
        (scheduled,) = log.wait_for(log.named("retry.scheduled"))
    db = sqlite3.connect(ws / ".s3sim/journal.sqlite3")
    db.execute("UPDATE deliveries SET due_s = 0")  # make the retry due now instead of in 30 s
    db.commit()
    db.close()
    with running(ws) as (_, log):
        (failed,) = log.wait_for(log.named("invoke.failed"))
    assert failed["request_id"] == scheduled["request_id"] and failed["attempt"] == 2


def test_second_simulator_on_same_workspace_is_refused(ws: Path) -> None:
    with running(ws):
        other = Runtime(ws)
        with pytest.raises(WorkspaceLocked) as info:
            other.start()
    assert "already running" in str(info.value) and f"pid {os.getpid()}" in str(info.value)


def test_sequencer_keeps_increasing_across_restarts(ws: Path) -> None:
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/k.txt", b"1")
        log.wait_for(log.named("invoke.report"))
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/k.txt", b"2")
        log.wait_for(log.named("invoke.report"))
    seqs = sorted(
        r["event"]["Records"][0]["s3"]["object"]["sequencer"] for r in results(ws.parent / "out")
    )
    assert len(set(seqs)) == 2
    by_etag = {
        r["event"]["Records"][0]["s3"]["object"]["eTag"]: r["event"]["Records"][0]["s3"]["object"][
            "sequencer"
        ]
        for r in results(ws.parent / "out")
    }
    assert by_etag[hashlib.md5(b"1").hexdigest()] < by_etag[hashlib.md5(b"2").hexdigest()]


def test_stop_does_not_wait_for_a_long_handler_and_keeps_its_event(tmp_path: Path) -> None:
    import sqlite3
    import time

    from tests.helpers import handler_source, make_workspace, simple_config

    out = tmp_path / "out2"
    out.mkdir()
    ws = make_workspace(
        tmp_path / "ws2", simple_config(out, timeout=120), {"fn": {"handler.py": handler_source()}}
    )
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/sleep.txt")  # the handler sleeps 30 s
        log.wait_for(log.named("invoke.start"))
        started = time.monotonic()
    assert time.monotonic() - started < 15  # the 5 s grace, then the environment is stopped
    db = sqlite3.connect(ws / ".s3sim/journal.sqlite3")
    (state,) = db.execute("SELECT state FROM deliveries").fetchone()
    db.close()
    assert state == "pending"  # runs again at the next start: at least once
