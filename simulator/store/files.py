"""Whole-or-nothing file writes: a temp dotfile beside the target, renamed over it.

Readers (the watcher, `s3sim status`, a running simulator reloading config.yaml) only ever
see the old file or the new one. A write that fails (a full disk) removes its temp file and
raises, leaving the target as it was.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_atomic(path: Path, text: str, keep_mode: bool = False) -> None:
    """Replace `path` with `text`; with `keep_mode`, the new file keeps the old one's
    permissions."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # a dotfile: never an object
    try:
        tmp.write_text(text, encoding="utf-8")
        if keep_mode:
            try:
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)
            except OSError:  # no old file, or its mode cannot be read: the default mode
                pass
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
