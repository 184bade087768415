"""Fault injection: one fault per test, real processes and files; nothing may be lost.

Run alone with `pytest -m fault`.
"""

import errno
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.faults import COUNTING_HANDLER, calls, journal_rows, write_files
from tests.helpers import drop, handler_source, make_workspace, running, simple_config

pytestmark = [pytest.mark.fault, pytest.mark.integration]


def workspace(
    tmp_path: Path,
    code: str = COUNTING_HANDLER,
    settings: dict[str, Any] | None = None,
    **function: Any,
) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    config = simple_config(out, **function)
    config["simulator"].update(settings or {})
    return make_workspace(tmp_path / "ws", config, {"fn": {"handler.py": code}})


def delivered_keys(out: Path) -> set[str]:
    return {key for _, key, result in calls(out) if result == "ok"}


def test_kill_9_mid_burst_then_restart_loses_nothing(
    simulator: Any, tmp_path: Path, fault_report: Any
) -> None:
    ws = workspace(tmp_path)
    folder = ws / "buckets/uploads/burst"
    folder.mkdir(parents=True)
    sim = simulator(ws).start()
    names: list[str] = []
    writer = threading.Thread(target=lambda: names.extend(write_files(folder, 1500)))
    writer.start()  # the kill lands while files are still being written and handlers run
    sim.wait_for(lambda e: e.get("event") == "invoke.report", count=100)
    sim.kill9()
    writer.join()
    seen_before_kill = len(calls(tmp_path / "out"))
    assert sim.run_until_idle() == 0
    keys = {f"burst/{n}" for n in names}
    delivered = [k for _, k, r in calls(tmp_path / "out") if r == "ok"]
    assert set(delivered) >= keys  # at least once, every one
    rows = journal_rows(ws)
    assert {k for _, k, _, _ in rows} == keys
    assert all(state == "done" for _, _, state, _ in rows)
    fault_report(
        "kill -9 mid-burst",
        events=len(keys),
        handled_before_kill=seen_before_kill,
        delivered=len(set(delivered)),
        redelivered=len(delivered) - len(set(delivered)),
        dead_lettered=0,
        lost=len(keys - set(delivered)),
    )


def test_kill_9_with_retry_pending_resumes_attempts_and_request_id(
    simulator: Any, tmp_path: Path, fault_report: Any
) -> None:
    ws = workspace(tmp_path, handler_source(), settings={"time_scale": 0.02})  # retry in 1.2 s
    sim = simulator(ws).start()
    drop(ws / "buckets/uploads/fail.txt")
    (scheduled,) = sim.wait_for(lambda e: e.get("event") == "retry.scheduled")
    sim.kill9()
    assert sim.run_until_idle() == 1  # exits 1: the event ends dead-lettered
    failures = [e for e in sim.events() if e.get("event") == "invoke.failed"]
    assert [e["attempt"] for e in failures] == [2, 3]
    assert {e["request_id"] for e in failures} == {scheduled["request_id"]}
    fault_report(
        "kill -9 with a retry pending", events=1, attempts=3, retried=2, dead_lettered=1, lost=0
    )


def test_garbage_config_mid_burst_keeps_last_good_and_delivers_all(
    tmp_path: Path, fault_report: Any
) -> None:
    ws = workspace(tmp_path)
    good = (ws / "config.yaml").read_text()
    with running(ws) as (_, log):
        names = write_files(ws / "buckets/uploads", 200, prefix="a")
        (ws / "config.yaml").write_bytes(b"\x00\xff garbage: [unclosed\n")
        names += write_files(ws / "buckets/uploads", 200, prefix="b")
        log.wait_for(log.named("config.rejected"))
        log.wait_for(log.named("invoke.report", status="success"), count=400, timeout=120)
        (ws / "config.yaml").write_text(good)
    assert delivered_keys(tmp_path / "out") == set(names)
    fault_report(
        "config.yaml replaced by garbage mid-burst",
        events=len(names),
        delivered=len(delivered_keys(tmp_path / "out")),
        dead_lettered=0,
        lost=0,
    )


def test_kill_9_while_config_half_written_restarts_on_last_good(
    simulator: Any, tmp_path: Path
) -> None:
    ws = workspace(tmp_path)
    sim = simulator(ws).start()
    text = (ws / "config.yaml").read_text()
    cut = text.index("function: arn:aws:lambda") + 30  # a non-atomic editor, mid-save
    (ws / "config.yaml").write_text(text[:cut])
    sim.kill9()
    drop(ws / "buckets/uploads/after.txt")
    sim.start()
    (rejected,) = sim.wait_for(lambda e: e.get("event") == "config.rejected")
    assert "last good" in rejected["kept"]
    sim.wait_for(lambda e: e.get("event") == "invoke.report")
    sim.stop()
    assert delivered_keys(tmp_path / "out") == {"after.txt"}


def test_bucket_folder_removed_and_recreated(tmp_path: Path, fault_report: Any) -> None:
    ws = workspace(tmp_path)
    bucket = ws / "buckets/uploads"
    with running(ws) as (_, log):
        write_files(bucket / "d", 20)
        log.wait_for(log.named("invoke.report"), count=20)
        shutil.rmtree(bucket)
        log.wait_for(log.named("s3.object_removed"), count=20)
        write_files(bucket / "e", 5)
        log.wait_for(log.named("invoke.report"), count=45)
    got = Counter((name.split("/")[0], result) for _, name, result in calls(tmp_path / "out"))
    assert got == {("d", "ok"): 40, ("e", "ok"): 5}  # d: 20 puts + 20 deletes
    removed = {e["key"] for e in log.matching(log.named("s3.object_removed"))}
    assert removed == {f"d/f{i:05d}.dat" for i in range(20)}
    fault_report(
        "bucket folder removed and re-created", events=45, delivered=45, dead_lettered=0, lost=0
    )


def test_buckets_folder_itself_removed_and_recreated(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    with running(ws) as (_, log):
        shutil.rmtree(ws / "buckets")
        log.wait_for(log.named("watch.buckets_folder", change="dir_deleted"))
        write_files(ws / "buckets/uploads", 3)
        log.wait_for(log.named("invoke.report"), count=3)
    assert len(delivered_keys(tmp_path / "out")) == 3


def test_kernel_queue_overflow_is_detected_and_rescanned(
    simulator: Any, tmp_path: Path, fault_report: Any
) -> None:
    """A real overflow: the simulator is stopped while more files are written than the
    kernel queue (16,384 events, 2 per file with our event mask) can hold."""
    ws = workspace(tmp_path)
    (ws / "buckets/uploads/flood").mkdir(parents=True)  # watched before the flood
    sim = simulator(ws).start()
    sim.pause()
    try:
        names = write_files(ws / "buckets/uploads/flood", 10000)
    finally:
        sim.resume()
    sim.wait_for(lambda e: e.get("event") == "watch.overflow", timeout=60)
    sim.wait_for(lambda e: e.get("event") == "invoke.report", count=10000, timeout=300)
    sim.stop()
    assert delivered_keys(tmp_path / "out") == {f"flood/{n}" for n in names}
    assert len(journal_rows(ws)) == 10000  # each object accepted once, none twice
    rescans = [
        e
        for e in sim.events()
        if e.get("event") == "watch.rescanned" and e.get("reason") == "overflow"
    ]
    fault_report(
        "kernel queue overflow (SIGSTOP + 10,000 files)",
        events=10000,
        found_by_rescan=sum(e["changed"] for e in rescans),
        delivered=len(delivered_keys(tmp_path / "out")),
        dead_lettered=0,
        lost=0,
    )


def test_watch_limit_reached_falls_back_to_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_report: Any
) -> None:
    from watchdog.observers.inotify_c import InotifyFD

    original = InotifyFD.add_callback

    def limited(self: Any, path: bytes, *args: Any) -> Any:
        if b"deep" in path:  # stands in for fs.inotify.max_user_watches being reached
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return original(self, path, *args)

    monkeypatch.setattr(InotifyFD, "add_callback", limited)
    ws = workspace(tmp_path, settings={"polling_interval_ms": 100})
    with running(ws) as (runtime, log):
        write_files(ws / "buckets/uploads/deep/er", 5)
        (limit,) = log.wait_for(log.named("watch.limit_reached"))
        log.wait_for(log.named("invoke.report"), count=5)
        assert runtime.watcher.polling
        write_files(ws / "buckets/uploads/deep/er", 2, prefix="g")
        log.wait_for(log.named("invoke.report"), count=7)
    assert "inotify watch limit reached" in limit["reason"]
    assert len(delivered_keys(tmp_path / "out")) == 7
    fault_report(
        "watch limit reached (ENOSPC injected)", events=7, delivered=7, dead_lettered=0, lost=0
    )


def test_ten_thousand_files_with_thirty_percent_failures_exactly_accounted(
    simulator: Any, tmp_path: Path, fault_report: Any
) -> None:
    ws = workspace(
        tmp_path,
        settings={"time_scale": 0.002, "concurrency": 4},  # max event age 43 s
        environment={"OUT": str(tmp_path / "out"), "FAIL_FRACTION": "0.3"},
    )
    drop(ws / "buckets/uploads/.keep")
    sim = simulator(ws).start()
    write_files(ws / "buckets/uploads/load", 10000)
    sim.wait_for(lambda e: e.get("event") in ("invoke.report",), count=10000, timeout=600)
    sim.stop()
    code = sim.run_until_idle()  # finishes any retries still pending
    rows = journal_rows(ws)
    assert len(rows) == 10000 and len({k for _, k, _, _ in rows}) == 10000
    by_request: dict[str, list[str]] = {}
    for request_id, _, result in calls(tmp_path / "out"):
        by_request.setdefault(request_id, []).append(result)
    done = dead = 0
    for request_id, _, state, attempts in rows:
        outcomes = by_request[request_id]
        assert len(outcomes) == attempts  # every attempt ran and was counted once
        if state == "done":
            assert outcomes[-1] == "ok" and outcomes[:-1] == ["fail"] * (attempts - 1)
            done += 1
        else:
            assert state == "dead" and outcomes == ["fail"] * 3
            dead += 1
    assert done + dead == 10000 and dead > 0
    assert code in (0, 1)  # 1 only if an event ended dead-lettered during that second run
    fault_report(
        "10,000 files, handler failing 30%",
        events=10000,
        delivered=done,
        retried=sum(a - 1 for _, _, _, a in rows),
        dead_lettered=dead,
        lost=0,
        invocations=sum(a for _, _, _, a in rows),
    )


def test_handler_printing_100_mb_is_capped_and_simulator_stays_healthy(tmp_path: Path) -> None:
    flood = (
        "import sys\ndef handler(e, c):\n    chunk = 'x' * (1 << 20)\n"
        "    for _ in range(100):\n        sys.stdout.write(chunk)\n    return 'done'\n"
    )
    ws = workspace(tmp_path, flood)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report", status="success"))
        drop(ws / "buckets/uploads/b.txt")
        log.wait_for(log.named("invoke.report", status="success"), count=2)
    logged = sum(len(e["message"]) for e in log.matching(log.named("function.log")))
    assert logged < 2 * (256 * 1024 + 65536 + 200)


def test_handler_that_hangs_or_exits_does_not_block_others(tmp_path: Path) -> None:
    ws = workspace(tmp_path, handler_source(), timeout=1, retries=0)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/sleep.txt")
        drop(ws / "buckets/uploads/exit.txt")
        for i in range(5):
            drop(ws / f"buckets/uploads/ok{i}.txt")
        log.wait_for(log.named("invoke.report"), count=7)
    statuses = Counter(e["status"] for e in log.matching(log.named("invoke.report")))
    assert statuses == {"success": 5, "Sandbox.Timedout": 1, "Runtime.ExitError": 1}
