"""The composition root: builds every part, owns every thread and process, starts and stops
them in a written order.

Start: lock the workspace -> logging -> journal -> versions (seals the unseen) -> config -> pool
-> delivery (resumes pending work) -> intake thread -> watcher (observer thread) -> start-up scan
-> ready.
Stop: watcher -> intake (commits what it holds) -> delivery (lets in-flight invocations end)
-> pool (kills idle environments) -> journal -> lock.
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
from pathlib import Path

import structlog

from simulator import logs
from simulator.core.config import Config
from simulator.errors import WorkspaceLocked
from simulator.lambdas.delivery import Deliverer
from simulator.lambdas.invoker import Invoker
from simulator.lambdas.pool import Pool
from simulator.s3.intake import Intake
from simulator.s3.watching import Hint, Watcher
from simulator.store import status
from simulator.store.config_source import ConfigSource
from simulator.store.journal import Journal
from simulator.store.versions import VersionStore
from simulator.store.workspace import Workspace

log = structlog.get_logger("s3sim")


class Runtime:
    def __init__(
        self, root: Path, console: logs.Console | None = None, console_json: bool = False
    ) -> None:
        self.ws = Workspace(root)
        self._console, self._console_json = console, console_json
        self._lock_fd: int | None = None
        self._forced_polling = False  # set once the watch limit made native watching fail
        self.stopped = threading.Event()
        # Set when the simulator cannot go on (a thread died despite its guards): the owner
        # of the process (the CLI) then stops it loudly instead of running half dead.
        self.fatal = threading.Event()
        self.fatal_reason = ""

    # -- start -------------------------------------------------------------------------------
    def start(self) -> None:
        self._lock()
        logs.configure(self.ws.log_file, self._console, self._console_json)
        threading.excepthook = self._thread_died
        self.journal = Journal(self.ws.journal)  # before versions: it keeps their seals
        self.store = VersionStore(self.ws.versions, self.journal)
        self._seal_unseen_versions()
        self.source = ConfigSource(
            self.ws.config, self.store, self.ws.state / "last-good-config.yaml"
        )
        config = self.source.current
        for name in config.buckets:
            (self.ws.buckets / name).mkdir(parents=True, exist_ok=True)
        first_start = self.journal.get_meta("baseline") is None
        self.pool = Pool(
            self.ws.state / "tmp",
            config.settings.log_limit_bytes,
            config.settings.force_cold_start,
            config.settings.spare_runtimes,
        )
        self.invoker = Invoker(
            self.ws.root,
            self.pool,
            self.store,
            lambda: self.source.published,
            random.Random(config.settings.seed),
        )
        self.deliverer = Deliverer(
            self.journal,
            self.invoker,
            self._config,
            self.ws.buckets,
            tick=self._tick,
            rng=random.Random(config.settings.seed),
        )
        self.deliverer.start()
        self.intake = Intake(
            self.ws.root, self.journal, self._config, self.deliverer.submit, self._control
        )
        self.intake.start()
        self._start_watcher(self._polling_s())
        self._scan_on_start(first_start, config)
        log.info(
            "simulator.ready",
            workspace=str(self.ws.root),
            buckets=sorted(config.buckets),
            functions=sorted(config.functions),
            pid=os.getpid(),
        )

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
        self.intake.rescan(fire, reason).wait()

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

    def _tick(self) -> None:
        """Once a second, on the scheduler thread: reap idle environments, publish status."""
        self._check_state()
        settings = self.source.current.settings
        self.pool.force_cold = settings.force_cold_start
        reaped = self.pool.reap(settings.keep_alive_s)
        if reaped:
            log.info("environment.reaped", count=reaped, keep_alive_s=settings.keep_alive_s)
        status.write(self.ws.status_file, self.deliverer.inflight(), self.pool.warm_count())

    def _control(self, hint: Hint) -> None:
        """Hints outside buckets/ (on the intake thread): config, $LATEST code, versions."""
        path = Path(hint.path)
        if hint.kind == "watch_limit":
            if not self.watcher.polling:
                self.watcher.stop()
                self._fall_back_to_polling(f"{hint.dest} at {hint.path}")
        elif path == self.ws.buckets:
            self._buckets_folder_changed(hint.kind)
        elif path == self.ws.config:
            self.source.reload()
        elif self.ws.functions in path.parents:
            function = path.relative_to(self.ws.functions).parts[0]
            if not path.name.endswith((".pyc", "~")) and "__pycache__" not in path.parts:
                self.pool.retire_latest(function)
                log.info(
                    "function.code_changed",
                    function=function,
                    version="$LATEST",
                    path=str(path.relative_to(self.ws.root)),
                )
        elif self.ws.versions in path.parents:
            self.source.refresh_versions()
            self._seal_unseen_versions()

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

    # -- run / stop --------------------------------------------------------------------------
    def idle(self) -> bool:
        return self.intake.idle() and self.deliverer.idle()

    def stop(self) -> None:
        self.watcher.stop()
        self.intake.stop()
        self.deliverer.stop()
        self.pool.close()
        status.clear(self.ws.status_file)
        self.journal.close()
        log.info("simulator.stopped")
        threading.excepthook = threading.__excepthook__
        self._unlock()
        self.stopped.set()

    # -- the workspace lock ------------------------------------------------------------------
    def _lock(self) -> None:
        """One simulator per workspace. The lock is held on the workspace folder itself, not
        on a file in .s3sim/: deleting the state folder must not let a second one in."""
        fd = os.open(self.ws.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkspaceLocked(str(self.ws.root), _holder(self.ws.pid_file)) from None
        self._lock_fd = fd
        self._write_pid()

    def _write_pid(self) -> None:
        """Who holds the lock, for the message a second `s3sim run` prints."""
        self.ws.state.mkdir(parents=True, exist_ok=True)
        self.ws.pid_file.write_text(f"pid {os.getpid()}")

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            self.ws.pid_file.unlink(missing_ok=True)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the state folder --------------------------------------------------------------------
    def _check_state(self) -> None:
        """The state folder was removed while running: put back what the open journal holds
        (accepted events, retries, dead letters, the object index), the log file and the pid
        note, so nothing accepted is lost and the buckets need no re-baseline."""
        if not self.journal.removed():
            return
        self.journal.restore()
        logs.configure(self.ws.log_file, self._console, self._console_json)
        self._write_pid()
        self.pool.reap(0)  # warm environments lost their /tmp; new ones get a fresh one
        self.source.remember()
        log.warning(
            "state.restored",
            folder=str(self.ws.state),
            reason="the state folder (or its journal) was removed while running",
            action="wrote the open journal back; to reset the state, stop s3sim "
            "first, then delete .s3sim",
        )


def _holder(pid_file: Path) -> str:
    try:
        return pid_file.read_text().strip() or "unknown process"
    except OSError:
        return "unknown process"
