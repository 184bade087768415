"""The intake thread: hints from the watcher -> settled object changes -> journal -> delivery.

One thread does all of it, in order, so there are no races between a change being seen,
the object index being updated and the events being accepted. Each pass drains every
waiting hint, then commits all resulting changes in one transaction.
"""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from simulator import keys, routing, s3_events
from simulator.config import Config
from simulator.journal import IndexEntry, Journal, NewDelivery
from simulator.s3_events import Identity, ObjectChange
from simulator.watching import Hint

log = structlog.get_logger("s3sim")
_CHUNK = 1 << 20


@dataclass
class _Pending:
    due: float
    size: int = -1
    mtime_ns: int = -1


@dataclass(frozen=True)
class _Change:
    change: ObjectChange
    entry: IndexEntry | None  # new index entry; None = removed
    fire: bool = True


class Vanished(Exception):
    """The file disappeared or changed type between its event and reading it."""


class Intake:
    def __init__(self, workspace: Path, journal: Journal, config: Callable[[], Config],
                 submit: Callable[[list[tuple[int, str]]], None],
                 control: Callable[[Hint], None]) -> None:
        self._buckets_dir = os.path.realpath(workspace / "buckets")
        self._journal, self._config, self._submit = journal, config, submit
        self._control = control  # hints about config.yaml, functions/ and versions/
        self.hints: queue.SimpleQueue[Hint | None] = queue.SimpleQueue()
        self._settling: dict[str, _Pending] = {}
        self._deleting: dict[str, float] = {}
        self._batch: list[_Change] = []
        self._overlay: dict[tuple[str, str], IndexEntry | None] = {}
        self._sequencer = int(journal.get_meta("sequencer") or 0)
        self._baseline_pending = False  # the first scan is recorded with the batch it makes
        self._recover_at: float | None = None
        self._requests_at = 0.0  # when the CLI's requests table was last read
        self._requests_done: list[int] = []
        self._replays: list[tuple[int, NewDelivery]] = []
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="s3sim-intake", daemon=True)

    # -- owner's interface -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.hints.put(None)
        self._thread.join()

    def idle(self) -> bool:
        return self.hints.empty() and not self._busy.is_set() and not self._settling \
            and not self._deleting and self._recover_at is None

    def rescan(self, fire: bool, reason: str) -> None:
        """Diff every bucket folder against the object index (runs on the intake thread)."""
        self.hints.put(Hint("rescan", "fire" if fire else "record", reason))

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
            except Exception:
                # Keep running on the last good state. Whatever was staged is not in the index
                # (the transaction rolled back), so a rescan finds it again: nothing is lost.
                log.exception("intake.error", action="rescanning every bucket")
                self._batch.clear()
                self._overlay.clear()
                self._recover_at = time.monotonic() + 1.0  # not at once: the fault may persist
            finally:
                self._busy.clear()

    def _pass(self, first: Hint) -> None:
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
        self._run_timers(time.monotonic())
        self._take_requests()
        self._commit()

    def _wait_s(self) -> float:
        dues = [p.due for p in self._settling.values()] + list(self._deleting.values())
        if self._recover_at is not None:
            dues.append(self._recover_at)
        return max(0.0, min(dues) - time.monotonic()) if dues else 1.0

    # -- hints -------------------------------------------------------------------------------
    def _apply(self, hint: Hint) -> None:
        kind = hint.kind
        if kind == "tick":
            return
        if kind == "rescan":
            self._rescan(hint.path == "fire", hint.dest)
        elif kind == "overflow":
            log.warning("watch.overflow", action="rescanning every bucket")
            self._rescan(True, "overflow")
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

    def _route(self, path: str, action: Callable[[str, str, str], None],
               kind: str = "") -> None:
        if not path:
            return
        located = keys.locate(self._buckets_dir, path)
        if located is None:
            if kind:
                self._control(Hint(kind, path))
            return
        bucket, key = located
        if not keys.is_ignored(key, self._config().settings.ignore):
            action(path, bucket, key)

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
        for file_path in _walk_files(path):
            self._route(file_path, self._put_now)

    # -- decisions ---------------------------------------------------------------------------
    def _settle(self, path: str, bucket: str, key: str) -> None:
        due = time.monotonic() + self._config().settings.settle_ms / 1000
        pending = self._settling.setdefault(path, _Pending(due))
        pending.due = due

    def _delete_later(self, path: str, bucket: str, key: str) -> None:
        # A short grace: editors replace a file by rename; if it is back, it was an overwrite.
        self._deleting[path] = time.monotonic() + self._config().settings.settle_ms / 1000

    def _put_now(self, path: str, bucket: str, key: str) -> None:
        self._settling.pop(path, None)
        self._deleting.pop(path, None)
        try:
            size, mtime_ns, etag = _read(path, self._buckets_dir)
        except Vanished as exc:
            log.info("s3.object_skipped", bucket=bucket, key=key, reason=str(exc))
            return
        entry = IndexEntry(size, mtime_ns, etag)
        if self._indexed(bucket, key) == entry:
            # The same write reported twice (watchdog can report a file in a new folder both
            # by its walk and by its own event). A real rewrite changes the mtime or the bytes.
            return
        self._stage(ObjectChange(bucket, key, "put", size, etag), entry)

    def _run_timers(self, now: float) -> None:
        if self._recover_at is not None and self._recover_at <= now:
            self._recover_at = None
            self._rescan(True, "recovering from an intake error")
        for path, pending in list(self._settling.items()):
            if pending.due <= now:
                self._check_settled(path, pending, now)
        for path, due in list(self._deleting.items()):
            if due <= now:
                del self._deleting[path]
                self._route(path, self._delete_if_gone)

    def _check_settled(self, path: str, pending: _Pending, now: float) -> None:
        try:
            st = os.stat(path)
        except OSError:
            del self._settling[path]
            return
        if (st.st_size, st.st_mtime_ns) != (pending.size, pending.mtime_ns):
            pending.size, pending.mtime_ns = st.st_size, st.st_mtime_ns
            pending.due = now + self._config().settings.settle_ms / 1000
            return
        del self._settling[path]
        located = keys.locate(self._buckets_dir, path)
        if located is None:
            return
        known = self._indexed(*located)
        if known is None or (known.size, known.mtime_ns) != (st.st_size, st.st_mtime_ns):
            self._put_now(path, *located)

    def _delete_if_gone(self, path: str, bucket: str, key: str) -> None:
        if os.path.lexists(path) or self._indexed(bucket, key) is None:
            return
        self._stage(ObjectChange(bucket, key, "delete"), None)

    def _indexed(self, bucket: str, key: str) -> IndexEntry | None:
        if (bucket, key) in self._overlay:
            return self._overlay[(bucket, key)]
        return self._journal.lookup(bucket, key)

    def _stage(self, change: ObjectChange, entry: IndexEntry | None, fire: bool = True) -> None:
        self._overlay[(change.bucket, change.key)] = entry
        self._batch.append(_Change(change, entry, fire))

    # -- requests from the CLI (replay, refire) ---------------------------------------------
    def _take_requests(self) -> None:
        now = time.monotonic()
        if now - self._requests_at < 0.5:
            return
        self._requests_at = now
        for request_id, kind, body in self._journal.open_requests():
            if kind == "replay":
                self._replay(body.get("ids", []))
            elif kind == "refire":
                self._refire(str(body.get("bucket", "")), str(body.get("prefix", "")))
            self._requests_done.append(request_id)

    def _replay(self, ids: list[int]) -> None:
        """Dead letters again, through the current alias mapping, with new request ids."""
        for dead in self._journal.load_many(ids):
            if dead.state != "dead":
                continue
            new = NewDelivery(str(uuid.uuid4()), dead.target, dead.function, dead.bucket,
                              dead.key, dead.payload, time.time())
            self._replays.append((dead.id, new))
            log.info("event.replayed", delivery_id=dead.id, request_id=new.request_id,
                     replay_of=dead.request_id, function=dead.function, bucket=dead.bucket,
                     key=dead.key)

    def _refire(self, bucket: str, prefix: str) -> None:
        """Events for objects that already exist, as if each had just been written."""
        root = os.path.join(self._buckets_dir, bucket)
        count = 0
        for path in _walk_files(root):
            located = keys.locate(self._buckets_dir, path)
            if located is None or not located[1].startswith(prefix) \
                    or keys.is_ignored(located[1], self._config().settings.ignore):
                continue
            try:
                size, mtime_ns, etag = _read(path, self._buckets_dir)
            except Vanished:
                continue
            self._stage(ObjectChange(bucket, located[1], "put", size, etag),
                        IndexEntry(size, mtime_ns, etag))
            count += 1
        log.info("bucket.refired", bucket=bucket, prefix=prefix, objects=count)

    # -- rescan ------------------------------------------------------------------------------
    def _rescan(self, fire: bool, reason: str) -> None:
        started = time.monotonic()
        ignore = self._config().settings.ignore
        buckets = {e.name for e in os.scandir(self._buckets_dir) if e.is_dir()} \
            if os.path.isdir(self._buckets_dir) else set()
        counts = {"put": 0, "delete": 0}
        for bucket in sorted(buckets | set(self._journal.indexed_buckets())):
            for kind in self._rescan_bucket(bucket, ignore, fire):
                counts[kind] += 1
        self._baseline_pending = True
        log.info("watch.rescanned", reason=reason, fired=fire, changed=counts["put"],
                 removed=counts["delete"], buckets=len(buckets),
                 duration_ms=round((time.monotonic() - started) * 1000, 1))

    def _rescan_bucket(self, bucket: str, ignore: tuple[str, ...], fire: bool) -> Iterator[str]:
        index = self._journal.index(bucket)
        root = os.path.join(self._buckets_dir, bucket)
        for path in _walk_files(root):
            located = keys.locate(self._buckets_dir, path)
            if located is None or keys.is_ignored(located[1], ignore):
                continue
            key = located[1]
            known = index.pop(key, None)
            st = os.lstat(path)
            if known is not None and (known.size, known.mtime_ns) == (st.st_size, st.st_mtime_ns):
                continue
            if fire:
                self._put_now(path, bucket, key)
            else:
                self._stage(ObjectChange(bucket, key, "put", st.st_size),
                            IndexEntry(st.st_size, st.st_mtime_ns, ""), fire=False)
            yield "put"
        for key in index:
            if not keys.is_ignored(key, ignore):
                self._stage(ObjectChange(bucket, key, "delete"), None, fire)
                yield "delete"

    # -- commit ------------------------------------------------------------------------------
    def _commit(self) -> None:
        if not (self._batch or self._baseline_pending or self._requests_done or self._replays):
            return
        config, batch = self._config(), self._batch
        self._batch, self._overlay = [], {}
        accepted: list[tuple[int, str]] = []
        logs: list[tuple[ObjectChange, list[tuple[int, str, str]]]] = []
        with self._journal.transaction() as db:
            for staged in batch:
                change = self._sequenced(staged.change)
                if staged.entry is None:
                    Journal.delete_object(db, change.bucket, change.key)
                else:
                    Journal.put_object(db, change.bucket, change.key, staged.entry)
                if staged.fire:
                    matched = self._accept(db, config, change)
                    accepted += [(i, fn) for i, fn, _ in matched]
                    logs.append((change, matched))
            Journal.set_meta(db, "sequencer", str(self._sequencer))
            for replay_of, new in self._replays:
                accepted.append((Journal.insert(db, new, replay_of), new.function))
            for request_id in self._requests_done:
                Journal.finish_request(db, request_id)
            if self._baseline_pending:
                Journal.set_meta(db, "baseline", "1")
        self._replays, self._requests_done = [], []
        self._baseline_pending = False
        for change, matched in logs:
            _log_change(change, matched)
        if accepted:
            self._submit(accepted)

    def _sequenced(self, change: ObjectChange) -> ObjectChange:
        # Monotonic across restarts: never below the last value stored in the journal.
        self._sequencer = max(self._sequencer + 1, time.time_ns())
        return ObjectChange(change.bucket, change.key, change.kind, change.size, change.etag,
                            s3_events.format_sequencer(self._sequencer), time.time_ns() // 10**6)

    def _accept(self, db: object, config: Config, change: ObjectChange
                ) -> list[tuple[int, str, str]]:
        bucket = config.buckets.get(change.bucket)
        if bucket is None:
            return []
        identity = Identity(config.region, config.settings.principal_id,
                            config.settings.owner_id, config.settings.source_ip,
                            config.settings.event_version)
        accepted = []
        for notification in routing.match(bucket, change.key, change.event_name):
            event = s3_events.build(change, notification.id, identity, _s3_request_id(),
                                    _host_id())
            arn = notification.function_arn
            delivery_id = Journal.insert(db, NewDelivery(  # type: ignore[arg-type]
                str(uuid.uuid4()), str(arn), arn.function, change.bucket, change.key, event,
                change.time_ms / 1000))
            accepted.append((delivery_id, arn.function, str(arn)))
        return accepted


def _log_change(change: ObjectChange, matched: list[tuple[int, str, str]]) -> None:
    name = "s3.object_created" if change.kind == "put" else "s3.object_removed"
    fields: dict[str, object] = {"bucket": change.bucket, "key": change.key,
                                 "sequencer": change.sequencer}
    if change.kind == "put":
        fields.update(size=change.size, etag=change.etag)
    log.info(name, **fields)
    for delivery_id, function, target in matched:
        log.info("trigger.matched", bucket=change.bucket, key=change.key, target=target,
                 function=function, delivery_id=delivery_id)


def _read(path: str, root: str) -> tuple[int, int, str]:
    """(size, mtime_ns, MD5 hex) streamed in chunks; refuses links that leave the buckets."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            if not real.startswith(root + os.sep):
                raise Vanished("symlink points outside the buckets folder")
            st = os.stat(real)
        if not stat.S_ISREG(st.st_mode):
            raise Vanished("not a regular file")
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
            size = f.tell()
        return size, st.st_mtime_ns, digest.hexdigest()
    except FileNotFoundError:
        raise Vanished("file vanished before it could be read") from None
    except PermissionError as exc:
        raise Vanished(f"unreadable: {exc.strerror}") from None


def _walk_files(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)


def _s3_request_id() -> str:
    return secrets.token_hex(8).upper()  # 16 chars of [0-9A-F], like x-amz-request-id


def _host_id() -> str:
    return secrets.token_urlsafe(48)[:64]
