"""Asynchronous delivery: the scheduler thread and its invocation threads.

Journal rows are the truth; memory holds only ids. The scheduler thread is the one place
that decides what runs next (per-function concurrency, throttling), records outcomes (in
batches, one transaction per pass) and turns failures into retries or dead letters. Retries
are rows with a due time, never sleeping threads.

Chaos (settings duplicate_fraction / reorder_window_ms): a duplicated event is queued a second
time under its negated id; the copy runs with the same request id and records nothing.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from simulator.core import retry
from simulator.core.arn import FunctionArn
from simulator.core.config import Config
from simulator.lambdas.environment import Result
from simulator.lambdas.invoker import Invocation, Invoker
from simulator.lambdas.outcomes import Outcomes
from simulator.store.journal import FINISH_SQL, RESCHEDULE_SQL, Delivery, Journal, NewDelivery

log = structlog.get_logger("s3sim")
THROTTLE_BACKOFF_S = (1.0, 300.0)  # Lambda: 1 s, doubling, at most 5 minutes
THROTTLED = "TooManyRequestsException"
RECORD_BATCH = 64  # outcomes recorded per transaction, at most RECORD_DELAY_S after the first
RECORD_DELAY_S = 0.02

Completion = tuple[Delivery, Invocation, "retry.GiveUp | None"]


@dataclass
class _Queues:
    ready: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    delayed: list[tuple[float, int, str]] = field(default_factory=list)  # heap by due time
    inflight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    completions: list[Completion] = field(default_factory=list)
    throttled: set[str] = field(default_factory=set)  # functions now at their cap
    backoffs: dict[int, int] = field(default_factory=dict)  # id -> throttles so far
    first_completion: float = 0.0  # monotonic time the oldest unrecorded outcome arrived
    unrecorded: deque[_Batch] = field(default_factory=deque)  # decided, not yet committed
    record_retry_at: float = 0.0  # monotonic time of the next commit try after a failure


@dataclass
class _Batch:
    """Outcomes decided once and committed as one transaction. Deciding has effects (a
    destination record written, lines to log), so a failed commit is retried as it is,
    never decided again and never re-run."""

    updates: list[tuple[str, tuple[Any, ...]]]
    follow_ups: list[NewDelivery]
    dues: list[tuple[float, int, str]]
    lines: list[tuple[str, str, dict[str, Any]]]


class Deliverer:
    def __init__(
        self,
        journal: Journal,
        invoker: Invoker,
        config: Callable[[], Config],
        buckets_dir: Path,
        clock: Callable[[], float] = time.time,
        tick: Callable[[], None] | None = None,
        rng: random.Random | None = None,
        max_threads: int = 64,
    ) -> None:
        self._journal, self._invoker, self._config = journal, invoker, config
        self._clock, self._tick = clock, tick
        self._rng = rng or random.Random()
        self._outcomes = Outcomes(buckets_dir, clock)
        self._q = _Queues()
        self._cond = threading.Condition()
        self._stopping = False
        self._last_tick = 0.0
        self._executor = ThreadPoolExecutor(max_threads, thread_name_prefix="s3sim-invoke")
        self._thread = threading.Thread(target=self._loop, name="s3sim-scheduler", daemon=True)

    @property
    def dead_lettered(self) -> int:
        return self._outcomes.dead_lettered

    # -- owner's interface -------------------------------------------------------------------
    def start(self) -> None:
        now = self._clock()
        for delivery_id, function, due_s in self._journal.open_deliveries():
            self._enqueue(delivery_id, function, due_s, now)
        self._thread.start()

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop dispatching, let in-flight invocations finish (bounded), record their outcomes.

        Whatever is still running after the grace period stays pending in the journal and
        runs again on the next start (at least once).
        """
        deadline = time.monotonic() + grace_s
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            while sum(self._q.inflight.values()) and time.monotonic() < deadline:
                self._cond.wait(0.05)
                self._record(self._take_completions())
            self._record(self._take_completions())
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, items: list[tuple[int, str]]) -> None:
        """Deliveries just committed to the journal: (id, function), due now."""
        settings = self._config().settings
        now = self._clock()
        with self._cond:
            for delivery_id, function in items:
                self._chaos(
                    delivery_id,
                    function,
                    settings.reorder_window_ms,
                    settings.duplicate_fraction,
                    now,
                )
            if not self._stopping:
                self._dispatch()  # straight to a free slot: no wait for the scheduler thread
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not (
                any(self._q.ready.values())
                or self._q.delayed
                or any(self._q.inflight.values())
                or self._q.completions
                or self._q.unrecorded
            )

    def inflight(self) -> dict[str, int]:
        with self._cond:
            return {f: n for f, n in self._q.inflight.items() if n}

    # -- queues (callers hold the condition) ---------------------------------------------------
    def _enqueue(self, delivery_id: int, function: str, due_s: float, now: float) -> None:
        if due_s <= now:
            self._q.ready[function].append(delivery_id)
        else:
            heapq.heappush(self._q.delayed, (due_s, delivery_id, function))

    def _chaos(
        self, delivery_id: int, function: str, window_ms: int, duplicate: float, now: float
    ) -> None:
        delay_s = self._rng.uniform(0, window_ms / 1000) if window_ms else 0.0
        if delay_s:
            log.info(
                "delivery.delayed",
                delivery_id=delivery_id,
                function=function,
                delay_ms=round(delay_s * 1000, 1),
            )
        self._enqueue(delivery_id, function, now + delay_s, now)
        if duplicate and self._rng.random() < duplicate:
            log.info("delivery.duplicated", delivery_id=delivery_id, function=function)
            self._enqueue(-delivery_id, function, now + delay_s, now)

    # -- scheduler thread --------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping:
            try:
                self._pass()
            except Exception:  # the scheduler thread never dies: log, and go on next pass
                log.exception("scheduler.error", action="continuing")
                with self._cond:
                    self._cond.wait(0.1)  # a fault that persists must not spin the loop

    def _pass(self) -> None:
        with self._cond:
            if self._stopping:
                return
            self._cond.wait(self._wait_s())
            completions = self._take_completions()
            self._promote_due(self._clock())
        self._record(completions)
        with self._cond:
            if not self._stopping:
                self._dispatch()
        self._maybe_tick()

    def _maybe_tick(self) -> None:
        now = time.monotonic()
        if self._tick is not None and now - self._last_tick >= 1.0:
            self._last_tick = now
            try:
                self._tick()
            except Exception:
                log.exception("scheduler.tick_failed")

    def _wait_s(self) -> float:
        if self._q.unrecorded:  # a journal write failed (disk full?): try again soon
            return max(0.0, min(self._q.record_retry_at - time.monotonic(), 1.0))
        if self._dispatchable() or len(self._q.completions) >= RECORD_BATCH:
            return 0
        if self._q.completions:  # record in batches: one transaction per many outcomes
            return max(0.0, self._q.first_completion + RECORD_DELAY_S - time.monotonic())
        if self._q.delayed:
            return max(0.0, min(self._q.delayed[0][0] - self._clock(), 1.0))
        return 1.0

    def _dispatchable(self) -> bool:
        return any(
            q and self._q.inflight[f] < max(self._cap(f), 1) for f, q in self._q.ready.items()
        )

    def _take_completions(self) -> list[Completion]:
        taken, self._q.completions = self._q.completions, []
        return taken

    def _promote_due(self, now: float) -> None:
        while self._q.delayed and self._q.delayed[0][0] <= now:
            _, delivery_id, function = heapq.heappop(self._q.delayed)
            self._q.ready[function].append(delivery_id)

    def _cap(self, function: str) -> int:
        config = self._config()
        fn = config.functions.get(function)
        if fn is not None and fn.reserved_concurrency is not None:
            return fn.reserved_concurrency
        return config.settings.concurrency

    def _dispatch(self) -> None:
        for function, queue in self._q.ready.items():
            cap = self._cap(function)
            if cap == 0:  # reserved concurrency 0: straight to the failure destination
                while queue:
                    self._give_up_unrun(queue.popleft(), function, "RetriesExhausted")
                continue
            while queue and self._q.inflight[function] < cap:
                delivery_id = queue.popleft()
                self._q.inflight[function] += 1
                self._executor.submit(self._run, delivery_id, function)
            self._throttle(function, queue, cap)

    def _throttle(self, function: str, queue: deque[int], cap: int) -> None:
        """Events beyond the cap: wait their turn (logged once per episode) or, in `backoff`
        mode, go back on the queue with Lambda's throttle backoff, within the event age."""
        if not queue:
            self._q.throttled.discard(function)
            return
        config = self._config()
        if config.settings.throttle == "wait":
            if function not in self._q.throttled:
                self._q.throttled.add(function)
                log.info(
                    "invoke.throttled",
                    function=function,
                    queued=len(queue),
                    cap=cap,
                    reason="ReservedFunctionConcurrentInvocationLimitExceeded",
                )
            return
        now = self._clock()
        while queue:
            delivery_id = queue.popleft()
            count = self._q.backoffs.get(abs(delivery_id), 0)
            self._q.backoffs[abs(delivery_id)] = count + 1
            low, high = THROTTLE_BACKOFF_S
            delay_s = min(low * 2**count, high) * config.settings.time_scale
            if self._past_event_age(config, delivery_id, now + delay_s):
                self._give_up_unrun(delivery_id, function, "EventAgeExceeded")
                continue
            log.info(
                "invoke.throttled",
                function=function,
                delivery_id=delivery_id,
                throttles=count + 1,
                retry_in_s=round(delay_s, 3),
            )
            heapq.heappush(self._q.delayed, (now + delay_s, delivery_id, function))

    def _past_event_age(self, config: Config, delivery_id: int, at_s: float) -> bool:
        if delivery_id < 0:
            return False
        d = self._journal.load(delivery_id)
        fn = config.functions.get(d.function)
        if fn is None:
            return False
        max_age_s = fn.async_config(FunctionArn.parse(d.target).qualifier).max_event_age_s
        return at_s - d.accepted_s > max_age_s * config.settings.time_scale

    def _give_up_unrun(self, delivery_id: int, function: str, condition: str) -> None:
        if delivery_id < 0:
            return  # a chaos duplicate that never ran has nothing to record
        delivery = self._journal.load(delivery_id)
        payload = {
            "errorType": THROTTLED,
            "errorMessage": "Rate Exceeded.",
            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        }
        invocation = Invocation(
            delivery.request_id,
            delivery.target,
            function,
            None,
            None,
            Result(False, payload, THROTTLED, 0.0, 0, None),
            False,
        )
        forced = retry.GiveUp(
            "EventAgeExceeded" if condition == "EventAgeExceeded" else "RetriesExhausted"
        )
        self._complete((delivery, invocation, forced))

    # -- invocation threads ------------------------------------------------------------------
    def _run(self, job: int, function: str) -> None:
        """Run `job`, then keep taking this function's next ready job while there is one:
        a slot goes straight on to the next event instead of waiting for the scheduler."""
        next_job: int | None = job
        while next_job is not None:
            job = next_job
            delivery, invocation = self._invoke(job)
            with self._cond:
                if job > 0 and delivery is not None and invocation is not None:
                    self._complete((delivery, invocation, None))
                elif job > 0:  # could not even run: try again shortly
                    heapq.heappush(self._q.delayed, (self._clock() + 1.0, job, function))
                next_job = self._next_for(function)
                if next_job is None:  # a slot is free: the scheduler may have work for it
                    self._q.inflight[function] -= 1
                    self._cond.notify_all()
                elif len(self._q.completions) >= RECORD_BATCH:
                    self._cond.notify_all()

    def _complete(self, completion: Completion) -> None:
        if not self._q.completions:
            self._q.first_completion = time.monotonic()
        self._q.completions.append(completion)

    def _next_for(self, function: str) -> int | None:
        """The next ready job of `function` for a slot that just finished (caller holds the
        condition; the slot stays counted as in flight)."""
        queue = self._q.ready.get(function)
        if self._stopping or not queue or self._q.inflight[function] > self._cap(function):
            return None
        return queue.popleft()

    def _invoke(self, job: int) -> tuple[Delivery | None, Invocation | None]:
        try:
            delivery = self._journal.load(abs(job))
            return delivery, self._invoker.invoke(
                self._config(),
                FunctionArn.parse(delivery.target),
                delivery.payload,
                delivery.request_id,
                attempt=delivery.attempts + 1,
                bucket=delivery.bucket,
                key=delivery.key,
                duplicate=job < 0,
            )
        except Exception as exc:  # the invocation thread must always report back
            log.exception("invoke.crashed", delivery_id=abs(job), error=str(exc))
            return None, None

    # -- outcomes ----------------------------------------------------------------------------
    def _record(self, completions: list[Completion]) -> None:
        if completions:
            self._q.unrecorded.append(self._decide(completions))
        self._commit_decided()

    def _decide(self, completions: list[Completion]) -> _Batch:
        config, now = self._config(), self._clock()
        batch = _Batch([], [], [], [])
        for delivery, invocation, forced in completions:
            self._q.backoffs.pop(delivery.id, None)
            update, due = self._outcome(config, delivery, invocation, forced, now, batch.follow_ups)
            batch.updates.append(update)
            if due is not None:
                batch.dues.append((due, delivery.id, delivery.function))
        batch.lines = self._outcomes.take_lines()
        return batch

    def _commit_decided(self) -> None:
        """Commit decided outcomes in order. A failed write (disk full, state folder gone)
        is logged and retried a second later; until then the deliveries stay pending in the
        journal, so even a crash meanwhile loses nothing (they run again on the next start)."""
        while self._q.unrecorded and time.monotonic() >= self._q.record_retry_at:
            batch = self._q.unrecorded[0]
            try:
                with self._journal.transaction() as db:
                    for sql, args in batch.updates:
                        db.execute(sql, args)
                    new_ids = [(Journal.insert(db, f), f.function) for f in batch.follow_ups]
            except Exception as exc:
                self._q.record_retry_at = time.monotonic() + 1.0
                log.error(
                    "journal.write_failed",
                    error=str(exc),
                    outcomes=len(batch.updates),
                    action="retrying in 1 s; the events stay pending until recorded",
                )
                return
            self._q.unrecorded.popleft()
            Outcomes.emit(batch.lines)
            with self._cond:
                for due in batch.dues:
                    heapq.heappush(self._q.delayed, due)
                for delivery_id, function in new_ids:
                    self._q.ready[function].append(delivery_id)

    def _outcome(
        self,
        config: Config,
        d: Delivery,
        inv: Invocation,
        forced: retry.GiveUp | None,
        now: float,
        follow_ups: list[NewDelivery],
    ) -> tuple[tuple[str, tuple[Any, ...]], float | None]:
        attempts = d.attempts + (0 if forced else 1)
        fn = config.functions.get(d.function)
        cfg = fn.async_config(FunctionArn.parse(d.target).qualifier) if fn else None
        if inv.result.ok:
            if cfg is not None:
                self._outcomes.succeeded(cfg, d, inv, attempts, follow_ups)
            return (FINISH_SQL, ("done", attempts, None, None, inv.version, now, d.id)), None
        error = _error_text(inv.result.payload)
        decision: retry.Decision = forced or (
            retry.GiveUp("RetriesExhausted")
            if cfg is None
            else retry.after_failure(
                attempts,
                cfg.retries,
                d.accepted_s,
                now,
                cfg.max_event_age_s,
                config.settings.time_scale,
            )
        )
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
            return (
                RESCHEDULE_SQL,
                (attempts, decision.due_s, error, inv.version, d.id),
            ), decision.due_s
        self._outcomes.dead(cfg, d, inv, decision.condition, attempts, follow_ups)
        return (
            FINISH_SQL,
            ("dead", attempts, decision.condition, error, inv.version, now, d.id),
        ), None


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"{payload.get('errorType', '')}: {payload.get('errorMessage', '')}"
    return str(payload)
