"""The S3 API's stored object attributes (`core.s3_meta.ObjectMeta`), outside the bucket
folder, in `.s3sim/metadata.sqlite3`.

One row per object, tied to the file it describes by (size, mtime_ns, inode) as the API left
it: a file changed, replaced or dropped by hand no longer matches, and reads as S3 answers an
object stored without attributes (binary/octet-stream, the MD5 ETag). A row is written in one
transaction before its file is renamed into place (a rename keeps the inode and mtime), so a
GET right after the PUT finds it. Used by the S3 API's thread only.

A database of its own rather than a table in the journal: the journal is the intake's
(every write there is a delivery transaction), and losing this file loses only attributes.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from simulator.core.s3_meta import ObjectMeta

_SCHEMA = """
CREATE TABLE IF NOT EXISTS object_meta (
    bucket   TEXT NOT NULL,
    key      TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    meta     TEXT NOT NULL,      -- ObjectMeta as JSON
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
"""
Identity = tuple[int, int, int]  # size, mtime_ns, inode


def identity(st: os.stat_result) -> Identity:
    return st.st_size, st.st_mtime_ns, st.st_ino


class MetadataStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        """The connection, opened again when the state folder was deleted meanwhile (the
        attributes are then gone, as the rest of the state)."""
        if self._db is not None and not self._path.exists():
            self._db.close()
            self._db = None
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def get(self, bucket: str, key: str, st: os.stat_result) -> ObjectMeta | None:
        """The attributes stored for this very file; None if none are, or the file changed."""
        row = (
            self._conn()
            .execute(
                "SELECT size, mtime_ns, inode, meta FROM object_meta WHERE bucket=? AND key=?",
                (bucket, key),
            )
            .fetchone()
        )
        if row is None or tuple(row[:3]) != identity(st):
            return None
        return ObjectMeta.from_json(row[3])

    def in_bucket(self, bucket: str) -> dict[str, tuple[Identity, ObjectMeta]]:
        """Every row of a bucket (for a listing: one query, not one per key)."""
        rows = self._conn().execute(
            "SELECT key, size, mtime_ns, inode, meta FROM object_meta WHERE bucket=?", (bucket,)
        )
        return {r[0]: ((r[1], r[2], r[3]), ObjectMeta.from_json(r[4])) for r in rows}

    def put(self, bucket: str, key: str, st: os.stat_result, meta: ObjectMeta) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO object_meta VALUES (?, ?, ?, ?, ?, ?)",
            (bucket, key, *identity(st), meta.to_json()),
        )

    def delete(self, bucket: str, key: str) -> None:
        self._conn().execute("DELETE FROM object_meta WHERE bucket=? AND key=?", (bucket, key))
