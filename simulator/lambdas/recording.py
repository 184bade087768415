"""Finished invocations -> journal rows: each outcome decided once (done, retry, dead letter),
committed in batches, a failed commit retried as it is.

Deciding has effects (a destination record written, lines to log), so a batch whose commit
failed (disk full, state folder gone) is never decided again and its handlers never re-run;
until it is committed its deliveries stay pending in the journal, so a crash meanwhile loses
nothing. Used by the scheduler thread only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from simulator.core import retry
from simulator.core.arn import FunctionArn
from simulator.core.config import AsyncConfig, Config
from simulator.lambdas.invoker import Invocation
from simulator.lambdas.outcomes import Outcomes
from simulator.store.journal import (
    Delivery,
    Finished,
    Journal,
    NewDelivery,
    Outcome,
    Rescheduled,
)

log = structlog.get_logger("s3sim")
RETRY_COMMIT_S = 1.0  # after a failed commit


@dataclass(frozen=True)
class Completion:
    delivery: Delivery
    invocation: Invocation
    forced: retry.GiveUp | None = None  # given up without running (throttled past its age)


@dataclass
class Batch:
    outcomes: list[Outcome] = field(default_factory=list)
    follow_ups: list[NewDelivery] = field(default_factory=list)  # on_success/on_failure invokes
    retries: list[tuple[float, int, str]] = field(default_factory=list)  # (due_s, id, function)
    lines: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Committed:
    """What the scheduler queues once outcomes are in the journal."""

    retries: list[tuple[float, int, str]] = field(default_factory=list)
    ready: list[tuple[int, str]] = field(default_factory=list)  # new follow-up deliveries


class Recorder:
    def __init__(
        self,
        journal: Journal,
        config: Callable[[], Config],
        outcomes: Outcomes,
        clock: Callable[[], float],
    ) -> None:
        self._journal, self._config, self._clock = journal, config, clock
        self._outcomes = outcomes
        self._unrecorded: deque[Batch] = deque()
        self._retry_at = 0.0  # monotonic time of the next commit try after a failure

    def pending(self) -> bool:
        return bool(self._unrecorded)

    def wait_s(self) -> float:
        """How long the scheduler may sleep before the next commit try (pending only)."""
        return max(0.0, min(self._retry_at - time.monotonic(), RETRY_COMMIT_S))

    def record(self, completions: list[Completion]) -> Committed:
        if completions:
            self._unrecorded.append(self._decide(completions))
        return self._commit()

    def _decide(self, completions: list[Completion]) -> Batch:
        config, now = self._config(), self._clock()
        batch = Batch()
        for c in completions:
            outcome = self._outcome(config, c, now, batch.follow_ups)
            batch.outcomes.append(outcome)
            if isinstance(outcome, Rescheduled):
                batch.retries.append((outcome.due_s, c.delivery.id, c.delivery.function))
        batch.lines = self._outcomes.take_lines()
        return batch

    def _commit(self) -> Committed:
        """Commit decided batches in order; a failure is logged and retried later."""
        done = Committed()
        while self._unrecorded and time.monotonic() >= self._retry_at:
            batch = self._unrecorded[0]
            try:
                with self._journal.transaction() as db:
                    for outcome in batch.outcomes:
                        Journal.record(db, outcome)
                    ready = [(Journal.insert(db, f), f.function) for f in batch.follow_ups]
            except Exception as exc:
                self._retry_at = time.monotonic() + RETRY_COMMIT_S
                log.error(
                    "journal.write_failed",
                    error=str(exc),
                    outcomes=len(batch.outcomes),
                    action="retrying in 1 s; the events stay pending until recorded",
                )
                break
            self._unrecorded.popleft()
            Outcomes.emit(batch.lines)
            done.retries += batch.retries
            done.ready += ready
        return done

    def _outcome(
        self, config: Config, c: Completion, now: float, follow_ups: list[NewDelivery]
    ) -> Outcome:
        d, inv = c.delivery, c.invocation
        attempts = d.attempts + (0 if c.forced else 1)
        fn = config.functions.get(d.function)
        cfg = fn.async_config(FunctionArn.parse(d.target).qualifier) if fn else None
        if inv.result.ok:
            if cfg is not None:
                self._outcomes.succeeded(cfg, d, inv, attempts, follow_ups)
            return Finished(
                delivery_id=d.id,
                state="done",
                attempts=attempts,
                version=inv.version,
                finished_s=now,
                response=inv.result.payload,
            )
        decision = c.forced or _decision(config, cfg, d, attempts, now)
        error = _error_text(inv.result.payload)
        if isinstance(decision, retry.RetryAt):
            self._outcomes.log(
                "warning",
                "retry.scheduled",
                request_id=d.request_id,
                function=d.function,
                attempt=attempts + 1,
                delay_s=round(decision.delay_s, 3),
                error_type=inv.result.error_type,
            )
            return Rescheduled(
                delivery_id=d.id,
                attempts=attempts,
                due_s=decision.due_s,
                version=inv.version,
                error=error,
                response=inv.result.payload,
            )
        self._outcomes.dead(cfg, d, inv, decision.condition, attempts, follow_ups)
        return Finished(
            delivery_id=d.id,
            state="dead",
            attempts=attempts,
            version=inv.version,
            finished_s=now,
            condition=decision.condition,
            error=error,
            response=inv.result.payload,
        )


def _decision(
    config: Config, cfg: AsyncConfig | None, d: Delivery, attempts: int, now: float
) -> retry.Decision:
    if cfg is None:  # the function is gone from the config: nothing to retry into
        return retry.GiveUp("RetriesExhausted")
    return retry.after_failure(
        attempts, cfg.retries, d.accepted_s, now, cfg.max_event_age_s, config.settings.time_scale
    )


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"{payload.get('errorType', '')}: {payload.get('errorMessage', '')}"
    return str(payload)
