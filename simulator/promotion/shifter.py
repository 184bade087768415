"""The running simulator's deployments: takes up requested shifts, runs their hooks, moves the
alias's weights in config.yaml on schedule, and rolls back when a hook fails, a rollback
condition trips on the new version's outcomes, or `s3sim shift --stop` asks.

Owned by the composition root: `tick` runs on the supervisor (every 100 ms), `observe` on
invocation threads (it only records and evaluates; the alias edit is the next tick's), hook
invocations on one thread each (joined on `stop`), `put_status` on the CodeDeploy endpoint's
thread. One lock guards the in-memory state; no journal or file write happens under it.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from simulator.core import deployments
from simulator.core.config import Config
from simulator.core.deployments import Deployment, Outcome
from simulator.errors import HookStatusError
from simulator.promotion import records
from simulator.store import alias_history
from simulator.store.journal import Journal

log = structlog.get_logger("s3sim")
SHIFT_STEP = "shift step"
AUTO_ROLLBACK = "automatic rollback"
SEEN_EVERY_S = 1.0  # how often "still watching" is written (a restart's pause is measured by it)
# (function, alias, version, weights, cause, detail) -> writes config.yaml, applies it
EditAlias = Callable[[str, str, str, dict[str, float], str, str], None]
# (hook function name, event) -> (ok, error text) once the hook invocation returned
InvokeHook = Callable[[str, dict[str, Any]], tuple[bool, str]]


def new_deployment_id() -> str:
    """CodeDeploy's form: `d-` and nine upper-case letters or digits."""
    alphabet = string.ascii_uppercase + string.digits
    return "d-" + "".join(secrets.choice(alphabet) for _ in range(9))


@dataclass
class _Live:
    """What the shifter holds for one deployment in progress."""

    deployment: Deployment
    outcomes: list[Outcome] = field(default_factory=list)
    throttles: list[float] = field(default_factory=list)  # when the function was throttled
    trip: str | None = None  # why a rollback condition tripped, for the next tick
    hook_id: str | None = None  # the LifecycleEventHookExecutionId in progress
    hook_thread: threading.Thread | None = None
    hook_status: str | None = None  # Succeeded | Failed, as the hook reported it
    hook_result: tuple[bool, str] | None = None  # the hook invocation's end


class Shifter:
    def __init__(
        self,
        journal: Journal,
        config: Callable[[], Config],
        edit_alias: EditAlias,
        invoke_hook: InvokeHook,
        clock: Callable[[], float] = time.time,
        report_folder: Path | None = None,
    ) -> None:
        self._report_folder = report_folder  # where each finished shift's chart goes
        self._journal, self._config, self._edit = journal, config, edit_alias
        self._invoke_hook, self._clock = invoke_hook, clock
        self._lock = threading.Lock()
        self._driving = threading.Lock()  # one thread at a time moves deployments on
        self._live: dict[str, _Live] = {}
        self._reconciled: Config | None = None
        self._seen_s = 0.0  # when the deployments' last_seen_s was last written
        self._reports: list[str] = []  # finished deployments whose chart is still to draw
        records.ensure_schema(journal)
        alias_history.ensure_schema(journal)
        self._known = alias_history.known(journal)

    # -- the supervisor's tick --------------------------------------------------------------
    def tick(self) -> None:
        now = self._clock()
        self._reconcile()
        for row in records.load(self._journal):
            self._take_up(row, now)
        with self._lock:
            ids = list(self._live)
        for deployment_id in ids:
            self._drive(deployment_id, now)
        if ids and now - self._seen_s >= SEEN_EVERY_S:
            records.seen(self._journal, ids, now)
            self._seen_s = now
        with self._lock:
            reports, self._reports = self._reports, []
        for deployment_id in reports:
            self._report(deployment_id)

    def _reconcile(self) -> None:
        """Hand edits of config.yaml (or edits while stopped) into the alias history."""
        config = self._config()
        if config is self._reconciled:
            return
        self._reconciled = config
        for change in alias_history.reconcile(self._journal, config, self._known):
            log.info(
                "alias.changed",
                function=change.function,
                alias=change.alias,
                old=_text(change.old),
                new=_text(change.new),
                cause=change.cause,
            )

    def _take_up(self, row: records.Row, now: float) -> None:
        with self._lock:
            live = self._live.get(row.deployment.id)
        if live is None:
            self._start(row, now)
        elif row.stop_requested and live.deployment.status == "InProgress":
            with self._lock:
                live.trip = live.trip or f"stopped by hand: {row.stop_requested}"

    def _start(self, row: records.Row, now: float) -> None:
        d = row.deployment
        if row.state == "InProgress":  # it was running when the simulator stopped
            downtime = now - (row.last_seen_s or now)
            d = records.shifted(d, downtime)
            log.info(
                "shift.resumed",
                deployment_id=d.id,
                function=d.function,
                alias=d.alias,
                phase=d.phase,
                paused_s=round(downtime, 3),
            )
        else:
            version, weights = alias_history.routing_of(self._config(), d.function, d.alias)
            d = replace(d, old=version or d.old, old_weights=weights)
            if version == d.new:  # moved there meanwhile (by hand, or another command)
                d = replace(d, phase="End", status="Succeeded", reason=f"already at {d.new}")
            elif row.stop_requested:  # stopped before the simulator took it up
                d = deployments.roll_back(d, f"stopped by hand: {row.stop_requested}")
            log.info(
                "shift.started",
                deployment_id=d.id,
                function=d.function,
                alias=d.alias,
                old=d.old,
                new=d.new,
                type=d.type.name,
                steps=_steps_text(d),
            )
        with self._lock:
            self._live[d.id] = _Live(d)
        records.save(self._journal, d, now)

    # -- one deployment ---------------------------------------------------------------------
    def _drive(self, deployment_id: str, now: float) -> None:
        with self._driving:  # the supervisor's tick, or an invocation thread that tripped
            with self._lock:
                live = self._live.get(deployment_id)
            if live is None:
                return
            try:
                self._drive_one(live, now)
            except Exception as exc:  # e.g. config.yaml cannot be edited: end it, loudly
                log.exception("shift.failed", deployment_id=deployment_id)
                self._abandon(live, f"{type(exc).__name__}: {exc}", now)

    def _abandon(self, live: _Live, reason: str, now: float) -> None:
        """Roll back what can be rolled back and end the deployment (never retried every
        tick: a deployment that cannot go on must not flood the log)."""
        with self._lock:
            live.deployment = deployments.roll_back(live.deployment, f"failed: {reason}")
        try:
            self._apply(live.deployment, now)
        except Exception as exc:
            log.error(
                "shift.rollback_failed",
                deployment_id=live.deployment.id,
                error=str(exc),
                action="the alias is left as it is; fix config.yaml, then `s3sim rollback`",
            )
        self._finish(live, now)

    def _drive_one(self, live: _Live, now: float) -> None:
        with self._lock:
            d, trip = live.deployment, live.trip
        if trip is not None:
            d = deployments.roll_back(d, trip)
        else:
            d = deployments.advance(d, now)
            self._apply(d, now)  # all traffic moved before the AfterAllowTraffic hook starts
            d = self._hooks(live, d, now)
        self._apply(d, now)
        with self._lock:
            changed, live.deployment = live.deployment != d, d
        if d.status != "InProgress":
            self._finish(live, now)
        elif changed:  # a restart resumes from the phase it reached
            records.save(self._journal, d, now)

    def _hooks(self, live: _Live, d: Deployment, now: float) -> Deployment:
        hook = d.hook() if d.status == "InProgress" else None
        if hook is None:
            return d
        with self._lock:
            result, status, running = live.hook_result, live.hook_status, live.hook_thread
        if result is None:
            if running is None:
                self._run_hook(live, d, hook)
            return d
        with self._lock:
            live.hook_thread, live.hook_id, live.hook_result, live.hook_status = (
                None,
                None,
                None,
                None,
            )
        ok, error = result
        succeeded = ok and status == "Succeeded"
        reason = error if not ok else f"it reported {status}" if status else _NO_STATUS
        log.info(
            "shift.hook_finished",
            deployment_id=d.id,
            lifecycle_event=d.phase,
            hook=hook,
            status="Succeeded" if succeeded else "Failed",
            reason="" if succeeded else reason,
        )
        return deployments.hook_done(d, succeeded, reason, now)

    def _run_hook(self, live: _Live, d: Deployment, hook: str) -> None:
        execution_id = str(uuid.uuid4())
        event = {"DeploymentId": d.id, "LifecycleEventHookExecutionId": execution_id}
        log.info(
            "shift.hook_started",
            deployment_id=d.id,
            lifecycle_event=d.phase,
            hook=hook,
            lifecycle_event_hook_execution_id=execution_id,
        )

        def run() -> None:
            try:
                result = self._invoke_hook(hook, event)
            except Exception as exc:  # the hook could not even be invoked: it failed
                log.exception("shift.hook_error", deployment_id=d.id, hook=hook)
                result = (False, f"{type(exc).__name__}: {exc}")
            with self._lock:
                live.hook_result = result

        thread = threading.Thread(target=run, name=f"s3sim-hook-{d.id}", daemon=True)
        with self._lock:
            live.hook_id, live.hook_thread = execution_id, thread
        thread.start()

    def _apply(self, d: Deployment, now: float) -> None:
        """Point the alias where the deployment wants it, if it is not there yet."""
        version, weights = deployments.alias_target(d, now)
        current = alias_history.routing_of(self._config(), d.function, d.alias)
        if alias_history.same(current, (version, weights)):
            return
        cause = AUTO_ROLLBACK if d.status == "RolledBack" else SHIFT_STEP
        detail = f"deployment {d.id} ({d.origin})" + (f": {d.reason}" if d.reason else "")
        self._edit(d.function, d.alias, version, weights, cause, detail)
        log.info(
            "shift.step",
            deployment_id=d.id,
            function=d.function,
            alias=d.alias,
            split=_split(version, weights),
            minute=round(d.minutes(now), 2),
            cause=cause,
        )

    def _finish(self, live: _Live, now: float) -> None:
        d = live.deployment
        records.save(self._journal, d, now)
        with self._lock:
            self._live.pop(d.id, None)
        if d.status == "Succeeded":
            log.info("shift.succeeded", deployment_id=d.id, function=d.function, alias=d.alias)
        else:
            log.warning(
                "shift.rolled_back",
                deployment_id=d.id,
                function=d.function,
                alias=d.alias,
                version=d.old,
                reason=d.reason,
            )
        with self._lock:  # drawn by the next tick: never on the invocation that tripped it
            self._reports.append(d.id)

    def _report(self, deployment_id: str) -> None:
        """The chart of the shift, as an HTML file named in the log with the figures."""
        row = records.by_id(self._journal, deployment_id)
        if self._report_folder is None or row is None:
            return
        from simulator.promotion import report

        try:
            path, lines = report.write(self._journal, row, self._report_folder)
        except Exception:  # the shift is over either way; the chart is a courtesy
            log.exception("shift.report_failed", deployment_id=deployment_id)
            return
        log.info("shift.report", deployment_id=deployment_id, chart=str(path), changes=lines)

    # -- outcomes and hook reports (other threads) ------------------------------------------
    def observe(self, function: str, alias: str | None, version: str | None, ok: bool,
                error_type: str | None) -> None:  # fmt: skip
        """One invocation's outcome: samples for the report, and the new version's outcomes
        for the rollback conditions."""
        if alias is None or version is None:
            return
        now = self._clock()
        with self._lock:
            live = next(
                (
                    x
                    for x in self._live.values()
                    if x.deployment.function == function and x.deployment.alias == alias
                ),
                None,
            )
            if live is None:
                return
            d = live.deployment
            tripped_now = False
            if version == d.new:
                live.outcomes.append(Outcome(now, ok, error_type))
                tripped_now = self._check(live, now)
        records.add_sample(self._journal, d.id, now, version, ok, error_type)
        if tripped_now:  # at once, not at the next tick: no more traffic to a failing version
            self._drive(d.id, now)

    def throttled(self, function: str) -> None:
        """The function was throttled (from the scheduler): for `throttles` conditions.
        Throttles happen before an alias is resolved, so they count for every deployment of
        the function. A trip is rolled back by the next tick: the scheduler (which may hold
        its own lock here) never waits for a config.yaml edit."""
        now = self._clock()
        with self._lock:
            for live in self._live.values():
                if live.deployment.function == function:
                    live.throttles.append(now)
                    self._check(live, now)

    @staticmethod
    def _check(live: _Live, now: float) -> bool:
        """Evaluate the rollback conditions (under the lock); True when one trips now."""
        d = live.deployment
        if live.trip is not None or d.status != "InProgress":
            return False
        trip = deployments.tripped(d.rollback, live.outcomes, now, d.time_scale, live.throttles)
        if trip is None:
            return False
        live.trip = trip.describe()
        return True

    def put_status(self, deployment_id: str, execution_id: str, status: str) -> str:
        """PutLifecycleEventHookExecutionStatus; returns the execution id (CodeDeploy's
        answer). Raises HookStatusError with CodeDeploy's exception names."""
        if status not in ("Succeeded", "Failed"):
            raise HookStatusError(
                "InvalidLifecycleEventHookExecutionStatusException",
                f"The status {status} is not valid. Only Succeeded and Failed can be passed.",
            )
        with self._lock:
            live = self._live.get(deployment_id)
            if live is None:
                raise HookStatusError(
                    "DeploymentDoesNotExistException",
                    f"The deployment {deployment_id} could not be found.",
                )
            if live.hook_id != execution_id:
                raise HookStatusError(
                    "LifecycleEventAlreadyCompletedException",
                    f"The lifecycle event hook execution {execution_id} is not in progress.",
                )
            if live.hook_status is not None:
                raise HookStatusError(
                    "LifecycleEventAlreadyCompletedException",
                    f"The status of lifecycle event hook execution {execution_id} was already set.",
                )
            live.hook_status = status
        return execution_id

    def active(self) -> list[Deployment]:
        with self._lock:
            return [x.deployment for x in self._live.values()]

    def stop(self, timeout_s: float = 5.0) -> None:
        """Hooks still running end with the simulator (their environments are killed by the
        pool); the deployment stays InProgress in the journal and resumes on the next start."""
        with self._lock:
            threads = [x.hook_thread for x in self._live.values() if x.hook_thread]
            ids = list(self._live)
        for thread in threads:
            thread.join(timeout_s)
        if ids:  # the pause a restart skips starts now
            records.seen(self._journal, ids, self._clock())


_NO_STATUS = (
    "the hook returned without calling PutLifecycleEventHookExecutionStatus "
    "(CodeDeploy would wait for it until the hook's 1-hour limit)"
)


def _split(version: str, weights: dict[str, float]) -> str:
    extra = sum(weights.values())
    parts = [f"{version}: {1 - extra:.0%}"] + [f"{v}: {w:.0%}" for v, w in weights.items()]
    return ", ".join(parts)


def _text(routing: alias_history.Routing) -> str:
    version, weights = routing
    if version is None:
        return "(none)"
    return version + "".join(f" + {v} at {w:g}" for v, w in weights.items())


def _steps_text(d: Deployment) -> str:
    return ", ".join(f"{s.weight:.0%} at {s.at_min:g} min" for s in d.type.steps())
