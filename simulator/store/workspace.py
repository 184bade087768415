"""The paths of one workspace: what a user sees (config.yaml, buckets/, functions/,
versions/) and the simulator's state folder (.s3sim/)."""

from __future__ import annotations

import os
from pathlib import Path


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
