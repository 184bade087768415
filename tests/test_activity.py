"""simulator.core.activity: invocations built from delivery rows and log events (pure), and
the journal column it reads the result from."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from simulator.core import activity
from simulator.core.activity import Attempt, LambdaError
from simulator.store.journal import Finished, Journal, NewDelivery, Rescheduled

ARN = "arn:aws:lambda:us-east-1:123456789012:function"
RID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 7,
        "request_id": RID,
        "target": f"{ARN}:fn:prod",
        "function": "fn",
        "bucket": "uploads",
        "key": "a.txt",
        "payload": {"Records": []},
        "state": "done",
        "condition": None,
        "last_error": None,
        "executed_version": "2",
        "response": {"ok": 1},
    }
    return {**base, **overrides}


def ev(name: str, **fields: Any) -> dict[str, Any]:
    return {"event": name, "request_id": RID, **fields}


RETRIED = [
    ev("alias.resolved", version="2", alias="prod"),
    ev("invoke.init_start", version="2", runtime="python:3.11.v7"),
    ev("function.log", version="2", message="init"),
    ev("invoke.start", version="2"),
    ev("function.log", version="2", message="[ERROR] ValueError: no"),
    ev("invoke.failed", version="2", error_type="ValueError", error="no"),
    ev("invoke.report", version="2", duration_ms=1.5, init_ms=9.25, status="ValueError"),
    {"event": "function.log", "request_id": "another", "message": "not ours"},
    ev("retry.scheduled", attempt=1),
    ev("alias.resolved", version="1", alias="prod"),
    ev("invoke.start", version="1"),
    ev("function.log", version="1", message="fine"),
    ev("invoke.report", version="1", duration_ms=0.75, status="success"),
]


def test_each_report_closes_an_attempt_with_the_lines_logged_since_its_start() -> None:
    (inv,) = activity.build([row()], RETRIED)
    assert inv.attempts == (
        Attempt("2", "ValueError", 1.5, 9.25, "no", ("init", "[ERROR] ValueError: no")),
        Attempt("1", "success", 0.75, None, None, ("fine",)),
    )
    assert [a.cold for a in inv.attempts] == [True, False]
    assert inv.logs == ("init", "[ERROR] ValueError: no", "fine")
    assert (inv.ok, inv.result, inv.error, inv.alias) == (True, {"ok": 1}, None, "prod")
    assert len(inv.events) == 12  # its own events only


def test_an_alias_that_did_not_resolve_is_one_failed_attempt_without_a_version() -> None:
    events = [
        ev(
            "invoke.failed",
            arn=f"{ARN}:fn:gone",
            error_type="ResourceNotFoundException",
            error=f"Function not found: {ARN}:fn:gone",
        )
    ]
    payload = {
        "errorType": "ResourceNotFoundException",
        "errorMessage": f"Function not found: {ARN}:fn:gone",
    }
    (inv,) = activity.build(
        [
            row(
                target=f"{ARN}:fn:gone",
                state="dead",
                condition="RetriesExhausted",
                executed_version=None,
                response=payload,
            )
        ],
        events,
    )
    assert inv.attempts == (
        Attempt(
            None,
            "ResourceNotFoundException",
            error=f"Function not found: {ARN}:fn:gone",
        ),
    )
    assert (inv.dead_letter, inv.result) == (True, None)
    assert inv.error == LambdaError(
        "ResourceNotFoundException", f"Function not found: {ARN}:fn:gone"
    )


def test_an_error_without_a_payload_comes_from_the_journal_text() -> None:
    (inv,) = activity.build(
        [row(state="dead", response=None, last_error="Sandbox.Timedout: Task timed out")], []
    )
    assert inv.error == LambdaError("Sandbox.Timedout", "Task timed out")


def test_versions_and_unqualified_targets_have_no_alias() -> None:
    targets = [f"{ARN}:fn", f"{ARN}:fn:3", f"{ARN}:fn:$LATEST", f"{ARN}:fn:live"]
    built = activity.build([row(target=t) for t in targets], [])
    assert [i.alias for i in built] == [None, None, None, "live"]


def test_only_names_what_ran_when_it_does_not_find_exactly_one() -> None:
    run = activity.Activity(activity.build([row(), row(id=8, key="b.txt")], []))
    assert run.only(key="b.txt").delivery_id == 8
    try:
        run.only(function="fn")
    except AssertionError as exc:
        assert str(exc) == (
            "expected one invocation, found 2; ran: "
            "['fn s3://uploads/a.txt (done)', 'fn s3://uploads/b.txt (done)']"
        )
    else:
        raise AssertionError("only() accepted two")


def test_the_journal_keeps_the_last_response_and_adds_the_column_to_older_journals(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as db:  # a journal written before the column existed
        db.execute(
            "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, "
            "target TEXT NOT NULL, function TEXT NOT NULL, bucket TEXT NOT NULL DEFAULT '', "
            "key TEXT NOT NULL DEFAULT '', payload TEXT NOT NULL, accepted_s REAL NOT NULL, "
            "attempts INTEGER NOT NULL DEFAULT 0, due_s REAL NOT NULL, "
            "state TEXT NOT NULL DEFAULT 'pending', condition TEXT, last_error TEXT, "
            "executed_version TEXT, finished_s REAL)"
        )
    journal = Journal(path)
    try:
        with journal.transaction() as db:
            first = Journal.insert(db, NewDelivery(RID, f"{ARN}:fn", "fn", "b", "k", {}, 1.0))
            second = Journal.insert(db, NewDelivery("r2", f"{ARN}:fn", "fn", "b", "k2", {}, 1.0))
            error = {"errorType": "ValueError", "errorMessage": "no"}
            Journal.record(
                db,
                Rescheduled(
                    delivery_id=first,
                    attempts=1,
                    due_s=2.0,
                    version="1",
                    error="ValueError: no",
                    response=error,
                ),
            )
            Journal.record(
                db,
                Finished(
                    delivery_id=second,
                    state="done",
                    attempts=1,
                    version="1",
                    finished_s=3.0,
                    response=[1, "two"],
                ),
            )
        assert [d.response for d in journal.since(0)] == [error, [1, "two"]]
        assert [d.id for d in journal.since(first)] == [second]
    finally:
        journal.close()


_LINE = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_ATTEMPT = st.builds(
    Attempt,
    version=st.sampled_from(["$LATEST", "1", "2"]),
    status=st.sampled_from(["success", "ValueError", "Sandbox.Timedout"]),
    duration_ms=st.floats(0, 1e4, allow_nan=False),
    init_ms=st.none() | st.floats(0, 1e4, allow_nan=False),
    error=st.none(),
    logs=st.lists(_LINE, max_size=4).map(tuple),
)


def _events_of(attempt: Attempt, noise: str) -> list[dict[str, Any]]:
    """The log events one attempt leaves, with another request's line in the middle."""
    v = attempt.version
    events = [ev("invoke.init_start", version=v)] if attempt.init_ms is not None else []
    events += [ev("invoke.start", version=v)]
    events += [ev("function.log", version=v, message=line) for line in attempt.logs]
    events += [{"event": "function.log", "request_id": "other", "message": noise}]
    if attempt.status != "success":
        events.append(ev("invoke.failed", version=v, error_type=attempt.status, error="e"))
    report = {"duration_ms": attempt.duration_ms, "status": attempt.status}
    if attempt.init_ms is not None:
        report["init_ms"] = attempt.init_ms
    return [*events, ev("invoke.report", version=v, **report)]


@given(st.lists(_ATTEMPT, max_size=4), _LINE)
def test_attempts_come_back_from_the_events_they_logged(
    attempts: list[Attempt], noise: str
) -> None:
    events = [e for a in attempts for e in _events_of(a, noise)]
    (inv,) = activity.build([row()], events)
    expected = [a if a.ok else dataclasses.replace(a, error="e") for a in attempts]
    assert list(inv.attempts) == expected
    assert inv.logs == tuple(line for a in attempts for line in a.logs)
