"""When a file change counts as complete, as pure bookkeeping (the caller brings the clock).

Two timers per path:
- settle: a file seen created or modified without a close event counts as written once its
  size and mtime have stayed the same for the quiet time (files in new folders on Linux,
  every file on platforms without close events);
- delete: a removal waits the same quiet time, because editors replace a file by removing
  or renaming it and writing it anew: if it is back by then, it was an overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Settling:
    due: float
    size: int = -1
    mtime_ns: int = -1


class Debouncer:
    def __init__(self) -> None:
        self._settling: dict[str, _Settling] = {}
        self._deleting: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self._settling or self._deleting)

    def settle(self, path: str, now: float, quiet_s: float) -> None:
        """A sign of writing: (re)start the quiet time."""
        self._settling.setdefault(path, _Settling(now + quiet_s)).due = now + quiet_s

    def delete_later(self, path: str, now: float, quiet_s: float) -> None:
        self._deleting[path] = now + quiet_s

    def forget(self, path: str) -> None:
        """The path was just read in full (a close event): no timer of its own is needed."""
        self._settling.pop(path, None)
        self._deleting.pop(path, None)

    def next_due(self) -> float | None:
        dues = [s.due for s in self._settling.values()] + list(self._deleting.values())
        return min(dues) if dues else None

    def settle_due(self, now: float) -> list[str]:
        return [path for path, s in self._settling.items() if s.due <= now]

    def deletes_due(self, now: float) -> list[str]:
        due = [path for path, at in self._deleting.items() if at <= now]
        for path in due:
            del self._deleting[path]
        return due

    def still_changing(
        self, path: str, size: int, mtime_ns: int, now: float, quiet_s: float
    ) -> bool:
        """Whether the file changed since the last look (then the quiet time starts again);
        when it did not, its timer ends here."""
        s = self._settling[path]
        if (size, mtime_ns) != (s.size, s.mtime_ns):
            s.size, s.mtime_ns, s.due = size, mtime_ns, now + quiet_s
            return True
        del self._settling[path]
        return False
