"""Published versions: immutable, person-readable snapshots under `versions/<function>/<N>/`.

Each version holds `code/` (a copy of the function's folder at publish time), `build/` (the
packages its requirements.txt installed, if any), `layers/<i>/` (a copy of each layer, in
order), and `version.json` (the version-level settings, CodeSha256, SettingsSha256 and a SHA-256 per
file). Files are made read-only. A file cannot vouch for itself, so the seal (CodeSha256,
SettingsSha256, file hashes) is also kept outside the folder, in the journal: recorded at
publish, or when a version is first seen (a fresh clone has versions but no journal: trust on
first use). Whenever an environment starts from a version, version.json is read and the code
hashed afresh, and both are checked against that record.
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.core.config import DEFAULT_IGNORE, Function
from simulator.errors import Alteration, ResourceNotFound, SimulatorError, VersionIntegrityError
from simulator.store.journal import Journal, VersionSeal

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
    settings_sha256: str  # computed from `settings` as read
    settings_claim: str | None = None  # version.json's own SettingsSha256 (absent in old ones)

    @property
    def handler(self) -> str:
        return str(self.settings["handler"])

    @property
    def meta_path(self) -> Path:
        return self.code_dir.parent / "version.json"

    @property
    def build_dir(self) -> Path | None:
        build = self.code_dir.parent / "build"
        return build if build.is_dir() else None

    @property
    def layer_dirs(self) -> tuple[Path, ...]:
        layers = self.code_dir.parent / "layers"
        if not layers.is_dir():
            return ()
        return tuple(sorted((d for d in layers.iterdir() if d.name.isdigit()), key=_number))

    def claimed_seal(self) -> VersionSeal:
        """The seal version.json claims for itself."""
        return VersionSeal(
            self.function,
            self.number,
            self.code_sha256,
            self.settings_claim or self.settings_sha256,
            self.files,
        )


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


def artifact_hashes(folder: Path) -> dict[str, str]:
    """The file hashes of a version folder: its code by relative path (as before builds and
    layers existed, so older digests stand), then `/build/...` and `/layers/<i>/...`, whose
    leading slash no code path can have."""
    files = file_hashes(folder / "code")
    if (folder / "build").is_dir():
        files.update({f"/build/{rel}": h for rel, h in file_hashes(folder / "build").items()})
    layers = folder / "layers"
    if layers.is_dir():
        for layer in layers.iterdir():
            for rel, h in file_hashes(layer).items():
                files[f"/layers/{layer.name}/{rel}"] = h
    return files


def _number(path: Path) -> int:
    return int(path.name)


def code_sha256(files: dict[str, str]) -> str:
    """Base64 SHA-256 (Lambda's CodeSha256 form) over the sorted (path, file hash) list.

    Lambda hashes the deployment zip; a folder has no zip, so the canonical listing stands in.
    """
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\0{files[rel]}\n".encode())
    return base64.b64encode(digest.digest()).decode()


def settings_sha256(settings: Mapping[str, Any]) -> str:
    """Base64 SHA-256 over canonical JSON (sorted keys, no spaces) of the version settings."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


class VersionStore:
    def __init__(self, root: Path, journal: Journal | None = None) -> None:
        self.root = root  # <workspace>/versions
        self._journal = journal  # where seals are kept; without one, version.json's own claims
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
        if verify:
            return self.verify(function, number)
        return self._loaded.get((function, number)) or self._cache(self._read(function, number))

    def _cache(self, version: Version) -> Version:
        """version.json, read once per process for the settings of every invocation; what was
        cached is checked against the seal again at every cold start (`verify`)."""
        return self._loaded.setdefault((version.function, version.number), version)

    def _read(self, function: str, number: int) -> Version:
        folder = self.root / function / str(number)
        try:
            meta = json.loads((folder / "version.json").read_text())
        except FileNotFoundError:
            raise ResourceNotFound(f"Function not found: {function}:{number}") from None
        settings = meta["Settings"]
        return Version(
            function,
            number,
            folder / "code",
            meta["CodeSha256"],
            settings,
            meta.get("Description", ""),
            meta.get("Created", ""),
            meta["Files"],
            settings_sha256(settings),
            meta.get("SettingsSha256"),
        )

    def verify(self, function: str, number: int) -> Version:
        """Read version.json and hash the code afresh, and check both against the seal; also
        the copy this process cached earlier (its settings are what environments get).
        Raises VersionIntegrityError naming what changed; returns the verified version."""
        fresh = self._read(function, number)
        actual = artifact_hashes(fresh.code_dir.parent)
        seal = self._seal(fresh, actual)
        alterations = _alterations(fresh, actual, seal)
        if alterations:
            raise VersionIntegrityError(function, str(number), alterations)
        cached = self._loaded.get((function, number))
        self._loaded[(function, number)] = fresh
        if cached is not None and cached.settings_sha256 != seal.settings_sha256:
            # Read while it was altered (now restored): the environment being started got
            # those settings. Refused this once; the next start uses the verified copy.
            raise VersionIntegrityError(
                function,
                str(number),
                [
                    Alteration(
                        "settings",
                        f"{fresh.meta_path} (as read earlier)",
                        seal.settings_sha256,
                        cached.settings_sha256,
                    )
                ],
            )
        return fresh

    def _seal(self, version: Version, actual: dict[str, str]) -> VersionSeal:
        """The journal's record of the version; on first sight, version.json's own claims
        are recorded (trust on first use) if the files agree with them."""
        claimed = version.claimed_seal()
        if self._journal is None:
            return claimed
        recorded = self._journal.version_seal(version.function, version.number)
        if recorded is not None:
            return recorded
        if _alterations(version, actual, claimed):
            return claimed  # not even self-consistent: refused, and nothing is recorded
        return self._journal.seal_version(claimed)

    def seal_unseen(self) -> tuple[list[Version], list[SimulatorError]]:
        """Seal every version the journal has not seen yet (a fresh clone, a new journal):
        trust on first use. Returns the versions sealed now and the problems of those that
        could not be sealed, for the caller to report."""
        if self._journal is None:
            return [], []
        known = self._journal.sealed_versions()
        sealed: list[Version] = []
        problems: list[SimulatorError] = []
        for function, numbers in sorted(self.published().items()):
            for number in sorted(n for n in numbers if (function, n) not in known):
                try:
                    sealed.append(self.verify(function, number))
                except SimulatorError as exc:
                    problems.append(exc)
                except (ValueError, KeyError) as exc:  # version.json unreadable
                    problems.append(
                        SimulatorError(
                            f"{function}:{number}: bad version.json ({type(exc).__name__}: {exc})"
                        )
                    )
        return sealed, problems

    def publish(
        self,
        function: Function,
        source: Path,
        description: str | None = None,
        build: Path | None = None,
        layers: tuple[Path, ...] = (),
    ) -> tuple[Version, bool]:
        """Snapshot `source`, its `build` and `layers` + the function's version settings.
        Returns (version, created)."""
        if not source.is_dir():
            raise ResourceNotFound(f"Function not found: {function.name} (no folder {source})")
        folder = self.root / function.name
        folder.mkdir(parents=True, exist_ok=True)
        _sweep_abandoned(folder)
        staging = folder / f".staging-{os.getpid()}-{uuid.uuid4().hex}"
        try:
            _copy_tree(source, staging / "code")
            if build is not None:
                _copy_tree(build, staging / "build")
            for i, layer in enumerate(layers):
                if not layer.is_dir():
                    raise ResourceNotFound(f"Layer folder not found: {layer}")
                _copy_tree(layer, staging / "layers" / str(i))
            files = artifact_hashes(staging)
            sha, settings = code_sha256(files), function.version_settings()
            latest = self._last_published(function.name)
            if latest is not None and latest.code_sha256 == sha and latest.settings == settings:
                return latest, False  # AWS: nothing changed -> the last version is returned
            return self._commit(function.name, staging, files, sha, settings, description), True
        finally:
            if staging.exists():
                _make_writable(staging)
                shutil.rmtree(staging)

    def delete(self, function: str, number: int) -> bool:
        """Removes one published version (DeleteFunction with a Qualifier). counter.json
        stays, so its number is never handed out again. Returns whether it existed."""
        folder = self.root / function / str(number)
        self._loaded.pop((function, number), None)
        if not folder.is_dir():
            return False
        _remove_tree(folder)
        return True

    def delete_function(self, function: str) -> None:
        """Removes every published version of a function and its counter (DeleteFunction):
        a function created again under the name starts at version 1, as in Lambda."""
        for key in [k for k in self._loaded if k[0] == function]:
            del self._loaded[key]
        _remove_tree(self.root / function)

    def _last_published(self, function: str) -> Version | None:
        numbers = self.numbers(function)
        return self._read(function, numbers[-1]) if numbers else None

    def _commit(
        self,
        function: str,
        staging: Path,
        files: dict[str, str],
        sha: str,
        settings: dict[str, Any],
        description: str | None,
    ) -> Version:
        counter = self.root / function / "counter.json"
        last = json.loads(counter.read_text())["last"] if counter.exists() else 0
        number = max([last, *self.numbers(function)]) + 1  # numbers are never reused
        meta = {
            "FunctionName": function,
            "Version": str(number),
            "CodeSha256": sha,
            "SettingsSha256": settings_sha256(settings),
            "Description": description if description is not None else settings["description"],
            "Created": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "RevisionId": str(uuid.uuid4()),
            "Settings": settings,
            "Files": files,
        }
        (staging / "version.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        _make_read_only(staging)
        final = self.root / function / str(number)
        os.rename(staging, final)
        version = self._read(function, number)
        if self._journal is not None:  # publishing is the act that seals: it replaces a record
            self._journal.seal_version(version.claimed_seal(), replace=True)
        counter.write_text(json.dumps({"last": number}) + "\n")
        return self._cache(version)


def _copy_tree(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for rel, path in code_files(source):
        copied = target / rel
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copied)


def _alterations(version: Version, actual: dict[str, str], seal: VersionSeal) -> list[Alteration]:
    """How `version` (as read) and its code on disk (`actual` file hashes) differ from `seal`."""
    found = []
    code = code_sha256(actual)
    if code != seal.code_sha256 or actual != seal.files:
        found.append(
            Alteration(
                "code",
                str(version.code_dir / _changed_file(actual, seal.files)),
                seal.code_sha256,
                code,
            )
        )
    if version.code_sha256 != seal.code_sha256 or version.files != seal.files:
        found.append(
            Alteration("code", str(version.meta_path), seal.code_sha256, version.code_sha256)
        )
    if version.settings_sha256 != seal.settings_sha256:
        found.append(
            Alteration(
                "settings", str(version.meta_path), seal.settings_sha256, version.settings_sha256
            )
        )
    elif version.settings_claim not in (None, seal.settings_sha256):
        found.append(
            Alteration(
                "settings",
                str(version.meta_path),
                seal.settings_sha256,
                str(version.settings_claim),
            )
        )
    return found


def _changed_file(actual: dict[str, str], expected: dict[str, str]) -> str:
    changed = sorted(
        set(actual) ^ set(expected) | {f for f in actual if expected.get(f) != actual[f]}
    )
    return changed[0] if changed else ""


def _make_read_only(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            os.chmod(Path(dirpath, name), stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    for dirpath, _, _ in os.walk(root, topdown=False):
        os.chmod(dirpath, 0o555)


def _sweep_abandoned(folder: Path) -> None:
    """Staging copies left by a publish that was killed (`.staging-<pid>-<id>` of a process
    that is gone); a live publish's own copy is left alone."""
    for path in folder.glob(".staging-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and _alive(int(pid)):
            continue
        _make_writable(path)
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _remove_tree(root: Path) -> None:
    if root.is_dir():
        _make_writable(root)
        shutil.rmtree(root)


def _make_writable(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(Path(dirpath, name), 0o644)
