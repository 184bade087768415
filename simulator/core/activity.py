"""What happened in a run, as values: invocations of asynchronous events with their attempts,
result or error, and log lines (for the pytest plugin and scripts asserting on a run).

Built from two records the simulator keeps anyway: the journal's delivery rows (request id,
event, state, attempts, executed version, last response) and the log stream's events (one
`invoke.start` .. `invoke.report` per attempt, `function.log` lines between, each carrying
the request id). Pure: rows and events in, frozen values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.core.arn import FunctionArn, qualifier_kind

DEAD_LETTER_STATES = ("dead", "replayed")


@dataclass(frozen=True)
class LambdaError:
    """An error as Lambda reports it (`errorType`, `errorMessage`, `stackTrace`)."""

    type: str
    message: str
    stack_trace: tuple[str, ...] = ()

    @classmethod
    def from_payload(cls, payload: Any, fallback: str | None = None) -> LambdaError | None:
        if isinstance(payload, Mapping) and "errorType" in payload:
            trace = payload.get("stackTrace") or ()
            return cls(
                str(payload["errorType"]),
                str(payload.get("errorMessage", "")),
                tuple(str(line) for line in trace) if isinstance(trace, list) else (),
            )
        if fallback:  # the journal's "Type: message" text
            kind, _, message = fallback.partition(": ")
            return cls(kind, message)
        return None


@dataclass(frozen=True)
class Attempt:
    """One run of the handler for an event (a retry is another attempt, same request id)."""

    version: str | None  # the executed version
    status: str  # "success", or the error type (Sandbox.Timedout, ValueError, ...)
    duration_ms: float | None = None
    init_ms: float | None = None  # set on a cold start
    error: str | None = None
    logs: tuple[str, ...] = ()  # what the handler printed, the runtime's lines included

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def cold(self) -> bool:
        return self.init_ms is not None


@dataclass(frozen=True)
class Invocation:
    """One asynchronous event delivered to a function: by an S3 notification, a Lambda
    Event invoke, a destination or a replay."""

    delivery_id: int
    request_id: str
    function: str
    target: str  # the ARN invoked: often an alias ARN
    alias: str | None
    executed_version: str | None
    bucket: str
    key: str
    event: Any
    state: str  # done | dead | replayed (a dead letter replayed since) | pending
    result: Any  # the handler's return value (when done)
    error: LambdaError | None  # the last attempt's error (a dead letter's cause)
    condition: str | None  # why it is a dead letter: RetriesExhausted | EventAgeExceeded
    attempts: tuple[Attempt, ...]
    events: tuple[Mapping[str, Any], ...] = field(repr=False, default=())  # its log events

    @property
    def ok(self) -> bool:
        return self.state == "done"

    @property
    def dead_letter(self) -> bool:
        return self.state in DEAD_LETTER_STATES

    @property
    def logs(self) -> tuple[str, ...]:
        """Every line the handler's environment wrote for this event, all attempts."""
        return tuple(line for attempt in self.attempts for line in attempt.logs)


@dataclass(frozen=True)
class Activity:
    """What happened over a period: its invocations (in the order they were accepted) and
    every log event of the period."""

    invocations: tuple[Invocation, ...]
    events: tuple[Mapping[str, Any], ...] = field(repr=False, default=())

    @property
    def dead_letters(self) -> tuple[Invocation, ...]:
        return tuple(i for i in self.invocations if i.dead_letter)

    def of(
        self, function: str | None = None, bucket: str | None = None, key: str | None = None
    ) -> tuple[Invocation, ...]:
        return tuple(
            i
            for i in self.invocations
            if (function is None or i.function == function)
            and (bucket is None or i.bucket == bucket)
            and (key is None or i.key == key)
        )

    def only(
        self, function: str | None = None, bucket: str | None = None, key: str | None = None
    ) -> Invocation:
        """The one invocation matching; anything else is an AssertionError saying what ran."""
        found = self.of(function, bucket, key)
        if len(found) != 1:
            seen = [f"{i.function} s3://{i.bucket}/{i.key} ({i.state})" for i in self.invocations]
            raise AssertionError(f"expected one invocation, found {len(found)}; ran: {seen}")
        return found[0]

    def named(self, event: str) -> tuple[Mapping[str, Any], ...]:
        """The period's log events of one name (`config.reloaded`, `retry.scheduled`, ...)."""
        return tuple(e for e in self.events if e.get("event") == event)


def build(
    deliveries: Iterable[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]
) -> tuple[Invocation, ...]:
    """Invocations from delivery rows (the journal's columns by name) and the log events."""
    by_request: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        rid = event.get("request_id")
        if isinstance(rid, str):
            by_request.setdefault(rid, []).append(event)
    return tuple(_invocation(row, by_request.get(str(row["request_id"]), [])) for row in deliveries)


def _invocation(row: Mapping[str, Any], events: list[Mapping[str, Any]]) -> Invocation:
    state, response = str(row["state"]), row.get("response")
    error = None if state == "done" else LambdaError.from_payload(response, row.get("last_error"))
    return Invocation(
        delivery_id=int(row["id"]),
        request_id=str(row["request_id"]),
        function=str(row["function"]),
        target=str(row["target"]),
        alias=_alias(str(row["target"])),
        executed_version=row.get("executed_version"),
        bucket=str(row.get("bucket") or ""),
        key=str(row.get("key") or ""),
        event=row.get("payload"),
        state=state,
        result=response if state == "done" else None,
        error=error,
        condition=row.get("condition"),
        attempts=attempts(events),
        events=tuple(events),
    )


def _alias(target: str) -> str | None:
    qualifier = FunctionArn.parse(target).qualifier
    return qualifier if qualifier_kind(qualifier) == "alias" else None


def attempts(events: Iterable[Mapping[str, Any]]) -> tuple[Attempt, ...]:
    """One attempt per `invoke.report` (or per `invoke.failed` that came before any start:
    an alias that did not resolve), with the output lines logged in between."""
    done: list[Attempt] = []
    current: dict[str, Any] | None = None
    for event in events:
        name = event.get("event")
        if name in ("invoke.init_start", "invoke.start") and current is None:
            current = {"version": event.get("version"), "logs": []}
        elif name == "function.log" and current is not None:
            current["logs"].append(str(event.get("message", "")))
        elif name == "invoke.failed":
            if current is None:  # failed before running: nothing follows
                done.append(_failed_early(event))
            else:
                current["error"] = event.get("error")
        elif name == "invoke.report" and current is not None:
            done.append(_finished(current, event))
            current = None
    return tuple(done)


def _failed_early(event: Mapping[str, Any]) -> Attempt:
    return Attempt(
        version=event.get("version"),
        status=str(event.get("error_type", "error")),
        error=event.get("error"),
    )


def _finished(current: dict[str, Any], report: Mapping[str, Any]) -> Attempt:
    return Attempt(
        version=report.get("version", current["version"]),
        status=str(report.get("status", "")),
        duration_ms=report.get("duration_ms"),
        init_ms=report.get("init_ms"),
        error=current.get("error"),
        logs=tuple(current["logs"]),
    )
