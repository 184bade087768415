"""The composition root: builds every part, owns every thread and process, starts and stops
them in a written order, and runs the supervisor loop.

Start: lock the workspace -> logging -> journal -> versions (seals the unseen) -> config -> pool
-> delivery (resumes pending work) -> intake thread -> watcher (observer thread) -> start-up scan
-> ready. A part that fails to start stops every part started before it, in reverse.
Supervise (the caller's thread, `s3sim run`'s main thread): the watcher's owner (it replaces a
watcher that lost its folder or hit the watch limit), CLI requests (replay, refire, sync, idle:
`cli_requests`) twice a second, housekeeping once a second (state folder check, idle reaping,
status.json).
Stop (after the supervisor returned): watcher -> intake (commits what it holds) -> delivery
(lets in-flight invocations end) -> pool (kills environments) -> journal -> lock.

Threads and their owners: the intake thread and its hasher (Intake), the scheduler and the
invocation threads (Deliverer), the spare-runtime thread (Pool), watchdog's observer
(Watcher); every one is joined with a bound on stop.
"""

from __future__ import annotations

import json
import os
import queue
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from simulator import cli_requests, logs, serving
from simulator.core import keys, lambda_env
from simulator.core.arn import FunctionArn
from simulator.core.config import Config
from simulator.errors import SimulatorError
from simulator.lambdas import lambda_api
from simulator.lambdas.builds import Builds
from simulator.lambdas.delivery import Deliverer
from simulator.lambdas.environment import Spec
from simulator.lambdas.invoker import Invoker
from simulator.lambdas.pool import Pool
from simulator.lambdas.runtimes import Runtimes
from simulator.s3 import api as s3_api
from simulator.s3.intake import Intake
from simulator.s3.watching import Hint, Watcher
from simulator.store import files, status
from simulator.store.config_source import ConfigSource
from simulator.store.journal import Journal, NewDelivery
from simulator.store.versions import VersionStore
from simulator.store.workspace import Workspace, WorkspaceLock

log = structlog.get_logger("s3sim")
SWITCH_INTERVAL_S = 0.0005
ENDPOINTS = "endpoints.json"  # in the state folder: the running simulator's endpoints
IDLE_CHECKS = 4  # idle across this many supervisor rounds (~200 ms): nothing in flight or settling


class StartCancelled(SimulatorError):
    """Asked to stop (a signal) before the simulator was ready; nothing was left running."""


class Runtime:
    def __init__(
        self,
        root: Path,
        console: logs.Console | None = None,
        console_json: bool = False,
        verbose: bool = False,
    ) -> None:
        self.ws = Workspace(root)
        self._console, self._console_json = console, console_json
        self._verbose = verbose  # the console shows every field of every event
        self._lock = WorkspaceLock(self.ws)
        self._started: list[Callable[[], None]] = []  # how to stop each started part, in order
        self._watch_hints: queue.SimpleQueue[Hint] = queue.SimpleQueue()  # for the supervisor
        self._forced_polling = False  # set once the watch limit made native watching fail
        self.stopped = threading.Event()
        # Set when the simulator cannot go on (a thread died despite its guards): the owner
        # of the process (the CLI) then stops it loudly instead of running half dead.
        self.fatal = threading.Event()
        self.fatal_reason = ""
        self._status_failures = logs.Repeats()
        self._config_due: float | None = None  # when a config.yaml still being saved reloads
        # $LATEST code changes per function, recycled once the folder has been quiet: one
        # editor save is several file events (backup, write, close, temp files).
        self._code_due: dict[str, tuple[float, list[str]]] = {}
        self._idle_checks = 0  # consecutive supervisor rounds found idle

    # -- start -------------------------------------------------------------------------------
    def start(self, cancel: threading.Event | None = None) -> None:
        """Start every part in order; returns once `simulator.ready` is logged. If a part
        fails, or `cancel` is set meanwhile (SIGTERM during a long start-up scan), the parts
        already started are stopped (newest first) and the error (StartCancelled) raised."""
        self._cancel = cancel or threading.Event()
        # Every invocation crosses threads (delivery -> the Runtime API loop -> delivery): a
        # thread waiting for the GIL gets it after 0.5 ms, not Python's default 5 ms
        # (measured: close-to-handler p99 3.7-11.6 ms -> about 5 ms, p50 slightly lower).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            self._start_parts()
        except BaseException:
            self._stop_started()
            raise

    def _start_parts(self) -> None:
        self._lock.acquire()
        self._started.append(self._lock.release)
        logs.configure(self.ws.log_file, self._console, self._console_json, verbose=self._verbose)
        threading.excepthook = self._thread_died
        self._started.append(_restore_excepthook)
        self.journal = Journal(self.ws.journal)  # before versions: it keeps their seals
        self._started.append(self.journal.close)
        self._started.append(lambda: status.clear(self.ws.status_file))
        self.store = VersionStore(self.ws.versions, self.journal)
        self._seal_unseen_versions()
        self.source = ConfigSource(
            self.ws.config, self.store, self.ws.state / "last-good-config.yaml"
        )
        config = self.source.current
        logs.set_rotation(config.settings.log_rotate_bytes, config.settings.log_keep)
        for name in config.buckets:
            (self.ws.buckets / name).mkdir(parents=True, exist_ok=True)
        first_start = self.journal.get_meta("baseline") is None
        self._start_s3_api(config)
        self._start_delivery(config)
        self.intake = Intake(
            self.ws.root,
            self.journal,
            self._config,
            self.deliverer.submit,
            self._control,
            self.s3_api.writes,
        )
        self.intake.start()
        self._started.append(self.intake.stop)
        self._requests = cli_requests.Requests(
            self.journal,
            self.intake,
            self.ws.buckets,
            self._config_caught_up,
            self._versions_changed,
            self._idle_asked,
        )
        self._start_watcher(self._polling_s())
        self._started.append(lambda: self.watcher.stop())  # the watcher in place at stop time
        self._scan_on_start(first_start, config)
        self.s3_api.wait_serving()  # imported meanwhile, off the start-up path
        self.lambda_api.wait_serving()
        log.info(
            "simulator.ready",
            workspace=str(self.ws.root),
            buckets=sorted(config.buckets),
            functions=sorted(config.functions),
            pid=os.getpid(),
            s3_endpoint=self.s3_api.url,
            lambda_endpoint=self.lambda_api.url,
        )

    def _start_s3_api(self, config: Config) -> None:
        """The S3 API over the bucket folders; its address goes to every environment
        (AWS_ENDPOINT_URL_S3) and to `.s3sim/endpoints.json` for `s3sim env`."""
        credentials = serving.Credentials(
            lambda_env.DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            lambda_env.DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            lambda_env.DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        self.s3_api = s3_api.S3Api(
            self.ws.buckets,
            credentials,
            self._config,
            port=config.settings.s3_api_port,
        )
        url = self.s3_api.start()
        self._started.append(self.s3_api.stop)
        endpoints = self.ws.state / ENDPOINTS
        workspace = lambda_api.Workspace(
            self.ws.root,
            self.store,
            self._config,
            self._invoke_sync,
            self._accept_event,
            self._retire_latest,
            self._api_alias_edit,
        )
        self.lambda_api = lambda_api.LambdaApi(
            workspace, credentials, port=config.settings.lambda_api_port
        )
        lambda_url = self.lambda_api.start()
        self._started.append(self.lambda_api.stop)
        codedeploy_url = self._start_codedeploy_api(credentials, config)
        files.write_atomic(
            endpoints,
            json.dumps({"s3": url, "lambda": lambda_url, "codedeploy": codedeploy_url}) + "\n",
        )
        self._started.append(lambda: endpoints.unlink(missing_ok=True))
        self._endpoints = {
            "AWS_ENDPOINT_URL_S3": url,
            "AWS_ENDPOINT_URL_LAMBDA": lambda_url,
            "AWS_ENDPOINT_URL_CODEDEPLOY": codedeploy_url,
        }

    def _start_codedeploy_api(self, credentials: serving.Credentials, config: Config) -> str:
        """The local CodeDeploy endpoint deployment hooks report their status to."""
        from simulator.promotion.codedeploy_api import CodeDeployApi

        self.codedeploy_api = CodeDeployApi(
            lambda *status: self.shifter.put_status(*status),  # the shifter starts later
            credentials,
            lambda: self.source.current.region,
        )
        url = self.codedeploy_api.start()
        self._started.append(self.codedeploy_api.stop)
        return url

    def _start_promotion(self) -> None:
        """Deployments (traffic shifts) and the alias history; outcomes come from the invoker."""
        from simulator.promotion import wiring

        self.shifter = wiring.shifter(self.ws, self.journal, self.store, self.source, self.invoker)
        self.invoker.observe = wiring.observer(self.shifter)
        self.deliverer.on_throttle = self.shifter.throttled
        self._started.append(self.shifter.stop)

    def _api_alias_edit(
        self, function: str, alias: str, version: str, weights: dict[int, float]
    ) -> None:
        """UpdateAlias / CreateAlias: the config.yaml edit, recorded in the alias history."""
        from simulator.promotion import wiring

        wiring.api_alias_edit(
            self.ws, self.journal, self.store, self.source.current, function, alias, version,
            weights,
        )  # fmt: skip

    def _invoke_sync(
        self, config: Config, arn: str, event: Any, request_id: str, **options: Any
    ) -> Any:
        """The Lambda API's RequestResponse Invoke: the same resolver and environments
        (options: chain, client_context, log_sink)."""
        return self.invoker.invoke(config, FunctionArn.parse(arn), event, request_id, **options)

    def _retire_latest(self, function: str) -> None:
        """The Lambda API replaced $LATEST's code: the next invocation runs the new code."""
        self.pool.retire_latest(function)

    def _accept_event(self, config: Config, arn: str, event: Any, chain: str) -> str:
        """The Lambda API's Event Invoke: accepted into the journal like an S3 event, with
        the chain of the invocation that sent it, if any (core/lineage.py)."""
        request_id = str(uuid.uuid4())
        target = FunctionArn.parse(arn)
        new = NewDelivery(
            request_id, arn, target.function, "", "", event, time.time(), lineage=chain
        )
        with self.journal.transaction() as db:
            delivery_id = Journal.insert(db, new)
        self.deliverer.submit([(delivery_id, target.function)])
        return request_id

    def _start_delivery(self, config: Config) -> None:
        settings = config.settings
        runtimes = Runtimes(self.ws.state / "runtimes")
        builds = Builds(self.ws.state / "builds")
        self.pool = Pool(
            self.ws.state / "tmp",
            settings.log_limit_bytes,
            settings.force_cold_start,
            settings.spare_runtimes,
            runtimes.default(),
            _idle_output,
            self._endpoints,
        )
        self._started.append(self.pool.close)
        self.invoker = Invoker(
            self.ws.root,
            self.pool,
            self.store,
            lambda: self.source.published,
            random.Random(settings.seed),
            runtimes,
            builds,
        )
        self.deliverer = Deliverer(
            self.journal,
            self.invoker,
            self._config,
            self.ws.buckets,
            rng=random.Random(settings.seed),
        )
        self.deliverer.start()
        self._started.append(self.deliverer.stop)
        self._start_promotion()

    def _seal_unseen_versions(self) -> None:
        """Versions committed to git (or published while no journal existed) are sealed on
        first sight; one that does not even match its own version.json is only logged here:
        it is refused when an environment would start from it."""
        sealed, problems = self.store.seal_unseen()
        for v in sealed:
            log.info(
                "version.sealed",
                function=v.function,
                version=str(v.number),
                code_sha256=v.code_sha256,
                settings_sha256=v.settings_sha256,
                reason="first seen (trust on first use)",
            )
        for problem in problems:
            log.error("version.integrity_failed", error=str(problem), action="not sealed")

    def _scan_on_start(self, first_start: bool, config: Config) -> None:
        """Ready means a file written after it fires: so the scan that records (or fires)
        what the buckets hold must be committed first. The watcher already runs, so nothing
        written during the scan is missed either."""
        fire = not first_start and config.settings.catch_up == "fire"
        reason = "first start: recording what the buckets hold" if first_start else "catch-up"
        done = self.intake.rescan(fire, reason)
        while not done.wait(0.05):
            if self._cancel.is_set():  # the scan is interrupted as the intake stops
                raise StartCancelled("stopped during the start-up scan")

    def _start_watcher(self, polling_s: float | None) -> None:
        self.watcher = Watcher(self.ws.root, self.intake.hints.put, polling_s)
        try:
            self.watcher.start()
        except OSError as exc:  # e.g. ENOSPC: not even the top folders can be watched
            if polling_s is not None:
                raise
            self.watcher.stop()
            self._fall_back_to_polling(str(exc))

    def _fall_back_to_polling(self, reason: str) -> None:
        self._forced_polling = True
        interval_s = self._polling_s()
        log.error(
            "watch.limit_reached",
            reason=reason,
            action=f"polling every {interval_s} s",
            advice="raise fs.inotify.max_user_watches, or set simulator.watcher: polling",
        )
        self.watcher = Watcher(self.ws.root, self.intake.hints.put, interval_s)
        self.watcher.start()
        self.intake.rescan(True, "switched to polling")

    def _polling_s(self) -> float | None:
        """The polling interval when the config asks for polling or the watch limit forced
        it; None for the platform's native watcher."""
        settings = self.source.current.settings
        polling = settings.watcher == "polling" or self._forced_polling
        return settings.polling_interval_ms / 1000 if polling else None

    def _config(self) -> Config:
        return self.source.current

    def _housekeeping(self) -> None:
        """Once a second, on the supervisor: the state folder, idle reaping, status.json."""
        self._check_state()
        settings = self.source.current.settings
        logs.set_rotation(settings.log_rotate_bytes, settings.log_keep)
        self.pool.force_cold = settings.force_cold_start
        reaped = self.pool.reap(settings.keep_alive_s)
        if reaped:
            log.info("environment.reaped", count=reaped, keep_alive_s=settings.keep_alive_s)
        try:
            status.write(self.ws.status_file, self.deliverer.inflight(), self.pool.warm_count())
            self._status_failures.reset()
        except OSError as exc:  # a full disk: `s3sim status` reads it as not running
            if self._status_failures.worth_logging(str(exc)):
                log.warning(
                    "status.not_written",
                    error=exc.strerror or str(exc),
                    times=self._status_failures.count,
                )

    def _control(self, hint: Hint) -> None:
        """Hints outside buckets/ (from the intake thread): handed to the supervisor, so the
        intake never waits for a reload, a re-seal or a new watcher."""
        self._watch_hints.put(hint)

    def _on_hint(self, hint: Hint) -> None:
        """On the supervisor: the watcher, config.yaml, $LATEST code, published versions."""
        path = Path(hint.path)
        if hint.kind == "watch_limit":
            if not self.watcher.polling:
                self.watcher.stop()
                self._fall_back_to_polling(f"{hint.dest} at {hint.path}")
        elif path == self.ws.buckets:
            self._buckets_folder_changed(hint.kind)
        elif path == self.ws.config:
            self._config_changed(hint.kind)
        elif self.ws.functions in path.parents:
            self._code_changed(path)
        elif self.ws.versions in path.parents:
            self._versions_changed()

    def _versions_changed(self) -> None:
        self.source.refresh_versions()
        self._seal_unseen_versions()

    def _code_changed(self, path: Path) -> None:
        """A file of a function's $LATEST changed: editor noise (the watcher's ignore list)
        and byte code are not code; the rest is recycled once the function's folder has been
        quiet for the settle time, so one save recycles (and logs) once."""
        rel = path.relative_to(self.ws.functions)
        settings = self.source.current.settings
        if (
            len(rel.parts) < 2
            or path.suffix == ".pyc"
            or "__pycache__" in rel.parts
            or keys.is_ignored("/".join(rel.parts[1:]), settings.ignore)
        ):
            return
        function = rel.parts[0]
        _, paths = self._code_due.get(function, (0.0, []))
        shown = str(path.relative_to(self.ws.root))
        if shown not in paths:
            paths.append(shown)
        self._code_due[function] = (time.monotonic() + self._quiet_s(), paths)

    def _recycle_changed_code(self) -> None:
        now = time.monotonic()
        for function, (due, paths) in list(self._code_due.items()):
            if now >= due:
                del self._code_due[function]
                self.pool.retire_latest(function)
                log.info(
                    "function.code_changed",
                    function=function,
                    version="$LATEST",
                    path=paths[0] if len(paths) == 1 else paths,
                )

    def _quiet_s(self) -> float:
        settings = self.source.current.settings
        quiet_s = settings.settle_ms / 1000
        if self.watcher.polling:  # changes are seen once per poll: wait for two quiet polls
            quiet_s = max(quiet_s, 2 * settings.polling_interval_ms / 1000)
        return quiet_s

    def _config_changed(self, kind: str) -> None:
        """A close or a rename means the save is complete: reload now. A created or modified
        sign (the polling watcher, or no close event) may be a save in progress: reload once
        the file has been quiet for a while, never from the middle of a write."""
        if kind in ("closed", "moved", "deleted"):
            self._config_due = None
            self.source.reload()
            return
        self._config_due = time.monotonic() + self._quiet_s()

    def _config_caught_up(self) -> None:
        """config.yaml named by a sync or idle request: read now, not once it is quiet."""
        self._config_due = None
        self.source.catch_up()

    def _buckets_folder_changed(self, kind: str) -> None:
        """buckets/ itself went away or came back: its watch died with it; watch it anew."""
        log.warning("watch.buckets_folder", change=kind, action="re-watching and rescanning")
        if kind in ("dir_created", "moved", "dir_moved", "created"):
            self.watcher.stop()
            self._start_watcher(self._polling_s())
        self.intake.rescan(True, f"buckets folder {kind.replace('_', ' ')}")

    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        """The backstop behind every loop's own guard: no thread dies silently."""
        name = args.thread.name if args.thread is not None else "?"
        self.fatal_reason = f"thread {name} died: {args.exc_type.__name__}: {args.exc_value}"
        log.critical(
            "simulator.thread_died",
            thread=name,
            error=str(args.exc_value),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            action="stopping the simulator",
        )
        self.fatal.set()

    # -- supervise / stop --------------------------------------------------------------------
    def idle(self) -> bool:
        return (
            self.intake.idle()
            and self.deliverer.idle()
            and self._watch_hints.empty()
            and self._config_due is None
            and not self._code_due
        )

    def supervise(self, stop: threading.Event, exit_when_idle: bool = False) -> None:
        """The supervisor loop; returns when `stop` is set, on a fatal error, or (with
        `exit_when_idle`) once nothing has been pending for 200 ms."""
        chores = [
            (0.5, self._requests.hand_over),
            (1.0, self._housekeeping),
            (0.1, self.shifter.tick),
        ]
        next_at = [0.0] * len(chores)
        while not stop.is_set() and not self.fatal.is_set():
            self._guarded(self._watch_duty)  # waits up to 50 ms for a hint
            now = time.monotonic()
            for i, (every_s, chore) in enumerate(chores):
                if now >= next_at[i]:
                    next_at[i] = now + every_s
                    self._guarded(chore)
            watching_idle = exit_when_idle or self._requests.idle_awaited()
            self._idle_checks = self._idle_checks + 1 if watching_idle and self.idle() else 0
            if self._idle_checks >= IDLE_CHECKS:  # nothing in flight, nothing settling
                self._guarded(self._requests.answer_idle)
                if exit_when_idle:
                    return

    def _idle_asked(self) -> None:
        self._idle_checks = 0  # the answer follows a whole quiet period after the ask

    def _guarded(self, chore: Callable[[], None]) -> None:
        try:
            chore()
        except Exception:  # a chore that fails is logged and tried again next round
            log.exception("supervisor.error", chore=chore.__name__)

    def _watch_duty(self) -> None:
        try:
            hint: Hint | None = self._watch_hints.get(timeout=0.05)
        except queue.Empty:
            hint = None
        while hint is not None:
            self._on_hint(hint)
            hint = None if self._watch_hints.empty() else self._watch_hints.get_nowait()
        if self._config_due is not None and time.monotonic() >= self._config_due:
            self._config_due = None
            self.source.reload()
        if self._code_due:
            self._recycle_changed_code()

    def stop(self) -> None:
        """Stop every started part, newest first (see the module docstring)."""
        self._stop_started()
        log.info("simulator.stopped")
        self.stopped.set()

    def _stop_started(self) -> None:
        while self._started:
            stop = self._started.pop()
            try:
                stop()
            except Exception:  # stop the rest regardless
                log.exception("simulator.stop_failed", part=getattr(stop, "__qualname__", "?"))

    # -- the state folder --------------------------------------------------------------------
    def _check_state(self) -> None:
        """The state folder was removed while running: put back what the open journal holds
        (accepted events, retries, dead letters, the object index), the log file and the pid
        note, so nothing accepted is lost and the buckets need no re-baseline."""
        if not self.journal.removed():
            return
        self.journal.restore()
        logs.configure(self.ws.log_file, self._console, self._console_json, verbose=self._verbose)
        self._lock.note_holder()
        self.pool.reap(0)  # warm environments lost their /tmp; new ones get a fresh one
        self.source.remember()
        log.warning(
            "state.restored",
            folder=str(self.ws.state),
            reason="the state folder (or its journal) was removed while running",
            action="wrote the open journal back; to reset the state, stop s3sim "
            "first, then delete .s3sim",
        )


def _restore_excepthook() -> None:
    threading.excepthook = threading.__excepthook__


def _idle_output(spec: Spec, text: str) -> None:
    """What an environment wrote while no invocation was in flight: no request id."""
    log.info("function.log", function=spec.function, version=spec.version, message=text)
