"""What a person reads: console lines rendered from events, captured and compared with
literal expected lines."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import structlog

from simulator import logs

RID = "08cb696c-02a7-4923-856d-0ea3b92b8f3e"
OTHER = "5f0e2a9d-1c3b-4e8f-9a7d-2b6c4d8e0f12"
ARN = "arn:aws:lambda:us-east-1:123456789012:function"


class Terminal(io.StringIO):
    """A captured console that says it is a terminal, as stderr does in a shell."""

    def isatty(self) -> bool:
        return True


def console_lines(*events: dict[str, Any], verbose: bool = False) -> list[str]:
    """Log `events` through the real pipeline to a captured console; its lines."""
    out = io.StringIO()
    logs.configure(None, out, verbose=verbose)
    log = structlog.get_logger("s3sim")
    for event in events:
        fields = dict(event)
        getattr(log, fields.pop("level", "info"))(fields.pop("event"), **fields)
    return [line[13:] for line in out.getvalue().splitlines()]  # without the time of day


RESOLVED = {
    "event": "alias.resolved",
    "request_id": RID,
    "function": "thumbnailer",
    "delivery_id": 1,
    "attempt": 1,
    "bucket": "uploads",
    "key": "images/cat.jpg",
    "duplicate": False,
    "version": "4",
    "alias": "prod",
    "arn": f"{ARN}:thumbnailer:prod",
}


def test_alias_resolved_leads_with_alias_and_version() -> None:
    assert console_lines(RESOLVED) == [
        "INFO    alias.resolved       thumbnailer:prod -> 4  [08cb696c]"
    ]


def test_verbose_console_keeps_every_id() -> None:
    assert console_lines(RESOLVED, verbose=True) == [
        f"INFO    alias.resolved       request_id={RID} function=thumbnailer delivery_id=1 "
        "attempt=1 bucket=uploads key=images/cat.jpg duplicate=false version=4 alias=prod "
        f"arn={ARN}:thumbnailer:prod"
    ]


def test_overlapping_invocations_are_tagged_with_their_request_id() -> None:
    def handler_line(rid: str, message: str) -> dict[str, Any]:
        return {
            "event": "function.log",
            "request_id": rid,
            "function": "thumbnailer",
            "version": "1",
            "message": message,
        }

    lines = console_lines(
        {"event": "invoke.start", "request_id": RID, "function": "thumbnailer", "version": "1"},
        {"event": "invoke.start", "request_id": OTHER, "function": "thumbnailer", "version": "1"},
        handler_line(RID, "resizing cat.jpg"),
        handler_line(OTHER, "resizing dog.jpg"),
        handler_line(RID, "Traceback (most recent call last):\n  File x"),
        {"event": "function.log", "function": "thumbnailer", "version": "1", "message": "idle"},
    )
    assert lines == [
        f"[thumbnailer:1 08cb696c] START RequestId: {RID} Version: 1",
        f"[thumbnailer:1 5f0e2a9d] START RequestId: {OTHER} Version: 1",
        "[thumbnailer:1 08cb696c] resizing cat.jpg",
        "[thumbnailer:1 5f0e2a9d] resizing dog.jpg",
        "[thumbnailer:1 08cb696c] Traceback (most recent call last):",
        "[thumbnailer:1 08cb696c]   File x",
        "[thumbnailer:1] idle",  # output between invocations has no request id
    ]


def test_non_ascii_keys_show_as_text_and_only_controls_are_escaped() -> None:
    lines = console_lines(
        {"event": "s3.object_created", "bucket": "uploads", "key": "photos/été.jpg"},
        {"event": "s3.object_created", "bucket": "uploads", "key": "naïve café/日本.txt"},
        {"event": "s3.object_created", "bucket": "uploads", "key": "a\x1b[2Jb\u202e.jpg"},
    )
    assert lines == [
        "INFO    s3.object_created    bucket=uploads key=photos/été.jpg",
        'INFO    s3.object_created    bucket=uploads key="naïve café/日本.txt"',
        "INFO    s3.object_created    bucket=uploads key=a\\x1b[2Jb\\u202e.jpg",
    ]


def test_config_valid_again_is_the_last_word() -> None:
    lines = console_lines(
        {
            "event": "config.reloaded",
            "changes": [],
            "note": "config.yaml is valid again and in force",
        }
    )
    assert lines == ['INFO    config.reloaded      note="config.yaml is valid again and in force"']


def without_times(text: str) -> str:
    return re.sub(r"\d\d:\d\d:\d\d\.\d\d\d ", "", text)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_on_a_terminal_then_cleared_for_the_summary() -> None:
    out = Terminal()
    logs.configure(None, out)
    clock = Clock()
    progress = logs.Progress("scanning buckets (restart)", 10_000, clock=clock)
    progress.advance(500)  # within the first second: short work shows nothing
    assert out.getvalue() == ""
    clock.now = 101.0
    progress.advance(1500)
    clock.now = 101.1
    progress.advance(100)  # redrawn at most every 0.25 s
    clock.now = 102.0
    progress.advance(2000)
    progress.close()
    structlog.get_logger("s3sim").info("watch.rescanned", objects=4100)
    assert without_times(out.getvalue()) == (
        "\r\x1b[Kscanning buckets (restart): 2,000 of 10,000 objects, 2,000/s, 4 s left"
        "\r\x1b[Kscanning buckets (restart): 4,100 of 10,000 objects, 2,050/s, 3 s left"
        "\r\x1b[K"  # cleared by close
        "INFO    watch.rescanned      objects=4100\n"
    )


def test_an_event_during_progress_replaces_the_progress_line() -> None:
    out = Terminal()
    logs.configure(None, out)
    clock = Clock()
    progress = logs.Progress("replaying dead letters", None, unit="events", clock=clock)
    clock.now = 102.0
    progress.advance(3000)
    structlog.get_logger("s3sim").info("event.replayed", delivery_id=7)
    assert without_times(out.getvalue()) == (
        "\r\x1b[Kreplaying dead letters: 3,000 events, 1,500/s"
        "\r\x1b[KINFO    event.replayed       delivery_id=7\n"
    )


@pytest.mark.parametrize("console", [io.StringIO(), None])
def test_no_progress_line_off_a_terminal(console: io.StringIO | None) -> None:
    logs.configure(None, console)
    clock = Clock()
    progress = logs.Progress("scanning buckets", 10, clock=clock)
    clock.now = 105.0
    progress.advance(10)
    progress.close()
    assert console is None or console.getvalue() == ""


def test_json_console_gets_no_progress_line() -> None:
    out = Terminal()
    logs.configure(None, out, console_json=True)
    clock = Clock()
    progress = logs.Progress("scanning buckets", 10, clock=clock)
    clock.now = 105.0
    progress.advance(10)
    assert out.getvalue() == ""
