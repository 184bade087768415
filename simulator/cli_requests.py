"""Requests the CLI leaves in the journal for the running simulator, taken on the supervisor
(see `runtime.py`): `replay` and `refire` are handed to the intake (with a progress watch for
a replay of many dead letters), `sync` is answered once the paths it names are taken in, and
`idle` once nothing has been pending for a while (the supervisor tells when).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from simulator import logs
from simulator.s3.intake import Intake
from simulator.s3.watching import Hint
from simulator.store.journal import Journal

log = structlog.get_logger("s3sim")
IDLE_REQUEST = "idle"  # a request answered with `simulator.idle` once nothing is pending
SYNC_REQUEST = "sync"  # answered with `simulator.synced` once its paths are taken in


class Requests:
    """Used on the supervisor only. `config_changed` and `versions_changed` take in
    config.yaml and versions/ as the supervisor does on a watcher's hint; `idle_asked` is
    told when an idle request arrives."""

    def __init__(
        self,
        journal: Journal,
        intake: Intake,
        buckets_dir: Path,
        config_changed: Callable[[], None],
        versions_changed: Callable[[], None],
        idle_asked: Callable[[], None],
    ) -> None:
        self._journal, self._intake, self._buckets = journal, intake, buckets_dir
        self._config_changed, self._versions_changed = config_changed, versions_changed
        self._idle_asked = idle_asked
        self._handed_over: set[int] = set()  # CLI request ids given to the intake
        self._replays: list[ReplayWatch] = []  # replays of many dead letters, until done
        self._idle_waiters: list[int] = []  # idle requests, answered once idle

    def idle_awaited(self) -> bool:
        return bool(self._idle_waiters)

    def hand_over(self) -> None:
        """Requests the CLI left in the journal, each handed to the intake once."""
        open_ids = set()
        for request_id, kind, body in self._journal.open_requests():
            open_ids.add(request_id)
            if request_id in self._handed_over:
                continue
            self._handed_over.add(request_id)
            if kind in (IDLE_REQUEST, SYNC_REQUEST):
                self._catch_up(body.get("paths", []))
            if kind == IDLE_REQUEST:
                self._idle_waiters.append(request_id)
                self._idle_asked()
            elif kind == SYNC_REQUEST:
                log.info("simulator.synced", request=request_id)
                with self._journal.transaction() as db:
                    Journal.finish_request(db, request_id)
            else:
                self._intake.carry_out(request_id, kind, body)
                replayed = list(body.get("request_ids", {}).values()) if kind == "replay" else []
                if len(replayed) > 1:
                    self._replays.append(ReplayWatch(replayed))
        self._handed_over &= open_ids
        self._replays = [r for r in self._replays if not r.check(self._journal)]

    def _catch_up(self, paths: list[str]) -> None:
        """Paths the asker changed before asking (relative to the workspace), taken
        in now as the watcher would report them: whatever the watcher has not delivered yet
        cannot then be missing from the answer. A change also reported by the watcher is
        seen twice and acted on once (the intake drops a write it has already indexed; a
        config or versions reload that finds nothing new changes nothing). $LATEST code is
        left to the watcher: recycling twice would cold-start twice."""
        buckets = Path(os.path.realpath(self._buckets))
        # Versions before the config that may name them; objects after the config they fire by.
        order = {"versions": 0, "config.yaml": 1, "buckets": 2}
        for rel in sorted(paths, key=lambda p: order.get(Path(p).parts[0] if p else "", 3)):
            parts = Path(rel).parts
            if not parts or ".." in parts or Path(rel).is_absolute():
                continue
            if parts[0] == "buckets" and len(parts) > 2:
                path = buckets.joinpath(*parts[1:])
                kind = "closed" if path.exists() else "deleted"
                self._intake.hints.put(Hint(kind, str(path)))
            elif rel == "config.yaml":
                self._config_changed()
            elif parts[0] == "versions":
                self._versions_changed()

    def answer_idle(self) -> None:
        """Each waiting idle request gets its `simulator.idle` line, then is closed."""
        waiters, self._idle_waiters = self._idle_waiters, []
        for request_id in waiters:
            log.info("simulator.idle", request=request_id)
        if waiters:
            with self._journal.transaction() as db:
                for request_id in waiters:
                    Journal.finish_request(db, request_id)


class ReplayWatch:
    """A replay of many dead letters, from queued to finished: a progress line on a
    terminal while their invocations run, and `replay.finished` once each has ended."""

    def __init__(self, request_ids: list[str]) -> None:
        self._ids = request_ids
        self._started = time.monotonic()
        self._progress = logs.Progress("replaying dead letters", len(request_ids), unit="events")

    def check(self, journal: Journal) -> bool:
        """Advance the progress line; True once every replayed event has ended."""
        ended = journal.finished(self._ids)
        self._progress.advance(sum(ended.values()) - self._progress.count)
        if self._progress.count < len(self._ids):
            return False
        self._progress.close()
        log.info(
            "replay.finished",
            count=len(self._ids),
            succeeded=ended.get("done", 0),
            dead_lettered=ended.get("dead", 0) + ended.get("replayed", 0),
            duration_ms=round((time.monotonic() - self._started) * 1000, 1),
        )
        return True
