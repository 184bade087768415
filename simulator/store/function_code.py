"""A function's $LATEST folder (`functions/<name>/`) written from a deployment package, as
CreateFunction and UpdateFunctionCode upload it.

The zip is unpacked into a staging folder next to the target, then swapped in with one
rename (RENAME_EXCHANGE where Linux has it), so an environment starting meanwhile sees the
old code or the new, never half of it. Unpacking trusts nothing in the archive: entries that
would land outside the folder (absolute paths, `..`), symlinks, device files and archives
larger than Lambda's unzipped limit are refused before anything is written in place.
"""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import stat
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from simulator.errors import InvalidParameterValue

# Lambda's unzipped quota (250 MB) and its message; the request size limit is the API's.
MAX_UNZIPPED = 262144000
MAX_ENTRIES = 100_000  # far beyond any real package; bounds the work a hostile zip causes
UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def unpack_into(package: bytes, target: Path) -> None:
    """Replace the folder `target` with the files of the zip `package` (created if absent)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.s3sim-new-{uuid.uuid4().hex}"
    try:
        _extract(package, staging)
        swap_in(staging, target)
    finally:
        remove_tree(staging)


def _extract(package: bytes, staging: Path) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(package))
    except (zipfile.BadZipFile, ValueError):
        raise InvalidParameterValue(UNZIP_FAILED) from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise InvalidParameterValue(
                f"The package holds {len(entries)} entries; s3sim unpacks at most {MAX_ENTRIES}"
            )
        staging.mkdir()
        written = 0
        for entry in entries:
            relative = _safe_name(entry)
            if relative is None:
                continue  # a directory entry: folders come with their files
            destination = staging.joinpath(*relative.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            written = _copy_entry(archive, entry, destination, written)


def _safe_name(entry: zipfile.ZipInfo) -> PurePosixPath | None:
    """The entry's path inside the folder, or None for a directory; refuses what escapes."""
    name = entry.filename.replace("\\", "/")
    kind = stat.S_IFMT(entry.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise InvalidParameterValue(
            f"The package holds a symbolic link ({entry.filename}); s3sim does not unpack links"
        )
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise InvalidParameterValue(f"The package holds a special file ({entry.filename})")
    path = PurePosixPath(name)
    if name.startswith("/") or ".." in path.parts or "\0" in name:
        raise InvalidParameterValue(
            f"The package holds an entry outside the function folder ({entry.filename})"
        )
    if entry.is_dir() or kind == stat.S_IFDIR or not path.parts:
        return None
    return path


def _copy_entry(
    archive: zipfile.ZipFile, entry: zipfile.ZipInfo, destination: Path, written: int
) -> int:
    """Copies one file, counting the bytes actually inflated (a header can lie about them)."""
    try:
        with archive.open(entry) as source, open(destination, "wb") as out:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > MAX_UNZIPPED:
                    raise InvalidParameterValue(
                        f"Unzipped size must be smaller than {MAX_UNZIPPED} bytes"
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError):
        raise InvalidParameterValue(UNZIP_FAILED) from None
    mode = (entry.external_attr >> 16) & 0o777
    os.chmod(destination, (mode | 0o600) & 0o755 if mode else 0o644)
    return written


def swap_in(staging: Path, target: Path) -> None:
    """`staging` takes the place of `target`; the old folder ends up at `staging` (or is
    gone when there was none)."""
    if not target.exists():
        os.rename(staging, target)
        staging.mkdir()  # the caller removes it, as it removes the old folder
        return
    if _exchange(staging, target):
        return
    # No renameat2: a short moment without the folder (an environment starting then fails).
    old = target.parent / f".{target.name}.s3sim-old-{uuid.uuid4().hex}"
    os.rename(target, old)
    os.rename(staging, target)
    os.rename(old, staging)


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the C
    library or the file system has no such call."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)  # the loaded libc
    if renameat2 is None:
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(done == 0)


def remove_tree(path: Path) -> None:
    """Removes a folder, read-only files (published versions) included; absent is fine."""
    if not path.exists() and not path.is_symlink():
        return
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(path)
