"""File names S3 could not hold, and names that must not reach a terminal raw (item 10), and
symlinked bucket folders (item 11). Real files, an in-process runtime, its real log stream."""

from __future__ import annotations

import io
import os
import re
import threading
from pathlib import Path

import pytest

from simulator.logs import render
from simulator.runtime import Runtime
from tests.helpers import drop, results, running

pytestmark = pytest.mark.integration


def fired_keys(ws: Path) -> list[str]:
    return sorted(
        r["event"]["Records"][0]["s3"]["object"]["key"] for r in results(ws.parent / "out")
    )


def test_a_file_name_that_is_not_utf8_is_skipped_with_the_reason(ws: Path) -> None:
    with running(ws) as (_, log):
        fd = os.open(bytes(ws / "buckets/uploads") + b"/caf\xe9.txt", os.O_WRONLY | os.O_CREAT)
        os.write(fd, b"latin-1 name")
        os.close(fd)
        skipped = log.wait_for(log.named("s3.object_skipped"))[0]
        drop(ws / "buckets/uploads/after.txt")  # the simulator goes on
        log.wait_for(log.named("invoke.report"))
    assert skipped["level"] == "warning"
    assert skipped["key"] == "caf\\xe9.txt"
    assert skipped["reason"] == (
        "the file name is not valid UTF-8, and S3 object keys are UTF-8: rename the file"
    )
    assert fired_keys(ws) == ["after.txt"]


def test_keys_over_1024_bytes_are_skipped_and_1024_fire(ws: Path) -> None:
    bucket = ws / "buckets/uploads"
    with running(ws) as (_, log):
        ok = drop(bucket / ("a" * 250) / ("b" * 250) / ("c" * 250) / ("d" * 250) / ("e" * 20))
        too_long = drop(bucket / ("a" * 250) / ("b" * 250) / ("c" * 250) / ("d" * 250) / ("f" * 21))
        log.wait_for(log.named("invoke.report"))
        skipped = log.wait_for(log.named("s3.object_skipped"))[0]
    assert len(ok.relative_to(bucket).as_posix().encode()) == 1024
    assert len(too_long.relative_to(bucket).as_posix().encode()) == 1025
    assert {e["key"] for e in log.matching(log.named("s3.object_skipped"))} == {
        too_long.relative_to(bucket).as_posix()
    }
    assert skipped["reason"] == (
        "KeyTooLongError: Your key is too long (1025 bytes of UTF-8; S3 keys are at most 1,024)"
    )
    assert [len(k) for k in fired_keys(ws)] == [1024]


def test_control_characters_in_keys_never_reach_the_console_raw() -> None:
    line = render(
        {
            "event": "s3.object_created",
            "level": "info",
            "bucket": "uploads",
            "timestamp": "2026-11-27T10:15:02.114000Z",
            "key": "x\x1b]0;owned\x07\x1b[2J\u202egpj.exe é.jpg",
        }
    )
    assert line == (
        "10:15:02.114 INFO    s3.object_created    bucket=uploads "
        'key="x\\u001b]0;owned\\u0007\\u001b[2J\\u202egpj.exe é.jpg"'
    )
    handler_line = render(
        {
            "event": "function.log",
            "function": "fn",
            "version": "1",
            "timestamp": "2026-11-27T10:15:02.114000Z",
            "message": "got \x1b[31mred\x1b[0m\tkey",
        }
    )
    assert handler_line == "10:15:02.114 [fn:1] got \\x1b[31mred\\x1b[0m\tkey"


class TextConsole(io.StringIO):
    """A terminal stand-in: keeps the text; a test waits for a line to appear on it."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            written = super().write(text)
            self.changed.notify_all()
        return written

    def wait_for(self, needle: str, timeout_s: float = 30.0) -> str:
        with self.changed:
            if not self.changed.wait_for(lambda: needle in self.getvalue(), timeout_s):
                raise AssertionError(f"{needle!r} never appeared on the console")
            return self.getvalue()


def test_a_hostile_file_name_is_escaped_on_a_real_console(ws: Path) -> None:
    console = TextConsole()
    runtime = Runtime(ws, console=console)
    runtime.start()
    try:
        drop(ws / "buckets/uploads/\x1b[2J\x1b]0;owned\x07cleared.txt")
        text = console.wait_for(" REPORT RequestId")
    finally:
        runtime.stop()
    assert "\x1b" not in text and "\x07" not in text
    assert "key=\\x1b[2J\\x1b]0;owned\\x07cleared.txt sequencer=" in text
    # each line of an invocation carries its request id's first 8 characters
    assert re.search(
        r"\[fn:\$LATEST [0-9a-f]{8}\] handled \\x1b\[2J\\x1b\]0;owned\\x07cleared", text
    )


def test_a_symlink_loop_is_reported_at_once(ws: Path) -> None:
    with running(ws) as (_, log):
        os.symlink("loop", ws / "buckets/uploads/loop")
        skipped = log.wait_for(log.named("s3.object_skipped"))[0]
    assert (skipped["key"], skipped["level"]) == ("loop", "warning")
    assert skipped["reason"] == "symlink loop: the link never reaches a file"


def test_a_symlinked_bucket_folder_is_refused_everywhere(ws: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    drop(elsewhere / "outside.txt")
    os.symlink(elsewhere, ws / "buckets/linked")
    with running(ws) as (_, log):
        (refused,) = log.matching(log.named("bucket.refused"))
        drop(elsewhere / "later.txt")
        drop(ws / "buckets/uploads/real.txt")
        log.wait_for(log.named("invoke.report"))
    assert refused["bucket"] == "linked" and refused["level"] == "warning"
    assert refused["reason"].startswith("bucket folders must be real folders")
    with running(ws) as (_, log):  # a catch-up reads it no more than a first start did
        (scan,) = log.matching(log.named("watch.rescanned"))
    assert scan["changed"] == 0
    assert fired_keys(ws) == ["real.txt"]
