"""Files as objects: which files in a bucket folder are objects, and their size, mtime and
eTag (MD5), read in constant memory. Links may not lead outside the buckets folder."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator

import structlog

from simulator.core import keys

log = structlog.get_logger("s3sim")
_CHUNK = 1 << 20

SYMLINKED_BUCKET = (
    "bucket folders must be real folders: a symlinked one is not watched "
    "live, so it is not read at all (move the data under buckets/, or "
    "bind-mount it there)"
)


class Vanished(Exception):
    """The file disappeared or changed type between its event and reading it."""

    level = "info"  # a normal race: the file is simply gone


class NotAnObject(Vanished):
    """The path is there but cannot be an object (a link leaving the buckets, a loop, a
    device): the user should hear about it."""

    level = "warning"


class TooLarge(Exception):
    """Larger than the caller wants to hash inline."""


def skipped(bucket: str, key: str, reason: str, level: str = "warning") -> None:
    getattr(log, level)("s3.object_skipped", bucket=bucket, key=keys.shown(key), reason=reason)


def object_stat(path: str, root: str) -> os.stat_result:
    """The stat of the file an object is read from; links may not leave the buckets."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(path)
            if not real.startswith(root + os.sep):
                raise NotAnObject("symlink points outside the buckets folder")
            st = os.stat(real)
    except FileNotFoundError:
        raise Vanished("file vanished before it could be read") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAnObject("symlink loop: the link never reaches a file") from None
        raise NotAnObject(f"unreadable: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotAnObject("not a regular file")
    return st


def read(path: str, root: str, inline_limit: int | None = None) -> tuple[int, int, str]:
    """(size, mtime_ns, MD5 hex) streamed in chunks; refuses links that leave the buckets."""
    try:
        st = object_stat(path, root)
        if inline_limit is not None and st.st_size > inline_limit:
            raise TooLarge()
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
            size = f.tell()
        return size, st.st_mtime_ns, digest.hexdigest()
    except FileNotFoundError:
        raise Vanished("file vanished before it could be read") from None
    except PermissionError as exc:
        raise NotAnObject(f"unreadable: {exc.strerror}") from None


def walk_files(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)


def in_bucket(
    buckets_dir: str, bucket: str, ignore: tuple[str, ...], prefix: str = ""
) -> Iterator[tuple[str, str]]:
    """(path, key) of every file in a bucket folder that is an object, not noise; files that
    cannot be S3 objects are reported and left out."""
    folder = os.path.join(buckets_dir, bucket)
    if os.path.islink(folder):
        log.warning(
            "bucket.refused",
            bucket=bucket,
            target=os.path.realpath(folder),
            reason=SYMLINKED_BUCKET,
        )
        return
    for path in walk_files(folder):
        located = keys.locate(buckets_dir, path)
        if located is None or not located[1].startswith(prefix):
            continue
        if keys.is_ignored(located[1], ignore):
            continue
        why_not = keys.problem(located[1])
        if why_not is not None:
            skipped(bucket, located[1], why_not)
            continue
        yield path, located[1]
