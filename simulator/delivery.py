"""Asynchronous delivery: the scheduler thread and its invocation threads.

Journal rows are the truth; memory holds only ids. The scheduler thread is the one place
that decides what runs next (per-function concurrency), records outcomes (in batches, one
transaction per pass) and turns failures into retries or dead letters. Retries are rows with
a due time, never sleeping threads.
"""

from __future__ import annotations

import heapq
import os
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from simulator import destinations, retry
from simulator.arn import FunctionArn
from simulator.config import Config, Function
from simulator.errors import ArnError
from simulator.invoker import Invocation, Invoker
from simulator.journal import FINISH_SQL, RESCHEDULE_SQL, Delivery, Journal, NewDelivery

log = structlog.get_logger("s3sim")


@dataclass
class _Queues:
    ready: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    delayed: list[tuple[float, int, str]] = field(default_factory=list)  # heap by due time
    inflight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    completions: list[tuple[Delivery, Invocation]] = field(default_factory=list)


class Deliverer:
    def __init__(self, journal: Journal, invoker: Invoker, config: Callable[[], Config],
                 buckets_dir: Path, clock: Callable[[], float] = time.time,
                 max_threads: int = 64) -> None:
        self._journal, self._invoker, self._config = journal, invoker, config
        self._buckets_dir, self._clock = buckets_dir, clock
        self._q = _Queues()
        self._cond = threading.Condition()
        self._stopping = False
        self._executor = ThreadPoolExecutor(max_threads, thread_name_prefix="s3sim-invoke")
        self._thread = threading.Thread(target=self._loop, name="s3sim-scheduler", daemon=True)
        self.dead_lettered = 0

    # -- owner's interface -------------------------------------------------------------------
    def start(self) -> None:
        now = self._clock()
        for delivery_id, function, due_s in self._journal.open_deliveries():
            self._enqueue(delivery_id, function, due_s, now)
        self._thread.start()

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop dispatching, let in-flight invocations finish (bounded), record their outcomes."""
        deadline = time.monotonic() + grace_s
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            while sum(self._q.inflight.values()) and time.monotonic() < deadline:
                self._cond.wait(0.05)
                self._record(self._take_completions())
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, items: list[tuple[int, str]]) -> None:
        """Deliveries just committed to the journal: (id, function), due now."""
        with self._cond:
            for delivery_id, function in items:
                self._q.ready[function].append(delivery_id)
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not (any(self._q.ready.values()) or self._q.delayed
                        or any(self._q.inflight.values()) or self._q.completions)

    # -- scheduler thread --------------------------------------------------------------------
    def _enqueue(self, delivery_id: int, function: str, due_s: float, now: float) -> None:
        if due_s <= now:
            self._q.ready[function].append(delivery_id)
        else:
            heapq.heappush(self._q.delayed, (due_s, delivery_id, function))

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(self._wait_s())
                completions = self._take_completions()
                self._promote_due(self._clock())
            try:
                self._record(completions)
            except Exception:  # a failed record must neither stop delivery nor lose events:
                log.exception("scheduler.error", action="re-running the affected deliveries")
                self._requeue(completions)  # at least once: they run again a second later
            with self._cond:
                if not self._stopping:
                    self._dispatch()

    def _wait_s(self) -> float:
        if self._q.completions or self._dispatchable():
            return 0
        if self._q.delayed:
            return max(0.0, min(self._q.delayed[0][0] - self._clock(), 1.0))
        return 1.0

    def _dispatchable(self) -> bool:
        return any(q and self._q.inflight[f] < self._cap(f) for f, q in self._q.ready.items())

    def _take_completions(self) -> list[tuple[Delivery, Invocation]]:
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
            while queue and self._q.inflight[function] < cap:
                delivery_id = queue.popleft()
                self._q.inflight[function] += 1
                self._executor.submit(self._run, delivery_id, function)

    # -- invocation threads ------------------------------------------------------------------
    def _run(self, delivery_id: int, function: str) -> None:
        delivery = None
        try:
            delivery = self._journal.load(delivery_id)
            invocation = self._invoke(delivery)
        except Exception as exc:  # the invocation thread must always report back
            log.exception("invoke.crashed", delivery_id=delivery_id, error=str(exc))
            invocation = None
        with self._cond:
            self._q.inflight[function] -= 1
            if delivery is not None and invocation is not None:
                self._q.completions.append((delivery, invocation))
            self._cond.notify_all()

    def _invoke(self, delivery: Delivery) -> Invocation:
        return self._invoker.invoke(
            self._config(), FunctionArn.parse(delivery.target), delivery.payload,
            delivery.request_id, attempt=delivery.attempts + 1, bucket=delivery.bucket,
            key=delivery.key)

    # -- outcomes ----------------------------------------------------------------------------
    def _record(self, completions: list[tuple[Delivery, Invocation]]) -> None:
        if not completions:
            return
        updates: list[tuple[str, tuple[Any, ...]]] = []
        follow_ups: list[NewDelivery] = []
        config, now = self._config(), self._clock()
        for delivery, invocation in completions:
            updates.append(self._outcome(config, delivery, invocation, now, follow_ups))
        with self._journal.transaction() as db:
            for sql, args in updates:
                db.execute(sql, args)
            new_ids = [(Journal.insert(db, f), f.function) for f in follow_ups]
        with self._cond:
            for delivery_id, function in new_ids:
                self._q.ready[function].append(delivery_id)

    def _requeue(self, completions: list[tuple[Delivery, Invocation]]) -> None:
        with self._cond:
            for delivery, _ in completions:
                heapq.heappush(self._q.delayed, (self._clock() + 1.0, delivery.id,
                                                 delivery.function))

    def _outcome(self, config: Config, d: Delivery, inv: Invocation, now: float,
                 follow_ups: list[NewDelivery]) -> tuple[str, tuple[Any, ...]]:
        attempts = d.attempts + 1
        if inv.result.ok:
            return FINISH_SQL, ("done", attempts, None, None, inv.version, now, d.id)
        error = _error_text(inv.result.payload)
        fn = config.functions.get(d.function)
        decision: retry.Decision = retry.GiveUp("RetriesExhausted") if fn is None else \
            retry.after_failure(attempts, fn.retries, d.accepted_s, now, fn.max_event_age_s,
                                config.settings.time_scale)
        if isinstance(decision, retry.RetryAt):
            log.warning("retry.scheduled", request_id=d.request_id, function=d.function,
                        attempt=attempts + 1, delay_s=round(decision.delay_s, 3),
                        error_type=inv.result.error_type)
            with self._cond:
                heapq.heappush(self._q.delayed, (decision.due_s, d.id, d.function))
            return RESCHEDULE_SQL, (attempts, decision.due_s, error, inv.version, d.id)
        self.dead_lettered += 1
        log.error("event.dead_lettered", request_id=d.request_id, function=d.function,
                  condition=decision.condition, attempts=attempts, bucket=d.bucket, key=d.key,
                  error_type=inv.result.error_type)
        if fn is not None and fn.on_failure is not None:
            self._send_failure(config, fn, d, inv, decision.condition, attempts, follow_ups)
        return FINISH_SQL, ("dead", attempts, decision.condition, error, inv.version, now, d.id)

    def _send_failure(self, config: Config, fn: Function, d: Delivery, inv: Invocation,
                      condition: str, attempts: int, follow_ups: list[NewDelivery]) -> None:
        assert fn.on_failure is not None
        time_ms = int(self._clock() * 1000)
        body = destinations.record(
            request_id=d.request_id, function_arn=destinations.qualified_arn(d.target),
            condition=condition, attempts=attempts, event=d.payload,
            executed_version=inv.version, error=inv.result.payload, time_ms=time_ms)
        if fn.on_failure.kind == "bucket":
            key = destinations.bucket_key(fn.name, d.request_id, time_ms)
            path = write_object(self._buckets_dir / fn.on_failure.target, key, body)
            log.info("destination.written", request_id=d.request_id, function=fn.name,
                     bucket=fn.on_failure.target, key=key, path=str(path))
            return
        try:
            target = FunctionArn.parse(fn.on_failure.target)
        except ArnError:
            return
        follow_ups.append(NewDelivery(str(uuid.uuid4()), str(target), target.function, "", "",
                                      body, self._clock()))
        log.info("destination.invoked", request_id=d.request_id, function=fn.name,
                 target=str(target))


def write_object(bucket_dir: Path, key: str, body: Any) -> Path:
    """Write a JSON object atomically (temp dotfile + rename), so the watcher sees it whole."""
    import json

    path = bucket_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".s3sim-{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"{payload.get('errorType', '')}: {payload.get('errorMessage', '')}"
    return str(payload)
