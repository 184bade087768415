"""Where the S3 API's buckets and keys are on disk (see `api.py`): a bucket's folder, a key's
path inside it (never through a link that leaves the bucket), the source of a copy, and the
folders a deleted key leaves empty.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from simulator.core import s3_api
from simulator.core.s3_api import S3Error


def bucket_folder(buckets_dir: Path, bucket: str) -> Path:
    folder = buckets_dir / bucket
    if bucket.startswith(".") or "/" in bucket or not folder.is_dir() or folder.is_symlink():
        raise s3_api.no_such_bucket(bucket)
    return folder


def copy_source(buckets_dir: Path, headers: Mapping[str, str]) -> tuple[Path, str]:
    """x-amz-copy-source (`/bucket/key`, URL-encoded) -> (bucket folder, key)."""
    source = unquote(headers["x-amz-copy-source"].split("?", 1)[0]).lstrip("/")
    src_bucket, _, src_key = source.partition("/")
    problem = s3_api.key_problem(src_key)
    if problem is not None:
        raise problem
    return bucket_folder(buckets_dir, src_bucket), src_key


def inside(folder: Path, key: str) -> Path:
    """The key's path, refused if it (or a folder on the way) is a link leaving the bucket."""
    path = folder / key
    if _has_link(str(folder), key) and not is_inside(str(folder), str(path)):
        raise S3Error("AccessDenied", 403, "s3sim: this key leads outside its bucket", key)
    return path


def _has_link(folder: str, key: str) -> bool:
    """Whether a component of the key's path is a symlink (or cannot be told): only then is
    the whole path resolved, which costs an lstat per component from the file system's root
    on every request. The bucket folder itself is never a link (`bucket_folder` refuses it)
    and the key's segments are checked already (no '.', '..', or empty ones)."""
    current = folder
    for segment in key.split("/"):
        current = f"{current}/{segment}"
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return True
        except (FileNotFoundError, NotADirectoryError):
            return False  # nothing below exists yet: nothing can lead out
        except OSError:
            return True
    return False


def is_inside(root: str, path: str) -> bool:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)  # missing components are kept as they are
    return real == real_root or real.startswith(real_root + os.sep)


def remove_empty_parents(folder: Path, path: Path) -> None:
    """S3 has no folders: those a deleted key leaves empty go too (so `a` fits after `a/b`)."""
    parent = path.parent
    while parent != folder and folder in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent
