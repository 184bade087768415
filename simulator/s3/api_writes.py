"""Writes the S3 API made, waiting for the folder watcher to see them.

An object written through the API lands as a file, and the watcher reports it like any other
file: the event is fired once, by the intake. The API says beforehand what it wrote (the
key, the bytes' MD5, the request's ids and client, the event name and ETag S3 would report),
and the intake claims that record when it sees the file with those bytes, so the event
carries the request's own `responseElements` and `sourceIPAddress`. A record nobody claims
(the file was changed again before the watcher looked) expires; that write then fires as a
plain `Put`, as a hand edit would.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from simulator.core.s3_events import Origin

EXPIRY_S = 120.0


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
