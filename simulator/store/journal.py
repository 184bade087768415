"""The SQLite journal: accepted events and their attempts, the object index, dead letters.

An event counts as accepted once its row is committed. WAL mode with synchronous=NORMAL
survives a crash or kill of the process (power loss is out of scope). One connection,
serialised by a lock: SQLite allows one writer anyway, and batches keep transactions few.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    target TEXT NOT NULL,              -- the invoked ARN (often an alias ARN)
    function TEXT NOT NULL,
    bucket TEXT NOT NULL DEFAULT '',
    key TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,             -- the event, as JSON
    accepted_s REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_s REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | done | dead | replayed (a dead
                                             -- letter whose replay was queued)
    condition TEXT,
    last_error TEXT,
    executed_version TEXT,
    finished_s REAL,
    replay_of INTEGER,                 -- the dead letter this delivery replays
    replayed_as TEXT,                  -- of a replayed dead letter: its replay's request id
    response TEXT,                     -- the last attempt's response payload (JSON): the
                                       -- result, or the error payload (destination records'
                                       -- responsePayload)
    lineage TEXT NOT NULL DEFAULT ''   -- the chain of invocations whose write fired the event
);
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries(state) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (       -- from the CLI to a running simulator
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                     -- replay | refire | idle
    body TEXT NOT NULL,
    created_s REAL NOT NULL,
    done_s REAL
);
CREATE TABLE IF NOT EXISTS versions (       -- the seal of each published version, kept
    function TEXT NOT NULL,                 -- outside its folder: version.json cannot
    number INTEGER NOT NULL,                -- vouch for itself
    code_sha256 TEXT NOT NULL,
    settings_sha256 TEXT NOT NULL,
    files TEXT NOT NULL,                    -- {path: sha256}, to name the file that changed
    first_seen_s REAL NOT NULL,
    PRIMARY KEY (function, number)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class NewDelivery:
    request_id: str
    target: str
    function: str
    bucket: str
    key: str
    payload: dict[str, Any]
    accepted_s: float
    # The chain of invocations whose write fired the event (core/lineage.py); "" for none.
    lineage: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class Delivery(NewDelivery):
    id: int
    attempts: int
    due_s: float
    state: str
    condition: str | None = None
    last_error: str | None = None
    executed_version: str | None = None
    replayed_as: str | None = None
    response: Any = None  # the last attempt's response payload (None before any attempt)


@dataclass(frozen=True)
class VersionSeal:
    """What a published version held when it was published (or first seen)."""

    function: str
    number: int
    code_sha256: str
    settings_sha256: str
    files: dict[str, str]
    first_seen_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Finished:
    """A delivery's last word: done, or dead after its last attempt."""

    delivery_id: int
    state: str  # done | dead
    attempts: int
    version: str | None  # the executed version
    finished_s: float
    condition: str | None = None  # why it is dead: RetriesExhausted | EventAgeExceeded
    error: str | None = None
    response: Any = None  # the last attempt's response payload: the result or the error


@dataclass(frozen=True, kw_only=True)
class Rescheduled:
    """A failed attempt with a retry due later (same request id)."""

    delivery_id: int
    attempts: int
    due_s: float
    version: str | None
    error: str
    response: Any = None


Outcome = Finished | Rescheduled


@dataclass(frozen=True)
class IndexEntry:
    size: int
    mtime_ns: int
    etag: str


_DELIVERY_COLUMNS = (
    "request_id, target, function, bucket, key, payload, accepted_s, id, "
    "attempts, due_s, state, condition, last_error, executed_version, "
    "replayed_as, response, lineage"
)
DEAD_LETTER_STATES = ("dead", "replayed")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._db, self._reader, self._identity = self._open()
        self._io_failed = False  # a connection met a disk I/O error: restore
        # The WAL's and the shared-memory file's identities, taken as the connections open
        # them (taken later, a stranger's files in their place could be adopted: a reader
        # that opened the database after ours were removed creates new ones).
        self._wal_identity: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._wal_identity = self._opened_sides()

    def _open(self) -> tuple[sqlite3.Connection, sqlite3.Connection, tuple[int, int]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # Reads get their own connection: in WAL mode they never wait for a writer's
        # transaction (an intake batch must not hold up invocations loading their event).
        reader = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        st = os.stat(self.path)
        return db, reader, (st.st_dev, st.st_ino)

    def removed(self) -> bool:
        """The database file or its WAL was deleted or replaced under the open connections
        (someone removed the state folder, or just the -wal): writes still go to the unlinked
        files, so nothing is lost yet, but no other process sees them and a crash would lose
        them. While this process holds its connections SQLite never deletes the WAL itself."""
        if self._io_failed:  # a file went under the connections in a way stat cannot see
            return True
        try:
            st = os.stat(self.path)
            sides = self._sides()
        except FileNotFoundError:
            return True
        if self._wal_identity is None:
            self._wal_identity = sides
        return (st.st_dev, st.st_ino) != self._identity or sides != self._wal_identity

    def _opened_sides(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """`_sides` of the files just opened (None if SQLite has not made them yet: the
        first `removed` check takes them then)."""
        self._reader.execute("SELECT 1").fetchall()  # a read: SQLite opens both files
        try:
            return self._sides()
        except FileNotFoundError:
            return None

    def _sides(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The WAL's and the shared-memory file's (device, inode); the -shm's loss turns
        every read into a disk I/O error."""
        wal = os.stat(f"{self.path}-wal")
        shm = os.stat(f"{self.path}-shm")
        return (wal.st_dev, wal.st_ino), (shm.st_dev, shm.st_ino)

    def restore(self) -> None:
        """Write the open database (what the unlinked file holds, WAL included) back to its
        path and continue on the copy: every accepted event, retry and dead letter kept."""
        with self._lock, self._read_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):  # a stranger's file in our place goes
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            target = sqlite3.connect(self.path)
            try:
                self._db.backup(target)
            finally:
                target.close()
            self._db.close()
            self._reader.close()
            self._db, self._reader, self._identity = self._open()
            self._wal_identity = self._opened_sides()
            self._io_failed = False

    def rows(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        """A read on the reader connection: it never waits for a writer's transaction (the
        alias history and the deployments, read by the supervisor ten times a second)."""
        return self._read(sql, args)

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        with self._read_lock:
            try:
                return self._reader.execute(sql, tuple(args)).fetchall()
            except sqlite3.OperationalError as exc:
                self._note_io(exc)
                raise

    def _note_io(self, exc: sqlite3.OperationalError) -> None:
        """A disk I/O error on an open connection: its files were removed or replaced (the
        state folder, mid-removal); `removed` then asks for a restore."""
        if "disk I/O error" in str(exc):
            self._io_failed = True

    def _migrate(self) -> None:
        """Columns added since older journals were written. In a write transaction, so CLI
        processes opening the journal at once do not both add a column."""
        with self.transaction() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(deliveries)")}
            added = (
                ("replay_of", "INTEGER"),
                ("replayed_as", "TEXT"),
                ("response", "TEXT"),
                ("lineage", "TEXT NOT NULL DEFAULT ''"),
            )
            for name, kind in added:
                if name not in columns:
                    db.execute(f"ALTER TABLE deliveries ADD COLUMN {name} {kind}")

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._note_io(exc)
                raise

    # -- requests from the CLI ---------------------------------------------------------------
    def add_request(self, kind: str, body: dict[str, Any]) -> int:
        with self.transaction() as db:
            return self.insert_request(db, kind, body)

    @staticmethod
    def insert_request(db: sqlite3.Connection, kind: str, body: dict[str, Any]) -> int:
        cursor = db.execute(
            "INSERT INTO requests(kind, body, created_s) VALUES(?, ?, ?)",
            (kind, json.dumps(body), time.time()),
        )
        return int(cursor.lastrowid or 0)

    # -- dead letters and their replays ------------------------------------------------------
    @staticmethod
    def dead_letter_states(
        db: sqlite3.Connection, ids: list[int], function: str | None
    ) -> dict[int, tuple[str, str | None]]:
        """(state, replayed_as) of those ids that are dead letters (of `function`), read
        inside the caller's transaction so the decision and the marking are one."""
        marks = ",".join("?" * len(ids))
        rows = db.execute(
            f"SELECT id, state, replayed_as, function FROM deliveries WHERE id IN "
            f"({marks}) AND state IN ('dead', 'replayed')",
            ids,
        ).fetchall()
        return {int(i): (str(s), r) for i, s, r, f in rows if function in (None, f)}

    @staticmethod
    def dead_letter_ids(
        db: sqlite3.Connection, states: tuple[str, ...], function: str | None
    ) -> list[int]:
        marks = ",".join("?" * len(states))
        rows = db.execute(
            f"SELECT id FROM deliveries WHERE state IN ({marks}) "
            f"AND (? IS NULL OR function = ?) ORDER BY id",
            (*states, function, function),
        ).fetchall()
        return [int(r[0]) for r in rows]

    @staticmethod
    def mark_replayed(db: sqlite3.Connection, delivery_id: int, request_id: str) -> bool:
        """A dead letter is replayed at most once unless asked again: this state change is
        what `s3sim replay` claims, in the transaction that queues the replay."""
        cursor = db.execute(
            "UPDATE deliveries SET state = 'replayed', replayed_as = ? "
            "WHERE id = ? AND state IN ('dead', 'replayed')",
            (request_id, delivery_id),
        )
        return cursor.rowcount == 1

    def open_requests(self) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._read("SELECT id, kind, body FROM requests WHERE done_s IS NULL ORDER BY id")
        return [(int(i), str(k), json.loads(b)) for i, k, b in rows]

    @staticmethod
    def finish_request(db: sqlite3.Connection, request_id: int) -> None:
        db.execute("UPDATE requests SET done_s = ? WHERE id = ?", (time.time(), request_id))

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, name: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    @staticmethod
    def set_meta(db: sqlite3.Connection, name: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta(name, value) VALUES(?, ?) ON CONFLICT(name) "
            "DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # -- version seals -----------------------------------------------------------------------
    def version_seal(self, function: str, number: int) -> VersionSeal | None:
        rows = self._read(
            "SELECT code_sha256, settings_sha256, files, first_seen_s FROM versions "
            "WHERE function = ? AND number = ?",
            (function, number),
        )
        if not rows:
            return None
        code, settings, files, first_seen_s = rows[0]
        return VersionSeal(function, number, code, settings, json.loads(files), first_seen_s)

    def sealed_versions(self) -> set[tuple[str, int]]:
        return {(str(f), int(n)) for f, n in self._read("SELECT function, number FROM versions")}

    def seal_version(self, seal: VersionSeal, replace: bool = False) -> VersionSeal:
        """Record a seal; returns the one in force. First sight never overwrites a record
        (`replace=False`): the first record wins. Publishing does (`replace=True`): it is
        the one act that makes a version, e.g. after its number was freed by a lost counter."""
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        with self.transaction() as db:
            db.execute(
                f"{verb} INTO versions(function, number, code_sha256, settings_sha256, "
                f"files, first_seen_s) VALUES(?, ?, ?, ?, ?, ?)",
                (
                    seal.function,
                    seal.number,
                    seal.code_sha256,
                    seal.settings_sha256,
                    json.dumps(seal.files, sort_keys=True),
                    seal.first_seen_s or time.time(),
                ),
            )
        recorded = self.version_seal(seal.function, seal.number)
        assert recorded is not None
        return recorded

    # -- object index ------------------------------------------------------------------------
    def lookup(self, bucket: str, key: str) -> IndexEntry | None:
        rows = self._read(
            "SELECT size, mtime_ns, etag FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
        )
        return IndexEntry(*rows[0]) if rows else None

    def index(self, bucket: str) -> dict[str, IndexEntry]:
        rows = self._read(
            "SELECT key, size, mtime_ns, etag FROM objects WHERE bucket = ?", (bucket,)
        )
        return {key: IndexEntry(size, mtime, etag) for key, size, mtime, etag in rows}

    def finished(self, request_ids: list[str]) -> dict[str, int]:
        """How many deliveries of these request ids ended, by state (done, dead, replayed)."""
        counts: dict[str, int] = {}
        for start in range(0, len(request_ids), 500):  # within SQLite's variable limit
            chunk = request_ids[start : start + 500]
            rows = self._read(
                "SELECT state, COUNT(*) FROM deliveries WHERE state != 'pending' AND "
                f"request_id IN ({', '.join('?' * len(chunk))}) GROUP BY state",
                chunk,
            )
            for state, count in rows:
                counts[state] = counts.get(state, 0) + count
        return counts

    def indexed_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM objects")[0][0])

    def indexed_buckets(self) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT bucket FROM objects")]

    @staticmethod
    def put_object(db: sqlite3.Connection, bucket: str, key: str, entry: IndexEntry) -> None:
        db.execute(
            "INSERT INTO objects(bucket, key, size, mtime_ns, etag) VALUES(?, ?, ?, ?, ?) "
            "ON CONFLICT(bucket, key) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, etag = excluded.etag",
            (bucket, key, entry.size, entry.mtime_ns, entry.etag),
        )

    @staticmethod
    def delete_object(db: sqlite3.Connection, bucket: str, key: str) -> None:
        db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))

    # -- deliveries --------------------------------------------------------------------------
    @staticmethod
    def insert(db: sqlite3.Connection, new: NewDelivery, replay_of: int | None = None) -> int:
        cursor = db.execute(
            "INSERT INTO deliveries(request_id, target, function, bucket, key, payload, "
            "accepted_s, due_s, replay_of, lineage) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new.request_id,
                new.target,
                new.function,
                new.bucket,
                new.key,
                orjson.dumps(new.payload).decode(),
                new.accepted_s,
                new.accepted_s,
                replay_of,
                new.lineage,
            ),
        )
        return int(cursor.lastrowid or 0)

    @staticmethod
    def record(db: sqlite3.Connection, outcome: Outcome) -> None:
        if isinstance(outcome, Finished):
            db.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, condition = ?, last_error = ?, "
                "executed_version = ?, finished_s = ?, response = ? WHERE id = ?",
                (
                    outcome.state,
                    outcome.attempts,
                    outcome.condition,
                    outcome.error,
                    outcome.version,
                    outcome.finished_s,
                    _response_json(outcome.response),
                    outcome.delivery_id,
                ),
            )
        else:
            db.execute(
                "UPDATE deliveries SET attempts = ?, due_s = ?, last_error = ?, "
                "executed_version = ?, response = ? WHERE id = ?",
                (
                    outcome.attempts,
                    outcome.due_s,
                    outcome.error,
                    outcome.version,
                    _response_json(outcome.response),
                    outcome.delivery_id,
                ),
            )

    def load(self, delivery_id: int) -> Delivery:
        rows = self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)
        )
        return _delivery(rows[0])

    def load_many(self, ids: list[int]) -> list[Delivery]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id IN ({marks}) ORDER BY id", ids
        )
        return [_delivery(r) for r in rows]

    def open_deliveries(self) -> list[tuple[int, str, float]]:
        """(id, function, due_s) of every delivery not yet finished: the work to resume."""
        with self._lock:
            return [
                (int(i), str(f), float(d))
                for i, f, d in self._db.execute(
                    "SELECT id, function, due_s FROM deliveries WHERE state = 'pending' ORDER BY id"
                )
            ]

    def since(self, after_id: int) -> list[Delivery]:
        """Every delivery with an id above `after_id`, oldest first: what happened since."""
        rows = self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id > ? ORDER BY id", (after_id,)
        )
        return [_delivery(r) for r in rows]

    def query(
        self,
        state: str | tuple[str, ...] | None = None,
        limit: int = 1000,
        function: str | None = None,
    ) -> list[Delivery]:
        states = (state,) if isinstance(state, str) else state or ()
        clauses = [f"state IN ({','.join('?' * len(states))})"] if states else []
        clauses += ["function = ?"] if function else []
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        args = (*states, *((function,) if function else ()))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries {where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [_delivery(r) for r in rows]

    def open_summary(self) -> list[tuple[str, str, int, float]]:
        """(function, state, attempts, due_s) of every open delivery, for status output."""
        with self._lock:
            return [
                (str(f), str(s), int(a), float(d))
                for f, s, a, d in self._db.execute(
                    "SELECT function, state, attempts, due_s FROM deliveries "
                    "WHERE state = 'pending'"
                )
            ]

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT function, state, count(*) FROM deliveries GROUP BY function, state"
            ).fetchall()
        return {(f, s): int(n) for f, s, n in rows}


def _delivery(row: tuple[Any, ...]) -> Delivery:
    values = list(row)
    values[5] = orjson.loads(values[5])
    if values[15] is not None:
        values[15] = orjson.loads(values[15])
    return Delivery(*values[:-1], lineage=values[-1])


def _response_json(response: Any) -> str | None:
    """A response payload as JSON; one that is not JSON (a handler's bytes) is kept as text."""
    if response is None:
        return None
    return orjson.dumps(response, default=str).decode()
