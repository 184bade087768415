"""Function builds: a `requirements.txt` in a function folder is installed with pip into a
build folder, the way `sam build` vendors dependencies next to the code.

A build is keyed by what it was made from (the requirements text and the runtime), so it is
made once and found again after a restart: `.s3sim/builds/<function>/<key>/`. A build is made
in a temporary folder and renamed into place when pip succeeds, so a half-made build is never
used. When pip fails, its message is logged with the function's name and the last good build
stays in use. Published versions snapshot the build they were published with.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import structlog

from simulator.core.config import Function
from simulator.lambdas.runtimes import Runtime

log = structlog.get_logger("s3sim")
REQUIREMENTS = "requirements.txt"
_COMPLETE = ".s3sim-build-complete"
PIP_TIMEOUT_S = 600


class Builds:
    """Thread-safe: one build per function at a time; readers get a finished folder or None."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        # (requirements path, mtime_ns, size, runtime) -> build folder (or None: no good build)
        self._known: dict[tuple[str, int, int, str], Path | None] = {}

    def current(self, function: str, code_dir: Path, runtime: Runtime) -> Path | None:
        """The build for the function's requirements.txt as it is now (made if needed), the
        last good one if that fails, or None without a requirements.txt."""
        requirements = code_dir / REQUIREMENTS
        try:
            stat = requirements.stat()
        except OSError:
            return None
        seen = (str(requirements), stat.st_mtime_ns, stat.st_size, runtime.name)
        if seen in self._known:  # the hot path: one stat per invocation
            return self._known[seen]
        with self._function_lock(function):
            if seen not in self._known:
                self._known[seen] = self._build(function, code_dir, runtime)
            return self._known[seen]

    def _function_lock(self, function: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(function, threading.Lock())

    def _build(self, function: str, code_dir: Path, runtime: Runtime) -> Path | None:
        text = (code_dir / REQUIREMENTS).read_bytes()
        key = hashlib.sha256(text + b"\0" + runtime.name.encode()).hexdigest()[:16]
        folder = self._root / function / key
        if (folder / _COMPLETE).exists():
            return folder
        started = time.monotonic()
        log.info(
            "function.build_started", function=function, requirements=str(code_dir / REQUIREMENTS)
        )
        staging = self._root / function / f".{key}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        done = _pip(code_dir, staging, runtime)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            last = self._last_good(function)
            log.error(
                "function.build_failed",
                function=function,
                error=_tail(done.stderr or done.stdout),
                kept=str(last) if last else None,
            )
            return last
        (staging / _COMPLETE).write_text(f"{runtime.name}\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
        log.info(
            "function.built",
            function=function,
            build=str(folder),
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        return folder

    def _last_good(self, function: str) -> Path | None:
        folder = self._root / function
        if not folder.is_dir():
            return None
        good = [d for d in folder.iterdir() if (d / _COMPLETE).exists()]
        return max(good, key=lambda d: (d / _COMPLETE).stat().st_mtime_ns, default=None)


def _pip(code_dir: Path, target: Path, runtime: Runtime) -> subprocess.CompletedProcess[str]:
    """pip, run in the function folder (relative paths in requirements.txt resolve there),
    for the runtime's Python version."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--target",
        str(target),
        "-r",
        REQUIREMENTS,
    ]
    if runtime.interpreter not in (None, sys.executable):
        command += ["--python-version", runtime.name.removeprefix("python"), "--only-binary=:all:"]
    try:
        return subprocess.run(
            command,
            cwd=code_dir,
            capture_output=True,
            text=True,
            check=False,
            timeout=PIP_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 1, "", f"pip took over {PIP_TIMEOUT_S} s")
    except OSError as exc:
        return subprocess.CompletedProcess(command, 1, "", f"cannot run pip: {exc}")


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def snapshot_parts(root: Path, fn: Function) -> tuple[Path | None, tuple[Path, ...]]:
    """What a published version snapshots besides the code (`s3sim publish` and the Lambda
    API's PublishVersion): the requirements.txt build, made now if needed, and the layers."""
    from simulator.lambdas.runtimes import Runtimes

    state = root / ".s3sim"
    runtime = Runtimes(state / "runtimes").resolve(fn.runtime)
    code = root / "functions" / fn.name
    build = None if runtime.custom else Builds(state / "builds").current(fn.name, code, runtime)
    return build, tuple(root / layer for layer in fn.layers)
