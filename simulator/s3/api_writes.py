"""Writes the S3 API made, waiting for the folder watcher to see them.

An object written through the API lands as a file, and the watcher reports it like any other
file: the event is fired once, by the intake. The API says beforehand what it wrote (the
key, the bytes' MD5, the request's ids and client, the event name and ETag S3 would report),
and the intake claims that record when it sees the file with those bytes, so the event
carries the request's own `responseElements` and `sourceIPAddress`. A record nobody claims
(the file was changed again before the watcher looked) expires; that write then fires as a
plain `Put`, as a hand edit would.

Changes that leave the file alone (PutObjectTagging, DeleteObjectTagging) have no file event
to wait for: the API hands them over as notices, and the intake, woken by `wake`, stages them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from simulator.core.s3_events import ObjectChange, Origin

EXPIRY_S = 120.0
# A request's id, its x-amz-id-2, the client's address and the invocation chain it belongs to
# (core/lineage.py): what an event the request fires reports, in Origin's order.
Ids = tuple[str, str, str, str]


@dataclass(frozen=True)
class _Expected:
    md5: str  # "" for a delete
    origin: Origin
    at: float


class ApiWrites:
    """Thread-safe: written by the API's thread, claimed by the intake's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expected: dict[tuple[str, str], _Expected] = {}
        self._notices: list[ObjectChange] = []
        self.wake: Callable[[], None] = lambda: None  # the intake's: a notice is waiting

    def notify(self, change: ObjectChange) -> None:
        """A change with no file event of its own (an object's tags), for the intake."""
        with self._lock:
            self._notices.append(change)
        self.wake()

    def take_notices(self) -> list[ObjectChange]:
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def give_back(self, notices: list[ObjectChange]) -> None:
        """Notices whose commit failed, first in line for the intake's next pass (no wake:
        the intake retries on its own schedule)."""
        with self._lock:
            self._notices[:0] = notices

    def expect(self, bucket: str, key: str, md5: str, origin: Origin) -> None:
        now = time.monotonic()
        with self._lock:
            self._expected[(bucket, key)] = _Expected(md5, origin, now)
            if len(self._expected) > 1000:  # drop the stale ones now and then
                for k in [k for k, e in self._expected.items() if now - e.at > EXPIRY_S]:
                    del self._expected[k]

    def pending(self, bucket: str, key: str) -> bool:
        """Whether the API wrote this key and the watcher has not reported it yet: such a file
        was renamed into place whole, so it needs no settling (a file in a folder the API
        just made is reported by watchdog's walk of the folder, with no close event)."""
        with self._lock:
            found = self._expected.get((bucket, key))
            return found is not None and found.md5 != "" and time.monotonic() - found.at <= EXPIRY_S

    def claim(self, bucket: str, key: str, md5: str) -> Origin | None:
        """The origin of the write that left these bytes (md5 "" for a delete), once."""
        with self._lock:
            found = self._expected.get((bucket, key))
            if found is None or found.md5 != md5:
                return None
            del self._expected[(bucket, key)]
            if time.monotonic() - found.at > EXPIRY_S:
                return None
            return found.origin
