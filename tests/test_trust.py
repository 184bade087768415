"""Regressions of the adversarial review ("Nothing lost, nothing misread"): start-up, state
and disk faults. Real files, real `s3sim run` processes, real SQLite; every wait is on a log
event a user or script could wait on."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
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
    tmp_path: Path, simulator: Any
) -> None:
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


BLOCKING_HANDLER = COUNTING_HANDLER.replace(
    """    failed = random.random() < FAIL""",
    """    if key == "slow.txt":  # holds its outcome back until the test says so
        open(os.path.join(os.environ["OUT"], "slow.started"), "w").close()
        release = os.path.join(os.environ["OUT"], "release")
        for _ in range(6000):
            if os.path.exists(release):
                break
            time.sleep(0.01)
    failed = random.random() < FAIL""",
).replace("import os, random", "import os, random, time")


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 16 MiB tmpfs: a real file system that fills up (mounting needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)]
        ).returncode
        != 0
    ):
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    # Unbuffered: a buffered file would keep the bytes that did not fit and raise ENOSPC
    # again when closed.
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
        except OSError:
            pass
    return filler


def wait_until(predicate: Any, timeout_s: float = 60.0, what: str = "") -> None:
    """Poll a state a user could look at (files, the journal), bounded."""
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s} s for {what}")
        time.sleep(0.02)


def test_disk_full_neither_kills_a_thread_nor_loses_an_event(
    tmp_path: Path, small_disk: Path, simulator: Any
) -> None:
    """Item 3: with the workspace on a full file system, a log line raised ENOSPC inside the
    scheduler's error handler and killed the thread: nothing was processed after space came
    back. Now: logging drops lines (and says so later), journal writes are retried, and
    processing resumes by itself when space returns."""
    from tests.faults import journal_rows

    out = tmp_path / "out"
    out.mkdir()
    config = simple_config(out)
    ws = make_workspace(small_disk / "ws", config, {"fn": {"handler.py": BLOCKING_HANDLER}})
    staged = write_files(small_disk / "ws" / "staging", 50)
    sim = simulator(ws, console=tmp_path / "console.jsonl").start()
    drop(ws / "buckets/uploads/slow.txt")
    wait_until(lambda: (out / "slow.started").exists(), what="the slow handler to start")
    filler = fill(small_disk)
    (out / "release").touch()  # its outcome is now recorded on a full disk
    for name in staged:  # and 50 new objects arrive on it (a rename needs no space)
        os.rename(ws / "staging" / name, ws / "buckets/uploads" / name)
    # The console (a terminal, not on the full disk) shows both writers failing and retrying.
    for field in ("outcomes", "times"):  # the scheduler's and the intake's
        wait_until(
            lambda f=field: any(
                e.get("event") == "journal.write_failed" and f in e for e in sim.console_events()
            ),
            what=field,
        )
    filler.unlink()  # space returns
    expected = sorted(["slow.txt", *staged])
    wait_until(lambda: keys_called(tmp_path) == expected, what="every event to be handled")
    wait_until(
        lambda: sorted(k for _, k, s, _ in journal_rows(ws) if s == "done") == expected,
        what="every outcome to be recorded",
    )
    assert sim.proc.poll() is None, "the simulator must still run"
    assert [a for _, k, _, a in journal_rows(ws) if k == "slow.txt"] == [1]  # not re-run
    status = subprocess.run(
        [sys.executable, "-m", "simulator", "-w", str(ws), "status"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout.startswith("simulator: running")


def test_log_lines_that_cannot_be_written_are_counted_not_raised(tmp_path: Path) -> None:
    """The log sink is the last thing a failing thread calls: it must never raise."""
    from simulator.logs import Sinks

    sink = Sinks(Path("/dev/full"), None, False)  # every write: ENOSPC
    for i in range(3):
        sink(None, "", {"event": "x.happened", "n": i})
    good = tmp_path / "events.jsonl"
    sink._json = os.open(good, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # space is back
    sink(None, "", {"event": "y.happened"})
    lines = [json.loads(line) for line in good.read_text().splitlines()]
    assert [(e["event"], e.get("count"), e.get("reason")) for e in lines] == [
        ("log.lines_dropped", 3, "No space left on device"),
        ("y.happened", None, None),
    ]


def test_state_folder_removed_while_running_is_restored_and_still_locks(
    tmp_path: Path, simulator: Any
) -> None:
    """Item 4: with .s3sim/ removed, the simulator went on writing a deleted database, and a
    second `s3sim run` got in because the lock file had gone: both ran the same handler."""
    import shutil

    from tests.faults import journal_rows

    ws = workspace(tmp_path)
    sim = simulator(ws, console=tmp_path / "console.jsonl").start()
    drop(ws / "buckets/uploads/before.txt")
    wait_until(lambda: keys_called(tmp_path) == ["before.txt"], what="before.txt")
    # The running simulator writes into the folder meanwhile (its status, the WAL), so a
    # strict rmtree can trip over a file appearing or vanishing under it: remove what is there.
    shutil.rmtree(ws / ".s3sim", ignore_errors=True)
    second = subprocess.run(
        [sys.executable, "-m", "simulator", "-w", str(ws), "run", "--exit-when-idle"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2
    assert "another s3sim is already running" in second.stderr
    wait_until(
        lambda: any(e.get("event") == "state.restored" for e in sim.console_events()),
        what="state.restored",
    )
    drop(ws / "buckets/uploads/after.txt")
    wait_until(lambda: keys_called(tmp_path) == ["after.txt", "before.txt"], what="after.txt")

    def both_done() -> bool:
        try:
            rows = journal_rows(ws)
        except sqlite3.OperationalError:  # read while the restore replaced the files: again
            return False
        return sorted(k for _, k, s, _ in rows if s == "done") == ["after.txt", "before.txt"]

    wait_until(both_done, what="both outcomes in the restored journal")
    assert (ws / ".s3sim/last-good-config.yaml").exists()
    assert (ws / ".s3sim/logs/events.jsonl").exists()
