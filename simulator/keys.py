"""Paths under buckets/ <-> (bucket, key), and the editor/tool noise filter. Pure."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import PurePosixPath


def locate(buckets_dir: str, path: str) -> tuple[str, str] | None:
    """`<buckets_dir>/<bucket>/<key...>` -> (bucket, key); None for anything else.

    Keys are POSIX paths relative to the bucket folder. Paths that are not valid UTF-8, or
    that climb out with `..`, are not objects.
    """
    prefix = buckets_dir.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    parts = PurePosixPath(path[len(prefix):]).parts
    if len(parts) < 2 or ".." in parts or "." in parts:
        return None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return parts[0], "/".join(parts[1:])


def is_ignored(key: str, patterns: Sequence[str]) -> bool:
    """A key is noise if any of its path components matches an ignore pattern."""
    return any(fnmatch.fnmatchcase(part, pattern)
               for part in key.split("/") for pattern in patterns)
