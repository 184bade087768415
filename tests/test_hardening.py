"""Regressions of the second adversarial review: each found by trying to break the fixes of
the first. Real files, processes and SQLite; literal expected messages."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.commands import _table
from simulator.core import config_parse
from simulator.errors import ConfigError
from simulator.store.config_edit import SpliceError, set_in_text
from simulator.store.config_source import EMPTY
from tests.faults import calls, journal_rows, write_files
from tests.helpers import ARN, drop, running
from tests.test_trust import wait_until, workspace


def problems_of(raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_parse.parse(raw)
    return [str(p) for p in info.value.problems]


def test_a_thousand_identical_rules_report_ten_overlaps_not_half_a_million() -> None:
    rules = [
        {"id": f"r{i}", "events": ["s3:ObjectCreated:*"], "function": f"{ARN}:fn:live"}
        for i in range(1000)
    ]
    raw = {
        "functions": {"fn": {"aliases": {"live": "$LATEST"}}},
        "buckets": {"big": {"notifications": rules}},
    }
    found = problems_of(raw)
    assert len(found) == 11
    assert found[0] == (
        "buckets.big: more than 10 pairs of configurations overlap; the first are listed"
    )
    assert found[1] == (
        "buckets.big: configurations 'r0' and 'r1': Configurations overlap. "
        "Configurations on the same bucket cannot share a common event type."
    )


def test_keys_yaml_reads_as_booleans_or_null_are_not_names() -> None:
    raw = yaml.safe_load("functions:\n  fn:\n    aliases:\n      yes: $LATEST\n      ~: $LATEST\n")
    assert problems_of(raw) == [
        "functions.fn.aliases.True: the key True is not text: unquoted yes, no, on, off, true "
        "and false read as booleans and ~ as null in YAML; quote the name",
        "functions.fn.aliases.None: the key None is not text: unquoted yes, no, on, off, true "
        "and false read as booleans and ~ as null in YAML; quote the name",
    ]


def test_environment_values_must_be_text_an_environment_can_hold() -> None:
    raw = yaml.safe_load(
        'functions:\n  fn:\n    environment:\n      BIN: !!binary aGVsbG8=\n      NUL: "1\\x002"\n'
    )
    assert problems_of(raw) == [
        "functions.fn.environment.BIN: must be a string, got b'hello'",
        "functions.fn.environment.NUL: contains a NUL character, which no environment "
        "variable can hold",
    ]


def test_an_alias_in_a_mapping_shared_by_an_anchor_is_not_edited() -> None:
    text = (
        "functions:\n  a:\n    aliases: &al {prod: $LATEST, live: $LATEST}\n"
        "  b:\n    aliases: *al\n"
    )
    with pytest.raises(SpliceError, match="a YAML anchor that other places share"):
        set_in_text(text, ["functions", "a", "aliases", "prod"], "1")


def test_a_tab_before_a_comment_is_edited_as_validation_reads_it() -> None:
    text = "functions:\n  a:\n    aliases:\n      prod: 1\t# the one in use\n"
    assert (
        set_in_text(text, ["functions", "a", "aliases", "prod"], "2")
        == "functions:\n  a:\n    aliases:\n      prod: 2 # the one in use\n"
    )


def test_tables_escape_what_a_terminal_would_act_on() -> None:
    assert (
        _table([("OBJECT",), ("s3://b/fail\x1b[31mRED\x1b[0m\u202egpj.jpg",)])
        == "OBJECT\ns3://b/fail\\x1b[31mRED\\x1b[0m\\u202egpj.jpg"
    )


def test_an_empty_config_is_rejected_live_and_the_last_good_keeps_running(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    with running(ws) as (_, log):
        (ws / "config.yaml").write_text("")  # `: > config.yaml`, or a save on a full disk
        (rejected,) = log.wait_for(log.named("config.rejected"))
        drop(ws / "buckets/uploads/still.txt")
        log.wait_for(log.named("invoke.report"))
    assert rejected["problems"] == [f"config.yaml: {EMPTY}"]
    assert [k for _, k, _ in calls(tmp_path / "out")] == ["still.txt"]


def test_a_removed_wal_is_restored_so_a_crash_after_it_loses_nothing(
    tmp_path: Path, simulator: Any
) -> None:
    ws = workspace(tmp_path)
    sim = simulator(ws, console=tmp_path / "console.jsonl").start()
    drop(ws / "buckets/uploads/before.txt")
    wait_until(
        lambda: [k for _, k, s, _ in journal_rows(ws) if s == "done"] == ["before.txt"],
        what="before.txt recorded",
    )
    (ws / ".s3sim/journal.sqlite3-wal").unlink()
    wait_until(
        lambda: any(e.get("event") == "state.restored" for e in sim.console_events()),
        what="state.restored",
    )
    sim.kill9()
    sim.start()
    (scan,) = [e for e in sim.events() if e.get("event") == "watch.rescanned"]
    assert scan["reason"] == "catch-up"  # not a first start: the journal survived
    assert [k for _, k, s, _ in journal_rows(ws) if s == "done"] == ["before.txt"]


def test_sigterm_during_a_long_start_up_scan_is_honoured_at_once(tmp_path: Path) -> None:
    from simulator.store.journal import Journal

    ws = workspace(tmp_path)
    write_files(ws / "buckets/uploads/many", 10000)
    journal = Journal(ws / ".s3sim/journal.sqlite3")  # a workspace that has run before, so
    with journal.transaction() as db:  # its start-up scan is a catch-up firing all 10,000
        Journal.set_meta(db, "baseline", "1")
    journal.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "-w", str(ws), "run", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    assert proc.stderr is not None
    stderr = proc.stderr

    def read_console() -> None:
        for line in stderr:
            lines.put(line)

    reader = threading.Thread(target=read_console)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while '"watch.rescanning"' not in lines.get(timeout=deadline - time.monotonic()):
            pass  # the console: wait until the catch-up scan has begun
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        waited_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
    assert code == 0
    assert waited_s < 5, f"SIGTERM took {waited_s:.1f} s to honour"  # >10 s before: the scan
    assert calls(tmp_path / "out") == []  # nothing half-accepted ran


def test_a_publish_killed_midway_leaves_no_staging_copy_behind(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    abandoned = ws / "versions/fn/.staging-999999999-deadbeef"  # a pid that cannot exist
    (abandoned / "code").mkdir(parents=True)
    (abandoned / "code/handler.py").write_text("x = 1\n")
    from simulator.cli import main

    assert main(["-w", str(ws), "publish", "fn"]) == 0
    assert sorted(p.name for p in (ws / "versions/fn").iterdir()) == ["1", "counter.json"]


def test_a_journal_that_cannot_be_read_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    (ws / ".s3sim").mkdir()
    (ws / ".s3sim/journal.sqlite3").write_bytes(b"this is not a database" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "-w", str(ws), "dead-letters"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "s3sim: the journal (.s3sim/journal.sqlite3) cannot be used: file is not a database\n"
    )
    assert os.path.exists(ws / ".s3sim/journal.sqlite3")
