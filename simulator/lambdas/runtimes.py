"""Lambda runtimes: which interpreter runs a function, and what it may import besides its code.

A managed Python runtime gives a handler the standard library, the runtime client and the
packages AWS bundles (boto3, botocore and their dependencies), and nothing else. The
simulator's own virtual environment holds those packages too (they are dependencies of s3sim,
pinned with it), next to the simulator's own (yaml, structlog, watchdog, ...). So for the
interpreter running the simulator, the runtime folder `.s3sim/runtimes/python3.X/` holds
links to exactly the bundled distributions, found through their metadata; the handler's
interpreter starts without `site` and gets only that folder. For another interpreter
(`runtime: python3.12`), the same distributions at the same versions are installed into that
folder with pip the first time it is used.

`provided.al2023` / `provided.al2` run the function's own `bootstrap` executable instead.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import RuntimeUnavailable

BUNDLED = ("boto3", "awslambdaric")  # and everything they depend on
LAUNCHER = Path(__file__).with_name("launcher.py")
CUSTOM = ("provided.al2023", "provided.al2", "provided")
_PYTHON = re.compile(r"^python3\.(\d{1,2})$")
DEFAULT = f"python{sys.version_info[0]}.{sys.version_info[1]}"


@dataclass(frozen=True)
class Runtime:
    """A resolved runtime: a Python interpreter with its package folder, or a custom one."""

    name: str  # python3.11, provided.al2023, ...
    interpreter: str | None = None  # None for custom runtimes
    packages: Path | None = None

    @property
    def custom(self) -> bool:
        return self.interpreter is None

    @property
    def execution_env(self) -> str:
        """AWS_EXECUTION_ENV as Lambda sets it (custom runtimes have none)."""
        return f"AWS_Lambda_{self.name}" if not self.custom else ""

    def version_arn(self, region: str) -> str:
        """INIT_START's Runtime Version ARN: one stable hash per runtime build here."""
        digest = hashlib.sha256(f"{self.name}|{self.interpreter}|{_versions()}".encode())
        return f"arn:aws:lambda:{region}::runtime:{digest.hexdigest()}"

    @property
    def version_name(self) -> str:
        """INIT_START's Runtime Version, `python:3.11.v<N>` in AWS's form."""
        if self.custom:
            return f"{self.name}.v1"
        return f"{self.name.replace('python', 'python:')}.v{_patch(self.interpreter)}"


def is_valid(name: str) -> bool:
    return name in CUSTOM or _PYTHON.match(name) is not None


class Runtimes:
    """Resolves runtime names; prepares each package folder once (thread-safe)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._ready: dict[str, Runtime] = {}

    def default(self) -> Runtime:
        return self.resolve(None)

    def resolve(self, name: str | None) -> Runtime:
        name = name or DEFAULT
        with self._lock:
            ready = self._ready.get(name)
            if ready is None or (ready.packages is not None and not ready.packages.is_dir()):
                ready = self._ready[name] = self._prepare(name)  # first use, or state removed
            return ready

    def _prepare(self, name: str) -> Runtime:
        if name in CUSTOM:
            return Runtime(name)
        if not _PYTHON.match(name):
            raise RuntimeUnavailable(f"unknown runtime {name!r}: use python3.X or provided.al2023")
        folder = self._root / name
        if name == DEFAULT:
            link_distributions(folder, bundled_distributions())
            return Runtime(name, sys.executable, folder)
        interpreter = shutil.which(name)
        if interpreter is None:
            raise RuntimeUnavailable(
                f"runtime {name} is not installed here: no {name} on PATH "
                f"(install it, or leave `runtime` out to use {DEFAULT})"
            )
        _pip_install(folder, name)
        return Runtime(name, interpreter, folder)


def bundled_distributions(roots: tuple[str, ...] = BUNDLED) -> list[metadata.Distribution]:
    """boto3, awslambdaric (or `roots`) and their dependencies, as installed here."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = _normalise(todo.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise RuntimeUnavailable(
                f"the Lambda runtime package {name} is not installed; reinstall s3sim"
            ) from None
        found[name] = dist
        for requirement in dist.requires or []:
            if ";" in requirement and "extra ==" in requirement:
                continue  # optional extras are not part of the runtime
            todo.append(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0])
    return list(found.values())


def link_distributions(folder: Path, dists: list[metadata.Distribution]) -> None:
    """Make `folder` hold links to exactly the top-level modules and metadata of `dists`."""
    wanted: dict[str, Path] = {}
    for dist in dists:
        for entry in _top_level(dist):
            wanted[entry.name] = entry
    folder.mkdir(parents=True, exist_ok=True)
    for existing in folder.iterdir():
        target = wanted.get(existing.name)
        if not existing.is_symlink() or target is None or os.readlink(existing) != str(target):
            if existing.is_symlink() or existing.is_file():
                existing.unlink()
            else:
                shutil.rmtree(existing)
    for name, target in wanted.items():
        link = folder / name
        if not link.is_symlink():
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            os.replace(tmp, link)  # two simulators preparing at once both end with the link


def _top_level(dist: metadata.Distribution) -> set[Path]:
    """The paths a distribution installed at the top of site-packages (and its metadata)."""
    base = Path(str(dist.locate_file("")))
    entries: set[Path] = set()
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".pth"):
            continue
        if len(parts) == 1 and not parts[0].endswith((".py", ".so", ".pyd")):
            continue
        entries.add(base / parts[0])
    return {e for e in entries if e.exists()}


def _pip_install(folder: Path, name: str) -> None:
    """The bundled distributions, at the simulator's versions, for another interpreter."""
    marker = folder / ".s3sim-installed"
    pins = sorted(f"{d.metadata['Name']}=={d.version}" for d in bundled_distributions())
    if marker.exists() and marker.read_text() == "\n".join(pins):
        return
    shutil.rmtree(folder, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(folder),
        "--python-version",
        name.removeprefix("python"),
        "--only-binary=:all:",
        *pins,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeUnavailable(f"installing the {name} runtime packages failed:\n{done.stderr}")
    marker.write_text("\n".join(pins))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _versions() -> str:
    return ",".join(sorted(f"{d.metadata['Name']}={d.version}" for d in bundled_distributions()))


def _patch(interpreter: str | None) -> int:
    if interpreter == sys.executable:
        return sys.version_info[2]
    return 0
