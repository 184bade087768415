"""The paths of one workspace: what a user sees (config.yaml, buckets/, functions/,
versions/) and the simulator's state folder (.s3sim/)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from simulator.errors import WorkspaceLocked


class Workspace:
    """The paths of one workspace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        self.config = self.root / "config.yaml"
        self.buckets = self.root / "buckets"
        self.functions = self.root / "functions"
        self.versions = self.root / "versions"
        self.state = self.root / ".s3sim"
        self.journal = self.state / "journal.sqlite3"
        self.log_file = self.state / "logs" / "events.jsonl"
        self.status_file = self.state / "status.json"
        self.pid_file = self.state / "lock"  # a note of the holder; the lock is on `root`


class WorkspaceLock:
    """One simulator per workspace. The lock is an flock on the workspace folder itself, not
    on a file in .s3sim/: deleting the state folder must not let a second one in. A note of
    the holder's pid (.s3sim/lock) is only for the message a second `s3sim run` prints."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._ws.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkspaceLocked(str(self._ws.root), self._holder()) from None
        self._fd = fd
        self.note_holder()

    def note_holder(self) -> None:
        self._ws.state.mkdir(parents=True, exist_ok=True)
        self._ws.pid_file.write_text(f"pid {os.getpid()}")

    def release(self) -> None:
        if self._fd is not None:
            self._ws.pid_file.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _holder(self) -> str:
        try:
            return self._ws.pid_file.read_text().strip() or "unknown process"
        except OSError:
            return "unknown process"
