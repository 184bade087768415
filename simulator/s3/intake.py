"""The intake thread: hints from the watcher -> settled object changes -> journal -> delivery.

One thread does all of it, in order, so there are no races between a change being seen,
the object index being updated and the events being accepted. Each pass drains every
waiting hint, then commits all resulting changes in one transaction.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog

from simulator.core import keys
from simulator.core.config import Config
from simulator.core.s3_events import ObjectChange
from simulator.s3.staging import Stager
from simulator.s3.watching import Hint
from simulator.store.journal import DEAD_LETTER_STATES, IndexEntry, Journal, NewDelivery

log = structlog.get_logger("s3sim")
_CHUNK = 1 << 20
HASH_INLINE_BYTES = 8 << 20  # larger files are hashed aside
COMMIT_EVERY = 256  # changes per journal transaction during a burst


@dataclass
class _Pending:
    due: float
    size: int = -1
    mtime_ns: int = -1


SYMLINKED_BUCKET = (
    "bucket folders must be real folders: a symlinked one is not watched "
    "live, so it is not read at all (move the data under buckets/, or "
    "bind-mount it there)"
)


class Vanished(Exception):
    """The file disappeared or changed type between its event and reading it."""

    level = "info"  # a normal race: the file is simply gone


class NotAnObject(Vanished):
    """The path is there but cannot be an object (a link leaving the buckets, a loop, a
    device): the user should hear about it."""

    level = "warning"


def _skipped(bucket: str, key: str, reason: str, level: str = "warning") -> None:
    getattr(log, level)("s3.object_skipped", bucket=bucket, key=keys.shown(key), reason=reason)


class Intake:
    def __init__(
        self,
        workspace: Path,
        journal: Journal,
        config: Callable[[], Config],
        submit: Callable[[list[tuple[int, str]]], None],
        control: Callable[[Hint], None],
    ) -> None:
        self._buckets_dir = os.path.realpath(workspace / "buckets")
        self._journal, self._config = journal, config
        self._stager = Stager(journal, config, submit)
        self._control = control  # hints about config.yaml, functions/ and versions/
        self.hints: queue.SimpleQueue[Hint | None] = queue.SimpleQueue()
        self._settling: dict[str, _Pending] = {}
        self._deleting: dict[str, float] = {}
        self._recover_at: float | None = None
        self._overflow_pending = False
        self._requests_at = 0.0  # when the CLI's requests table was last read
        self._hashing: set[str] = set()
        self._rehash: set[str] = set()
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="s3sim-hash")
        self._busy = threading.Event()
        # Rescans asked for by the owner, each with an event set once its changes are committed.
        self._rescans: queue.SimpleQueue[tuple[bool, str, threading.Event]] = queue.SimpleQueue()
        self._scanned: list[threading.Event] = []  # set after the next successful commit
        self._thread = threading.Thread(target=self._loop, name="s3sim-intake", daemon=True)

    # -- owner's interface -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.hints.put(None)
        self._thread.join()
        # A large file still being hashed is not in the index yet: the next start finds it.
        self._hasher.shutdown(wait=False, cancel_futures=True)

    def idle(self) -> bool:
        return (
            self.hints.empty()
            and not self._busy.is_set()
            and not self._settling
            and not self._deleting
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
            except Exception:
                # Keep running on the last good state. Whatever was staged is not in the index
                # (the transaction rolled back), so a rescan finds it again: nothing is lost.
                log.exception("intake.error", action="rescanning every bucket")
                self._stager.discard()
                self._recover_at = time.monotonic() + 1.0  # not at once: the fault may persist
            finally:
                self._busy.clear()

    def _release_scanned(self) -> None:
        for done in self._scanned:
            done.set()
        self._scanned.clear()

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
            if len(self._stager) >= COMMIT_EVERY:  # in a burst, hand work on early
                self._stager.commit()
        if self._overflow_pending:
            self._overflow_pending = False
            self._rescan(True, "overflow")
        self._run_timers(time.monotonic())
        self._take_requests()
        self._stager.commit()

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
        if kind == "watch_limit" or (hint.path == self._buckets_dir and kind != "rescan"):
            self._control(hint)  # the watcher itself needs attention: the runtime decides
            return
        if hint.dest == self._buckets_dir:
            self._control(Hint("dir_created", hint.dest))
            return
        if kind == "hashed":
            self._hashed(hint.path, hint.dest)
            return
        if kind == "rescan":
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
        if keys.is_ignored(key, self._config().settings.ignore):
            return
        why_not = keys.problem(key)
        if why_not is not None:
            _skipped(bucket, key, why_not)
            return
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
        if path in self._hashing:  # a newer write while hashing: hash again when it is done
            self._rehash.add(path)
            return
        try:
            size, mtime_ns, etag = _read(path, self._buckets_dir, HASH_INLINE_BYTES)
        except TooLarge:
            self._hash_aside(path)
            return
        except Vanished as exc:
            _skipped(bucket, key, str(exc), exc.level)
            return
        except OSError as exc:
            _skipped(bucket, key, exc.strerror or str(exc))
            return
        self._stage_put(bucket, key, size, mtime_ns, etag)

    def _hash_aside(self, path: str) -> None:
        """Large files are hashed on another thread, so they hold up no other object."""
        self._hashing.add(path)

        def job() -> None:
            try:
                result = json.dumps(_read(path, self._buckets_dir))
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
            _skipped(located[0], located[1], result)
            return
        self._stage_put(located[0], located[1], *result)

    def _stage_put(self, bucket: str, key: str, size: int, mtime_ns: int, etag: str) -> None:
        entry = IndexEntry(size, mtime_ns, etag)
        if self._stager.indexed(bucket, key) == entry:
            # The same write reported twice (watchdog can report a file in a new folder both
            # by its walk and by its own event). A real rewrite changes the mtime or the bytes.
            return
        self._stager.stage(ObjectChange(bucket, key, "put", size, etag), entry)

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
        except FileNotFoundError:
            del self._settling[path]
            return
        except OSError:  # a symlink loop, a dangling or unreadable link: _put_now says why
            del self._settling[path]
            self._route(path, self._put_now)
            return
        if (st.st_size, st.st_mtime_ns) != (pending.size, pending.mtime_ns):
            pending.size, pending.mtime_ns = st.st_size, st.st_mtime_ns
            pending.due = now + self._config().settings.settle_ms / 1000
            return
        del self._settling[path]
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
        self._stager.stage(ObjectChange(bucket, key, "delete"), None)

    # -- requests from the CLI (replay, refire) ---------------------------------------------
    def _take_requests(self) -> None:
        now = time.monotonic()
        if now - self._requests_at < 0.5:
            return
        self._requests_at = now
        for request_id, kind, body in self._journal.open_requests():
            if kind == "replay":
                self._replay(body.get("ids", []), body.get("request_ids", {}))
            elif kind == "refire":
                self._refire(str(body.get("bucket", "")), str(body.get("prefix", "")))
            self._stager.requests_done.append(request_id)

    def _replay(self, ids: list[int], request_ids: dict[str, str]) -> None:
        """Dead letters again, through the current alias mapping, with new request ids (the
        ones `s3sim replay` chose and recorded when it marked them replayed)."""
        for dead in self._journal.load_many(ids):
            if dead.state not in DEAD_LETTER_STATES:
                continue
            request_id = request_ids.get(str(dead.id)) or str(uuid.uuid4())
            new = NewDelivery(
                request_id,
                dead.target,
                dead.function,
                dead.bucket,
                dead.key,
                dead.payload,
                time.time(),
            )
            self._stager.replays.append((dead.id, new))
            log.info(
                "event.replayed",
                delivery_id=dead.id,
                request_id=new.request_id,
                replay_of=dead.request_id,
                function=dead.function,
                bucket=dead.bucket,
                key=dead.key,
            )

    def _refire(self, bucket: str, prefix: str) -> None:
        """Events for objects that already exist, as if each had just been written."""
        count = 0
        for path, key in self._objects(bucket, prefix):
            try:
                size, mtime_ns, etag = _read(path, self._buckets_dir)
            except Vanished:
                continue
            self._stager.stage(
                ObjectChange(bucket, key, "put", size, etag), IndexEntry(size, mtime_ns, etag)
            )
            count += 1
        log.info("bucket.refired", bucket=bucket, prefix=prefix, objects=count)

    def _objects(self, bucket: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        """(path, key) of every file in a bucket folder that is an object, not noise."""
        ignore = self._config().settings.ignore
        folder = os.path.join(self._buckets_dir, bucket)
        if os.path.islink(folder):
            log.warning(
                "bucket.refused",
                bucket=bucket,
                target=os.path.realpath(folder),
                reason=SYMLINKED_BUCKET,
            )
            return
        for path in _walk_files(folder):
            located = keys.locate(self._buckets_dir, path)
            if (
                located is None
                or not located[1].startswith(prefix)
                or keys.is_ignored(located[1], ignore)
            ):
                continue
            why_not = keys.problem(located[1])
            if why_not is not None:
                _skipped(bucket, located[1], why_not)
                continue
            yield path, located[1]

    # -- rescan ------------------------------------------------------------------------------
    def _rescan(self, fire: bool, reason: str) -> None:
        started = time.monotonic()
        ignore = self._config().settings.ignore
        buckets = (
            {e.name for e in os.scandir(self._buckets_dir) if e.is_dir()}
            if os.path.isdir(self._buckets_dir)
            else set()
        )  # symlinked ones: refused below
        counts = {"put": 0, "delete": 0}
        for bucket in sorted(buckets | set(self._journal.indexed_buckets())):
            for kind in self._rescan_bucket(bucket, ignore, fire):
                counts[kind] += 1
        self._stager.baseline_pending = True
        log.info(
            "watch.rescanned",
            reason=reason,
            fired=fire,
            changed=counts["put"],
            removed=counts["delete"],
            buckets=len(buckets),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _rescan_bucket(self, bucket: str, ignore: tuple[str, ...], fire: bool) -> Iterator[str]:
        index = self._journal.index(bucket)
        for path, key in self._objects(bucket):
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # gone since the walk: if indexed, it is a delete below
                continue
            known = index.pop(key, None)
            if known is not None and (known.size, known.mtime_ns) == (st.st_size, st.st_mtime_ns):
                continue
            if fire:
                self._put_now(path, bucket, key)
            else:
                try:
                    _object_stat(path, self._buckets_dir)
                except Vanished as exc:
                    _skipped(bucket, key, str(exc), exc.level)
                    continue
                self._stager.stage(
                    ObjectChange(bucket, key, "put", st.st_size),
                    IndexEntry(st.st_size, st.st_mtime_ns, ""),
                    fire=False,
                )
            yield "put"
        for key in index:
            if not keys.is_ignored(key, ignore):
                self._stager.stage(ObjectChange(bucket, key, "delete"), None, fire)
                yield "delete"


class TooLarge(Exception):
    """Larger than the caller wants to hash inline."""


def _object_stat(path: str, root: str) -> os.stat_result:
    """The stat of the file an object is read from; links may not leave the buckets."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            if not real.startswith(root + os.sep):
                raise NotAnObject("symlink points outside the buckets folder")
            st = os.stat(real)
    except FileNotFoundError:
        raise Vanished("file vanished before it could be read") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAnObject("symlink loop: the link never reaches a file") from None
        raise NotAnObject(f"unreadable: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotAnObject("not a regular file")
    return st


def _read(path: str, root: str, inline_limit: int | None = None) -> tuple[int, int, str]:
    """(size, mtime_ns, MD5 hex) streamed in chunks; refuses links that leave the buckets."""
    try:
        st = _object_stat(path, root)
        if inline_limit is not None and st.st_size > inline_limit:
            raise TooLarge()
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
            size = f.tell()
        return size, st.st_mtime_ns, digest.hexdigest()
    except FileNotFoundError:
        raise Vanished("file vanished before it could be read") from None
    except PermissionError as exc:
        raise NotAnObject(f"unreadable: {exc.strerror}") from None


def _walk_files(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)
