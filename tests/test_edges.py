"""Edge cases: odd names, symlinks, overflow, environment references, concurrency, faults."""

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.core import lambda_env
from simulator.errors import ConfigError
from simulator.store import config_source
from simulator.store.journal import Journal
from simulator.store.versions import VersionStore
from tests.helpers import drop, handler_source, make_workspace, results, running, simple_config

pytestmark = pytest.mark.integration


def workspace(tmp_path: Path, **function: Any) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return make_workspace(
        tmp_path / "ws", simple_config(out, **function), {"fn": {"handler.py": handler_source()}}
    )


def keys(ws: Path) -> list[str]:
    return sorted(
        r["event"]["Records"][0]["s3"]["object"]["key"] for r in results(ws.parent / "out")
    )


def test_environment_references_are_resolved_from_the_host(tmp_path: Path) -> None:
    assert lambda_env.expand("k=${SECRET}/x", {"SECRET": "s3"}) == "k=s3/x"
    ws = workspace(
        tmp_path, environment={"OUT": str(tmp_path / "out"), "TOKEN": "${S3SIM_TEST_TOKEN}"}
    )
    with pytest.raises(ConfigError) as info:
        config_source.read(ws / "config.yaml", VersionStore(ws / "versions"), host={})
    assert str(info.value.problems[0]) == (
        "functions.fn.environment.TOKEN: refers to "
        "${S3SIM_TEST_TOKEN}, which is not set in the "
        "simulator's environment"
    )
    os.environ["S3SIM_TEST_TOKEN"] = "from-host"
    try:
        with running(ws) as (_, log):
            drop(ws / "buckets/uploads/a.txt")
            log.wait_for(log.named("invoke.report"))
    finally:
        del os.environ["S3SIM_TEST_TOKEN"]
    (result,) = results(tmp_path / "out")
    assert result["env"]["TOKEN"] == "from-host"
    assert "S3SIM_TEST_TOKEN" not in result["env"]


def test_odd_names_and_symlinks(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    with running(ws) as (_, log):
        os.symlink(secret, ws / "buckets/uploads/escape.txt")
        drop(ws / "buckets/uploads/inside.txt", b"in")
        os.symlink(ws / "buckets/uploads/inside.txt", ws / "buckets/uploads/link.txt")
        for name in ("new\nline.txt", "ünï cödé.txt", "empty.txt", "k" * 200 + ".txt"):
            drop(ws / "buckets/uploads" / name, b"" if name == "empty.txt" else b"x")
        log.wait_for(log.named("invoke.report"), count=6)
        skipped = log.wait_for(log.named("s3.object_skipped", key="escape.txt"))
    assert skipped[0]["reason"] == "symlink points outside the buckets folder"
    assert keys(ws) == sorted(
        [
            "empty.txt",
            "inside.txt",
            "k" * 200 + ".txt",
            "link.txt",
            "new%0Aline.txt",
            "%C3%BCn%C3%AF+c%C3%B6d%C3%A9.txt",
        ]
    )


def test_overflow_warning_triggers_a_rescan_that_finds_missed_files(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    with running(ws) as (runtime, log):
        runtime.watcher.stop()  # stand-in for the kernel dropping events: nothing is seen
        drop(ws / "buckets/uploads/missed.txt")
        runtime.watcher.start()
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        log.wait_for(log.named("watch.overflow"))
        log.wait_for(log.named("invoke.report"))
    assert keys(ws) == ["missed.txt"]


def test_reserved_concurrency_caps_parallel_environments(tmp_path: Path) -> None:
    ws = workspace(tmp_path, reserved_concurrency=1)
    config = yaml.safe_load((ws / "config.yaml").read_text())
    config["simulator"]["concurrency"] = 4
    (ws / "config.yaml").write_text(yaml.safe_dump(config))
    with running(ws) as (_, log):
        for i in range(6):
            drop(ws / f"buckets/uploads/c{i}.txt")
        log.wait_for(log.named("invoke.report"), count=6)
    assert len({r["pid"] for r in results(tmp_path / "out")}) == 1
    events = [e["event"] for e in log.events if e["event"] in ("invoke.start", "invoke.report")]
    assert events == ["invoke.start", "invoke.report"] * 6  # never two at once


def test_intake_fault_is_recovered_by_rescan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path)
    original = Journal.put_object
    calls = {"n": 0}

    def flaky(db, bucket, key, entry):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk trouble")
        return original(db, bucket, key, entry)

    monkeypatch.setattr(Journal, "put_object", staticmethod(flaky))
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("journal.write_failed"))  # an OSError writing it
        log.wait_for(log.named("invoke.report"))
    assert keys(ws) == ["a.txt"]


def test_polling_watcher_without_close_events_settles_writes(tmp_path: Path) -> None:
    """The path macOS/Windows and network file systems take: no close events, only changes."""
    ws = workspace(tmp_path)
    config = yaml.safe_load((ws / "config.yaml").read_text())
    config["simulator"].update(watcher="polling", polling_interval_ms=50)
    (ws / "config.yaml").write_text(yaml.safe_dump(config))
    with running(ws) as (_, log):
        path = drop(ws / "buckets/uploads/p.txt", b"one")
        log.wait_for(log.named("invoke.report"))
        path.write_bytes(b"two!")
        log.wait_for(log.named("invoke.report"), count=2)
        path.unlink()
        log.wait_for(log.named("invoke.report"), count=3)
    names = sorted(r["event"]["Records"][0]["eventName"] for r in results(tmp_path / "out"))
    assert names == ["ObjectCreated:Put", "ObjectCreated:Put", "ObjectRemoved:Delete"]
