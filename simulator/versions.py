"""Published versions: immutable, person-readable snapshots under `versions/<function>/<N>/`.

Each version holds `code/` (a copy of the function's folder at publish time) and
`version.json` (the version-level configuration, CodeSha256 and a SHA-256 per file). Files
are made read-only, and the hash is checked again whenever an environment starts from them.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.config import DEFAULT_IGNORE, Function
from simulator.errors import ResourceNotFound, VersionIntegrityError

_NOT_CODE = (*DEFAULT_IGNORE, "__pycache__", "*.pyc", "*.pyo")


@dataclass(frozen=True)
class Version:
    function: str
    number: int
    code_dir: Path
    code_sha256: str
    settings: dict[str, Any]  # handler, timeout, memory, environment, description (of config)
    description: str
    created: str
    files: dict[str, str]

    @property
    def handler(self) -> str:
        return str(self.settings["handler"])


def code_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, absolute path) of every code file, sorted; caches and noise skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        for name in filenames:
            if not _ignored(name):
                path = Path(dirpath, name)
                found.append((path.relative_to(root).as_posix(), path))
    yield from sorted(found)


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in _NOT_CODE)


def file_hashes(root: Path) -> dict[str, str]:
    return {rel: hashlib.sha256(path.read_bytes()).hexdigest() for rel, path in code_files(root)}


def code_sha256(files: dict[str, str]) -> str:
    """Base64 SHA-256 (Lambda's CodeSha256 form) over the sorted (path, file hash) list.

    Lambda hashes the deployment zip; a folder has no zip, so the canonical listing stands in.
    """
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\0{files[rel]}\n".encode())
    return base64.b64encode(digest.digest()).decode()


class VersionStore:
    def __init__(self, root: Path) -> None:
        self.root = root  # <workspace>/versions
        self._loaded: dict[tuple[str, int], Version] = {}

    def published(self) -> dict[str, frozenset[int]]:
        if not self.root.is_dir():
            return {}
        return {d.name: frozenset(self.numbers(d.name)) for d in self.root.iterdir() if d.is_dir()}

    def last_numbers(self) -> dict[str, int]:
        """The highest number ever published per function (counter.json survives a version
        folder that was deleted): tells a lost version from one never published."""
        if not self.root.is_dir():
            return {}
        last = {}
        for folder in self.root.iterdir():
            if folder.is_dir():
                counter = folder / "counter.json"
                try:
                    recorded = int(json.loads(counter.read_text())["last"])
                except (OSError, ValueError, KeyError, TypeError):
                    recorded = 0
                last[folder.name] = max([recorded, *self.numbers(folder.name)])
        return last

    def numbers(self, function: str) -> list[int]:
        folder = self.root / function
        if not folder.is_dir():
            return []
        return sorted(int(d.name) for d in folder.iterdir() if d.name.isdigit())

    def load(self, function: str, number: int, verify: bool = True) -> Version:
        version = self._loaded.get((function, number)) or self._read(function, number)
        if verify:
            self.verify(version)  # the code on disk, always read afresh
        return version

    def _read(self, function: str, number: int) -> Version:
        """version.json, read once per process: a published version never changes (every
        invocation of one asks for its settings)."""
        folder = self.root / function / str(number)
        try:
            meta = json.loads((folder / "version.json").read_text())
        except FileNotFoundError:
            raise ResourceNotFound(f"Function not found: {function}:{number}") from None
        version = Version(
            function, number, folder / "code", meta["CodeSha256"], meta["Settings"],
            meta.get("Description", ""), meta.get("Created", ""), meta["Files"],
        )
        self._loaded[(function, number)] = version
        return version

    def verify(self, version: Version) -> None:
        actual = file_hashes(version.code_dir)
        sha = code_sha256(actual)
        if sha == version.code_sha256 and actual == version.files:
            return
        changed = sorted(set(actual) ^ set(version.files)
                         | {f for f in actual if version.files.get(f) != actual[f]})
        path = version.code_dir / (changed[0] if changed else "")
        raise VersionIntegrityError(version.function, str(version.number), str(path),
                                    version.code_sha256, sha)

    def publish(self, function: Function, source: Path, description: str | None = None
                ) -> tuple[Version, bool]:
        """Snapshot `source` + the function's version settings. Returns (version, created)."""
        if not source.is_dir():
            raise ResourceNotFound(f"Function not found: {function.name} (no folder {source})")
        folder = self.root / function.name
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".staging-{uuid.uuid4().hex}"
        try:
            for rel, path in code_files(source):
                target = staging / "code" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            (staging / "code").mkdir(parents=True, exist_ok=True)
            files = file_hashes(staging / "code")
            sha, settings = code_sha256(files), function.version_settings()
            latest = self._last_published(function.name)
            if latest is not None and latest.code_sha256 == sha and latest.settings == settings:
                return latest, False  # AWS: nothing changed -> the last version is returned
            return self._commit(function.name, staging, files, sha, settings, description), True
        finally:
            if staging.exists():
                _make_writable(staging)
                shutil.rmtree(staging)

    def _last_published(self, function: str) -> Version | None:
        numbers = self.numbers(function)
        return self.load(function, numbers[-1], verify=False) if numbers else None

    def _commit(self, function: str, staging: Path, files: dict[str, str], sha: str,
                settings: dict[str, Any], description: str | None) -> Version:
        counter = self.root / function / "counter.json"
        last = json.loads(counter.read_text())["last"] if counter.exists() else 0
        number = max([last, *self.numbers(function)]) + 1  # numbers are never reused
        meta = {
            "FunctionName": function, "Version": str(number), "CodeSha256": sha,
            "Description": description if description is not None else settings["description"],
            "Created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "RevisionId": str(uuid.uuid4()), "Settings": settings, "Files": files,
        }
        (staging / "version.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        _make_read_only(staging)
        final = self.root / function / str(number)
        os.rename(staging, final)
        counter.write_text(json.dumps({"last": number}) + "\n")
        return self.load(function, number, verify=False)


def _make_read_only(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            os.chmod(Path(dirpath, name), stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    for dirpath, _, _ in os.walk(root, topdown=False):
        os.chmod(dirpath, 0o555)


def _make_writable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(Path(dirpath, name), 0o644)
