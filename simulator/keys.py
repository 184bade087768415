"""Paths under buckets/ <-> (bucket, key), and the editor/tool noise filter. Pure."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Sequence


def locate(buckets_dir: str, path: str) -> tuple[str, str] | None:
    """`<buckets_dir>/<bucket>/<key...>` -> (bucket, key); None for anything else.

    Keys are POSIX paths relative to the bucket folder. Paths that are not valid UTF-8, or
    that climb out with `..`, are not objects.
    """
    prefix = buckets_dir.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    parts = [p for p in path[len(prefix):].split("/") if p]  # as PurePosixPath would split
    if len(parts) < 2 or ".." in parts or "." in parts:
        return None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return parts[0], "/".join(parts[1:])


def is_ignored(key: str, patterns: Sequence[str]) -> bool:
    """A key is noise if any of its path components matches an ignore pattern."""
    matcher = _matcher(tuple(patterns))
    return any(matcher(part) for part in key.split("/"))


@functools.lru_cache(maxsize=8)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """One compiled regex for all patterns (checked once per path component, per event)."""
    if not patterns:
        return lambda _: None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match
