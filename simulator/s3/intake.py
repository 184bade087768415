"""The intake thread: hints from the watcher -> settled object changes -> journal -> delivery.

One thread does all of it, in order, so there are no races between a change being seen,
the object index being updated and the events being accepted. Each pass drains every
waiting hint, then commits all resulting changes in one transaction.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from simulator.core import index_diff, keys
from simulator.core.config import Config
from simulator.core.s3_events import ObjectChange
from simulator.core.settle import Debouncer
from simulator.logs import Progress, Repeats
from simulator.s3 import objects, requests
from simulator.s3.api_writes import ApiWrites
from simulator.s3.objects import TooLarge, Vanished, skipped
from simulator.s3.staging import Stager
from simulator.s3.watching import Hint
from simulator.store.journal import IndexEntry, Journal

log = structlog.get_logger("s3sim")
HASH_INLINE_BYTES = 8 << 20  # larger files are hashed aside
COMMIT_EVERY = 256  # changes per journal transaction during a burst
JOIN_S = 10.0  # the longest a stop waits for the intake's last pass


class _Interrupted(Exception):
    """The owner is stopping the intake in the middle of a long pass."""


class Intake:
    def __init__(
        self,
        workspace: Path,
        journal: Journal,
        config: Callable[[], Config],
        submit: Callable[[list[tuple[int, str]]], None],
        control: Callable[[Hint], None],
        api_writes: ApiWrites | None = None,
    ) -> None:
        self._api_writes = api_writes or ApiWrites()
        self._api_writes.wake = lambda: self.hints.put(Hint("notice"))
        self._notices: list[ObjectChange] = []  # staged in this pass, not yet committed
        self._buckets_dir = os.path.realpath(workspace / "buckets")
        self._journal, self._config = journal, config
        self._stager = Stager(journal, config, submit)
        self._control = control  # hints about config.yaml, functions/ and versions/
        self.hints: queue.SimpleQueue[Hint | None] = queue.SimpleQueue()
        self._timers = Debouncer()
        self._recover_at: float | None = None
        self._overflow_pending = False
        # CLI requests handed over by the runtime's main loop, carried out on this thread.
        self._requests: queue.SimpleQueue[tuple[int, str, dict[str, Any]]] = queue.SimpleQueue()
        self._hashing: set[str] = set()
        self._rehash: set[str] = set()
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="s3sim-hash")
        self._busy = threading.Event()
        self._stopping = threading.Event()
        self._failures = Repeats()
        # Rescans asked for by the owner, each with an event set once its changes are committed.
        self._rescans: queue.SimpleQueue[tuple[bool, str, threading.Event]] = queue.SimpleQueue()
        self._scanned: list[threading.Event] = []  # set after the next successful commit
        self._thread = threading.Thread(target=self._loop, name="s3sim-intake", daemon=True)

    # -- owner's interface -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # a long rescan gives up at its next file: the next start redoes it
        self.hints.put(None)
        self._thread.join(JOIN_S)
        if self._thread.is_alive():  # a pass stuck in I/O: what it holds is found by a rescan
            log.error("intake.stuck", action="stopping without it; the next start rescans")
        # A large file still being hashed is not in the index yet: the next start finds it.
        self._hasher.shutdown(wait=False, cancel_futures=True)

    def idle(self) -> bool:
        return (
            self.hints.empty()
            and not self._busy.is_set()
            and not self._timers
            and self._requests.empty()
            and self._recover_at is None
            and not self._hashing
        )

    def rescan(self, fire: bool, reason: str) -> threading.Event:
        """Diff every bucket folder against the object index (runs on the intake thread).

        The returned event is set once the scan's changes are committed: from then on the
        index holds every file the scan saw, and any later write is a change that fires.
        """
        done = threading.Event()
        self._rescans.put((fire, reason, done))
        self.hints.put(Hint("rescan"))
        return done

    def carry_out(self, request_id: int, kind: str, body: dict[str, Any]) -> None:
        """A request of the CLI's (replay, refire), read by the runtime's main loop."""
        self._requests.put((request_id, kind, body))
        self.hints.put(Hint("request"))

    # -- the loop ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                hint = self.hints.get(timeout=self._wait_s())
            except queue.Empty:
                hint = Hint("tick")
            if hint is None:
                return
            self._busy.set()
            try:
                self._pass(hint)
                if self._recover_at is None:
                    self._release_scanned()
                    self._failures.reset()
            except _Interrupted:  # stopping: nothing of the pass is committed, none of it lost
                self._stager.discard()
                return
            except Exception as exc:
                # Keep running on the last good state. Whatever was staged is not in the index
                # (the transaction rolled back), so a rescan finds it again: nothing is lost.
                # Notices have no file to rescan: they are given back.
                self._report(exc)
                self._stager.discard()
                self._api_writes.give_back(self._notices)
                self._recover_at = time.monotonic() + 1.0  # not at once: the fault may persist
            finally:
                self._busy.clear()

    def _report(self, exc: Exception) -> None:
        """A journal that cannot be written (disk full, state folder gone) is said plainly;
        anything else with its traceback. A failure repeating every second is not repeated
        on every line."""
        text = f"{type(exc).__name__}: {exc}"
        if not self._failures.worth_logging(text):
            return
        if isinstance(exc, (sqlite3.OperationalError, OSError)):
            log.error(
                "journal.write_failed",
                error=str(exc),
                times=self._failures.count,
                action="rescanning in 1 s; the changes are accepted once written",
            )
        else:
            log.exception(
                "intake.error", times=self._failures.count, action="rescanning every bucket"
            )

    def _release_scanned(self) -> None:
        for done in self._scanned:
            done.set()
        self._scanned.clear()

    def _take_notices(self) -> None:
        """Tags changed through the S3 API: events to fire, the object index unchanged.
        Kept until committed (a failed pass gives them back)."""
        self._notices = self._api_writes.take_notices()
        for change in self._notices:
            self._stager.stage(change, None, index=False)

    def _pass(self, first: Hint) -> None:
        self._take_notices()
        self._apply(first)
        for _ in range(10000):  # drain what is waiting, bounded so a pass stays short
            try:
                hint = self.hints.get_nowait()
            except queue.Empty:
                break
            if hint is None:
                self.hints.put(None)
                break
            self._apply(hint)
            if len(self._stager) >= COMMIT_EVERY:  # in a burst, hand work on early
                self._stager.commit()
        if self._overflow_pending:
            self._overflow_pending = False
            self._rescan(True, "overflow")
        self._run_timers(time.monotonic())
        self._stager.commit()

    def _wait_s(self) -> float:
        dues = [d for d in (self._timers.next_due(), self._recover_at) if d is not None]
        return max(0.0, min(dues) - time.monotonic()) if dues else 1.0

    # -- hints -------------------------------------------------------------------------------
    def _apply(self, hint: Hint) -> None:
        kind = hint.kind
        if kind == "tick":
            return
        if kind == "watch_limit" or (hint.path == self._buckets_dir and kind != "rescan"):
            self._control(hint)  # the watcher itself needs attention: the runtime decides
            return
        if hint.dest == self._buckets_dir:
            self._control(Hint("dir_created", hint.dest))
            return
        if kind == "hashed":
            self._hashed(hint.path, hint.dest)
            return
        if kind == "notice":  # staged at the start of every pass (`_take_notices`)
            return
        if kind == "request":
            request_id, request_kind, body = self._requests.get_nowait()
            requests.carry_out(
                self._journal,
                self._stager,
                self._buckets_dir,
                self._ignore(),
                request_id,
                request_kind,
                body,
            )
        elif kind == "rescan":
            fire, reason, done = self._rescans.get_nowait()
            self._rescan(fire, reason)
            self._scanned.append(done)
        elif kind == "overflow":  # watchdog warns twice per overflow: rescan once per pass
            if not self._overflow_pending:
                log.warning("watch.overflow", action="rescanning every bucket")
            self._overflow_pending = True
        elif kind == "closed":
            self._route(hint.path, self._put_now, kind)
        elif kind in ("created", "modified"):
            self._route(hint.path, self._settle, kind)
        elif kind == "deleted":
            self._route(hint.path, self._delete_later, kind)
        elif kind == "moved":
            self._route(hint.path, self._delete_later, kind)
            self._route(hint.dest, self._put_now, kind)
        elif kind == "dir_deleted":
            self._route_dir(hint.path)
        elif kind == "dir_moved":
            self._route_dir(hint.path)
            self._put_tree(hint.dest) if not hint.path else None

    def _route(self, path: str, action: Callable[[str, str, str], None], kind: str = "") -> None:
        if not path:
            return
        located = keys.locate(self._buckets_dir, path)
        if located is None:
            if kind:
                self._control(Hint(kind, path))
            return
        bucket, key = located
        if keys.is_ignored(key, self._ignore()):
            return
        why_not = keys.problem(key)
        if why_not is not None:
            skipped(bucket, key, why_not)
            return
        action(path, bucket, key)

    def _ignore(self) -> tuple[str, ...]:
        return self._config().settings.ignore

    def _quiet_s(self) -> float:
        return self._config().settings.settle_ms / 1000

    def _route_dir(self, path: str) -> None:
        """A folder went away (deleted or moved out): every indexed key under it may be gone."""
        located = keys.locate(self._buckets_dir, path + "/x") if path else None
        if located is None:
            return
        bucket, prefix = located[0], located[1][:-1]
        for key in self._journal.index(bucket):
            if key.startswith(prefix):
                self._delete_later(os.path.join(self._buckets_dir, bucket, key), bucket, key)

    def _put_tree(self, path: str) -> None:
        for file_path in objects.walk_files(path):
            self._route(file_path, self._put_now)

    # -- decisions ---------------------------------------------------------------------------
    def _settle(self, path: str, bucket: str, key: str) -> None:
        if self._api_writes.pending(bucket, key):  # renamed into place whole by the S3 API
            self._put_now(path, bucket, key)
            return
        self._timers.settle(path, time.monotonic(), self._quiet_s())

    def _delete_later(self, path: str, bucket: str, key: str) -> None:
        self._timers.delete_later(path, time.monotonic(), self._quiet_s())

    def _put_now(self, path: str, bucket: str, key: str) -> None:
        self._timers.forget(path)
        if path in self._hashing:  # a newer write while hashing: hash again when it is done
            self._rehash.add(path)
            return
        try:
            size, mtime_ns, etag = objects.read(path, self._buckets_dir, HASH_INLINE_BYTES)
        except TooLarge:
            self._hash_aside(path)
            return
        except Vanished as exc:
            skipped(bucket, key, str(exc), exc.level)
            return
        except OSError as exc:
            skipped(bucket, key, exc.strerror or str(exc))
            return
        self._stage_put(bucket, key, size, mtime_ns, etag)

    def _hash_aside(self, path: str) -> None:
        """Large files are hashed on another thread, so they hold up no other object."""
        self._hashing.add(path)

        def job() -> None:
            try:
                result = json.dumps(objects.read(path, self._buckets_dir))
            except Vanished as exc:
                result = json.dumps(str(exc))
            except Exception as exc:  # reported back either way: the path must not stay busy
                result = json.dumps(f"hashing failed: {exc}")
            self.hints.put(Hint("hashed", path, result))

        self._hasher.submit(job)

    def _hashed(self, path: str, result_text: str) -> None:
        self._hashing.discard(path)
        located = keys.locate(self._buckets_dir, path)
        result = json.loads(result_text)
        if path in self._rehash:
            self._rehash.discard(path)
            if located is not None:
                self._put_now(path, *located)
            return
        if located is None:
            return
        if isinstance(result, str):
            skipped(located[0], located[1], result)
            return
        self._stage_put(located[0], located[1], *result)

    def _stage_put(self, bucket: str, key: str, size: int, mtime_ns: int, etag: str) -> None:
        entry = IndexEntry(size, mtime_ns, etag)
        if self._stager.indexed(bucket, key) == entry:
            # The same write reported twice (watchdog can report a file in a new folder both
            # by its walk and by its own event). A real rewrite changes the mtime or the bytes.
            return
        origin = self._api_writes.claim(bucket, key, etag)  # written through the S3 API?
        reported = origin.etag if origin is not None and origin.etag else etag
        self._stager.stage(ObjectChange(bucket, key, "put", size, reported, origin=origin), entry)

    def _run_timers(self, now: float) -> None:
        if self._recover_at is not None and self._recover_at <= now:
            self._recover_at = None
            self._rescan(True, "recovering from an intake error")
        for path in self._timers.settle_due(now):
            self._check_settled(path, now)
        for path in self._timers.deletes_due(now):
            self._route(path, self._delete_if_gone)

    def _check_settled(self, path: str, now: float) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._timers.forget(path)
            return
        except OSError:  # a symlink loop, a dangling or unreadable link: _put_now says why
            self._timers.forget(path)
            self._route(path, self._put_now)
            return
        if self._timers.still_changing(path, st.st_size, st.st_mtime_ns, now, self._quiet_s()):
            return
        located = keys.locate(self._buckets_dir, path)
        if located is None:
            return
        known = self._stager.indexed(*located)
        # A record without an eTag (made by a record-only scan) proves nothing about the
        # bytes: read the file, and fire if it differs from what the index holds.
        if (
            known is None
            or not known.etag
            or (known.size, known.mtime_ns) != (st.st_size, st.st_mtime_ns)
        ):
            self._put_now(path, *located)

    def _delete_if_gone(self, path: str, bucket: str, key: str) -> None:
        if os.path.lexists(path) or self._stager.indexed(bucket, key) is None:
            return
        origin = self._api_writes.claim(bucket, key, "")
        self._stager.stage(ObjectChange(bucket, key, "delete", origin=origin), None)

    # -- rescan ------------------------------------------------------------------------------
    def _rescan(self, fire: bool, reason: str) -> None:
        started = time.monotonic()
        log.info("watch.rescanning", reason=reason, fire=fire)
        buckets = (
            {e.name for e in os.scandir(self._buckets_dir) if e.is_dir()}
            if os.path.isdir(self._buckets_dir)
            else set()
        )  # symlinked ones are refused by objects.in_bucket
        counts = {"put": 0, "delete": 0}
        # The index is what the buckets held last time: the likely number of objects to walk.
        progress = Progress(f"scanning buckets ({reason})", self._journal.indexed_count())
        try:
            for bucket in sorted(buckets | set(self._journal.indexed_buckets())):
                changed, removed = self._rescan_bucket(bucket, fire, progress)
                counts["put"] += changed
                counts["delete"] += removed
        finally:
            progress.close()
        self._stager.baseline_pending = True
        log.info(
            "watch.rescanned",
            reason=reason,
            fired=fire,
            objects=progress.count,
            changed=counts["put"],
            removed=counts["delete"],
            buckets=len(buckets),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            per_s=round(progress.rate()),
        )

    def _rescan_bucket(self, bucket: str, fire: bool, progress: Progress) -> tuple[int, int]:
        """Stage what changed in one bucket since the index was written: (puts, deletes)."""
        ignore = self._ignore()
        index = {k: (e.size, e.mtime_ns) for k, e in self._journal.index(bucket).items()}
        found: dict[str, tuple[int, int]] = {}
        paths: dict[str, str] = {}
        for path, key in objects.in_bucket(self._buckets_dir, bucket, ignore):
            if self._stopping.is_set():
                raise _Interrupted()
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # gone since the walk: if indexed, it is a delete
                continue
            found[key], paths[key] = (st.st_size, st.st_mtime_ns), path
            progress.advance()
        changed, gone = index_diff.diff(index, found)
        firing = Progress(f"catching up s3://{bucket}", len(changed)) if fire else None
        try:
            for key in changed:
                self._stage_found(bucket, key, paths[key], found[key], fire)
                if firing is not None:
                    firing.advance()
        finally:
            if firing is not None:
                firing.close()
        gone = [key for key in gone if not keys.is_ignored(key, ignore)]
        for key in gone:
            self._stager.stage(ObjectChange(bucket, key, "delete"), None, fire)
        return len(changed), len(gone)

    def _stage_found(
        self, bucket: str, key: str, path: str, stamp: tuple[int, int], fire: bool
    ) -> None:
        if fire:
            self._put_now(path, bucket, key)
            return
        try:  # record only (a first start): no eTag yet, but it must be a real object
            objects.object_stat(path, self._buckets_dir)
        except Vanished as exc:
            skipped(bucket, key, str(exc), exc.level)
            return
        size, mtime_ns = stamp
        self._stager.stage(
            ObjectChange(bucket, key, "put", size), IndexEntry(size, mtime_ns, ""), fire=False
        )
