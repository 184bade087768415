"""The diff behind every rescan: what the object index holds vs. what a walk of a bucket
folder found, both as (size, mtime_ns) per key. Pure."""

from __future__ import annotations

from collections.abc import Mapping

Stamp = tuple[int, int]  # (size, mtime_ns): a file rewritten changes at least one


def diff(index: Mapping[str, Stamp], found: Mapping[str, Stamp]) -> tuple[list[str], list[str]]:
    """(keys new or changed, keys gone), each in the order they were given."""
    changed = [key for key, stamp in found.items() if index.get(key) != stamp]
    gone = [key for key in index if key not in found]
    return changed, gone
