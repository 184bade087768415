"""Paths under buckets/ <-> (bucket, key), and the editor/tool noise filter. Pure."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Sequence

MAX_KEY_BYTES = 1024  # S3: "The name for a key is a sequence of Unicode characters whose
# UTF-8 encoding is at most 1,024 bytes long."


def locate(buckets_dir: str, path: str) -> tuple[str, str] | None:
    """`<buckets_dir>/<bucket>/<key...>` -> (bucket, key); None for anything else.

    Keys are POSIX paths relative to the bucket folder; paths that climb out with `..` are
    not objects. A key may still be one S3 would refuse: see `problem`.
    """
    prefix = buckets_dir.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    parts = [p for p in path[len(prefix) :].split("/") if p]  # as PurePosixPath would split
    if len(parts) < 2 or ".." in parts or "." in parts:
        return None
    return parts[0], "/".join(parts[1:])


def problem(key: str) -> str | None:
    """Why S3 could not hold an object under this key (None: it can)."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # file-system bytes that are not UTF-8 (surrogate-escaped)
        return "the file name is not valid UTF-8, and S3 object keys are UTF-8: rename the file"
    if size > MAX_KEY_BYTES:
        return (
            f"KeyTooLongError: Your key is too long ({size} bytes of UTF-8; S3 keys are "
            f"at most {MAX_KEY_BYTES:,})"
        )
    return None


def shown(key: str) -> str:
    """The key as text that can always be printed and stored: bytes that are not UTF-8
    appear as \\xNN escapes."""
    return key.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
