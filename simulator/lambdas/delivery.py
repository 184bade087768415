"""Asynchronous delivery: the scheduler thread and its invocation threads.

Journal rows are the truth; memory holds only jobs (delivery ids). The scheduler thread is
the one place that decides what runs next (per-function concurrency, throttling) and hands
finished invocations to the recorder (recording.py), which turns them into done rows,
retries or dead letters. Retries are rows with a due time, never sleeping threads.

Chaos (settings duplicate_fraction / reorder_window_ms): a duplicated event is queued a second
time as a duplicate job; the copy runs with the same request id and records nothing.
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

import structlog

from simulator.core import lambda_errors, lineage, retry
from simulator.core.arn import FunctionArn
from simulator.core.config import Config, Settings
from simulator.lambdas.environment import Result
from simulator.lambdas.invoker import Invocation, Invoker
from simulator.lambdas.outcomes import Outcomes
from simulator.lambdas.recording import Completion, Recorder
from simulator.store.journal import Delivery, Journal

log = structlog.get_logger("s3sim")
RECORD_BATCH = 64  # outcomes recorded per transaction, at most RECORD_DELAY_S after the first
RECORD_DELAY_S = 0.02
JOIN_S = 30.0  # the longest a stop waits for the scheduler thread's last pass


@dataclass(frozen=True, order=True)
class Job:
    """One run of a delivery. A duplicate (chaos) runs with the same request id and records
    nothing: the journal row belongs to the original."""

    delivery_id: int
    duplicate: bool = False


@dataclass
class _Queues:
    ready: dict[str, deque[Job]] = field(default_factory=lambda: defaultdict(deque))
    delayed: list[tuple[float, Job, str]] = field(default_factory=list)  # heap by due time
    inflight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    completions: list[Completion] = field(default_factory=list)
    throttled: set[str] = field(default_factory=set)  # functions now at their cap
    backoffs: dict[int, int] = field(default_factory=dict)  # delivery id -> throttles so far
    first_completion: float = 0.0  # monotonic time the oldest unrecorded outcome arrived


def chaos_plan(rng: random.Random, settings: Settings) -> tuple[float, bool]:
    """(hold-back delay in s, deliver twice?) for one fresh event, from the chaos settings."""
    window_ms, duplicate = settings.reorder_window_ms, settings.duplicate_fraction
    delay_s = rng.uniform(0, window_ms / 1000) if window_ms else 0.0
    return delay_s, bool(duplicate) and rng.random() < duplicate


class Deliverer:
    def __init__(
        self,
        journal: Journal,
        invoker: Invoker,
        config: Callable[[], Config],
        buckets_dir: Path,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        max_threads: int = 64,
    ) -> None:
        self._journal, self._invoker, self._config = journal, invoker, config
        self._clock = clock
        self._rng = rng or random.Random()
        self._outcomes = Outcomes(buckets_dir, clock)
        self._recorder = Recorder(journal, config, self._outcomes, clock)
        self._q = _Queues()
        self._cond = threading.Condition()
        self._stopping = False
        self._executor = ThreadPoolExecutor(max_threads, thread_name_prefix="s3sim-invoke")
        self._thread = threading.Thread(target=self._loop, name="s3sim-scheduler", daemon=True)
        # Told each throttle (function name), on the scheduler thread: deployments' conditions.
        self.on_throttle: Callable[[str], None] | None = None

    @property
    def dead_lettered(self) -> int:
        return self._outcomes.dead_lettered

    # -- owner's interface -------------------------------------------------------------------
    def start(self) -> None:
        now = self._clock()
        for delivery_id, function, due_s in self._journal.open_deliveries():
            self._enqueue(Job(delivery_id), function, due_s, now)
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
        self._thread.join(JOIN_S)
        if self._thread.is_alive():  # the recorder is its own: leave outcomes to the journal
            log.error("scheduler.stuck", action="stopping without it; pending events stay pending")
            self._executor.shutdown(wait=False, cancel_futures=True)
            return
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
                self._queue_fresh(Job(delivery_id), function, settings, now)
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
                or self._recorder.pending()
            )

    def inflight(self) -> dict[str, int]:
        with self._cond:
            return {f: n for f, n in self._q.inflight.items() if n}

    # -- queues (callers hold the condition) ---------------------------------------------------
    def _enqueue(self, job: Job, function: str, due_s: float, now: float) -> None:
        if due_s <= now:
            self._q.ready[function].append(job)
        else:
            heapq.heappush(self._q.delayed, (due_s, job, function))

    def _queue_fresh(self, job: Job, function: str, settings: Settings, now: float) -> None:
        delay_s, twice = chaos_plan(self._rng, settings)
        if delay_s:
            log.info(
                "delivery.delayed",
                delivery_id=job.delivery_id,
                function=function,
                delay_ms=round(delay_s * 1000, 1),
            )
        self._enqueue(job, function, now + delay_s, now)
        if twice:
            log.info("delivery.duplicated", delivery_id=job.delivery_id, function=function)
            self._enqueue(Job(job.delivery_id, duplicate=True), function, now + delay_s, now)

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

    def _wait_s(self) -> float:
        if self._recorder.pending():  # a journal write failed (disk full?): try again soon
            return self._recorder.wait_s()
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
            _, job, function = heapq.heappop(self._q.delayed)
            self._q.ready[function].append(job)

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
                    self._give_up_unrun(queue.popleft(), function, retry.GiveUp("RetriesExhausted"))
                continue
            while queue and self._q.inflight[function] < cap:
                job = queue.popleft()
                self._q.inflight[function] += 1
                self._executor.submit(self._run, job, function)
            self._throttle(function, queue, cap)

    def _throttle(self, function: str, queue: deque[Job], cap: int) -> None:
        """Events beyond the cap: wait their turn (logged once per episode) or, in `backoff`
        mode, go back on the queue with Lambda's throttle backoff, within the event age."""
        if not queue:
            self._q.throttled.discard(function)
            return
        config = self._config()
        if config.settings.throttle == "wait":
            if function not in self._q.throttled:
                self._q.throttled.add(function)
                self._tell_throttle(function)
                log.info(
                    "invoke.throttled",
                    function=function,
                    queued=len(queue),
                    cap=cap,
                    **self._throttle_cause(function, cap),
                )
            return
        now = self._clock()
        while queue:
            job = queue.popleft()
            count = self._q.backoffs.get(job.delivery_id, 0)
            self._q.backoffs[job.delivery_id] = count + 1
            delay_s = retry.throttle_delay_s(count, config.settings.time_scale)
            if self._past_event_age(config, job, now + delay_s):
                self._give_up_unrun(job, function, retry.GiveUp("EventAgeExceeded"))
                continue
            log.info(
                "invoke.throttled",
                function=function,
                delivery_id=job.delivery_id,
                throttles=count + 1,
                retry_in_s=round(delay_s, 3),
                **self._throttle_cause(function, cap),
            )
            heapq.heappush(self._q.delayed, (now + delay_s, job, function))
            self._tell_throttle(function)

    def _tell_throttle(self, function: str) -> None:
        if self.on_throttle is None:
            return
        try:
            self.on_throttle(function)
        except Exception:  # the scheduler goes on whatever the listener does
            log.exception("invoke.throttle_listener_failed", function=function)

    def _throttle_cause(self, function: str, cap: int) -> dict[str, str]:
        """Lambda's reason, and the setting that raises the cap: the function's reserved
        concurrency if it has one, else the simulator's own cap (which stands in for the
        account's concurrency limit)."""
        fn = self._config().functions.get(function)
        if fn is not None and fn.reserved_concurrency is not None:
            return {
                "reason": lambda_errors.THROTTLED_REASON,
                "cause": f"functions.{function}.reserved_concurrency is {cap}",
            }
        return {
            "reason": lambda_errors.ACCOUNT_THROTTLED_REASON,
            "cause": f"the simulator runs at most {cap} invocations of a function at once; "
            "simulator.concurrency in config.yaml raises it",
        }

    def _past_event_age(self, config: Config, job: Job, at_s: float) -> bool:
        if job.duplicate:
            return False
        d = self._journal.load(job.delivery_id)
        fn = config.functions.get(d.function)
        if fn is None:
            return False
        max_age_s = fn.async_config(FunctionArn.parse(d.target).qualifier).max_event_age_s
        return at_s - d.accepted_s > max_age_s * config.settings.time_scale

    def _give_up_unrun(self, job: Job, function: str, why: retry.GiveUp) -> None:
        if job.duplicate:
            return  # a chaos duplicate that never ran has nothing to record
        payload = {
            "errorType": lambda_errors.THROTTLED,
            "errorMessage": "Rate Exceeded.",
            "Reason": lambda_errors.THROTTLED_REASON,
        }
        self._complete(_unrun(self._journal.load(job.delivery_id), function, payload, why))

    # -- invocation threads ------------------------------------------------------------------
    def _run(self, job: Job, function: str) -> None:
        """Run `job`, then keep taking this function's next ready job while there is one:
        a slot goes straight on to the next event instead of waiting for the scheduler."""
        next_job: Job | None = job
        while next_job is not None:
            job = next_job
            completion = self._invoke(job)
            with self._cond:
                if job.duplicate:
                    pass  # its outcome belongs to the original's row
                elif completion is not None:
                    self._complete(completion)
                else:  # could not even run: try again shortly
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

    def _next_for(self, function: str) -> Job | None:
        """The next ready job of `function` for a slot that just finished (caller holds the
        condition; the slot stays counted as in flight)."""
        queue = self._q.ready.get(function)
        if self._stopping or not queue or self._q.inflight[function] > self._cap(function):
            return None
        return queue.popleft()

    def _invoke(self, job: Job) -> Completion | None:
        try:
            delivery = self._journal.load(job.delivery_id)
            config, arn = self._config(), FunctionArn.parse(delivery.target)
            chain = lineage.next_invocation(config, arn, delivery.lineage)
            if chain.stopped:
                # a chaos duplicate is not run either, and the original says why
                return None if job.duplicate else _stop_loop(delivery, arn, chain)
            return Completion(
                delivery,
                self._invoker.invoke(
                    config,
                    arn,
                    delivery.payload,
                    delivery.request_id,
                    chain.lineage,
                    attempt=delivery.attempts + 1,
                    bucket=delivery.bucket,
                    key=delivery.key,
                    duplicate=job.duplicate,
                ),
            )
        except Exception as exc:  # the invocation thread must always report back
            log.exception("invoke.crashed", delivery_id=job.delivery_id, error=str(exc))
            return None

    # -- outcomes ----------------------------------------------------------------------------
    def _record(self, completions: list[Completion]) -> None:
        for c in completions:
            self._q.backoffs.pop(c.delivery.id, None)
        committed = self._recorder.record(completions)
        with self._cond:
            for due in committed.retries:
                due_s, delivery_id, function = due
                heapq.heappush(self._q.delayed, (due_s, Job(delivery_id), function))
            for delivery_id, function in committed.ready:
                self._q.ready[function].append(Job(delivery_id))


def _unrun(
    delivery: Delivery, function: str, payload: dict[str, str], why: retry.GiveUp
) -> Completion:
    """The outcome of a delivery given up without running: `payload` is what its failure
    record carries."""
    invocation = Invocation(
        request_id=delivery.request_id,
        invoked=delivery.target,
        function=function,
        result=Result.failed(payload),
    )
    return Completion(delivery, invocation, why)


def _stop_loop(delivery: Delivery, arn: FunctionArn, chain: lineage.Step) -> Completion:
    """Lambda stops the invocation that would continue a recursive chain and sends the event
    to the failure destination; the log names the function, the rule and the chain."""
    records = delivery.payload.get("Records") or [{}]
    log.error(
        "invoke.recursive_loop",
        request_id=delivery.request_id,
        function=arn.function,
        rule=records[0].get("s3", {}).get("configurationId", ""),
        bucket=delivery.bucket,
        key=delivery.key,
        invocations=chain.count,
        lineage=chain.lineage,
        action="not run; recorded as a dead letter (set recursive_loop: Allow to let it run)",
    )
    payload = {
        "errorType": lambda_errors.RECURSIVE_INVOCATION,
        "errorMessage": lambda_errors.RECURSIVE_INVOCATION_MESSAGE,
    }
    return _unrun(delivery, arn.function, payload, retry.GiveUp("RecursiveInvocationDetected"))
