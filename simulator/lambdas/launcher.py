"""Starts AWS's Python runtime interface client (awslambdaric) inside one execution environment.

Run as a script by the function's interpreter, isolated and without `site`
(`python -I -S launcher.py CONTROL_FD RUNTIME_DIR`, AWS_LAMBDA_RUNTIME_API already set to its
own endpoint), so it imports nothing of the simulator and
nothing of the simulator's virtual environment. It is started ahead of need (a spare): it
imports the runtime client's heavy parts while it waits, then reads one JSON message on the
control descriptor that turns it into a function's environment (variables, working folder,
import path), and hands over to `awslambdaric`'s own `main`, which talks the Runtime API at
AWS_LAMBDA_RUNTIME_API until it is stopped. Everything after the hand-over is AWS's code.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import marshal
import os
import site
import sys
import time
import types
from typing import Any

_CHECKED_HASH = (0b11).to_bytes(4, "little")  # pyc flags: hash-based, check the source
# Imported while the spare waits: the native client (it reads AWS_LAMBDA_RUNTIME_API when it
# is loaded, so a spare is started with its endpoint's address already set), its JSON
# library, the context and the marshaller. `bootstrap` reads the log format and level when
# imported, so it is imported only once the environment is the function's.
_PRELOAD = (
    "awslambdaric.lambda_runtime_client",
    "awslambdaric.lambda_runtime_marshaller",
    "awslambdaric.lambda_context",
    "awslambdaric.lambda_runtime_log_utils",
    "awslambdaric.lambda_runtime_exception",
    "awslambdaric.lambda_config",
    "http.client",
)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


class CheckedSourceLoader(importlib.machinery.SourceFileLoader):
    """Runs byte-code only if it was compiled from the source as read now: a checked-hash pyc
    whose hash matches. The default loader also trusts a pyc whose (mtime, size) stamp matches
    the source, which a stale or planted file can match (a same-size edit of $LATEST within a
    second, or a published version's byte-code cache); those are compiled over here."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        source = self.get_data(path)
        source_hash = importlib.util.source_hash(source)
        cache = _cache_path(path)
        code = _cached_code(cache, source_hash) if cache else None
        if code is None:
            code = self.source_to_code(source, path)
            if cache and not sys.dont_write_bytecode:
                _write_pyc(cache, source_hash, code)
        return code


def _cache_path(source_path: str) -> str | None:
    try:
        return importlib.util.cache_from_source(source_path)  # honours sys.pycache_prefix
    except NotImplementedError:
        return None


def _cached_code(cache: str, source_hash: bytes) -> types.CodeType | None:
    try:
        with open(cache, "rb") as f:
            data = f.read()
    except OSError:
        return None
    header = importlib.util.MAGIC_NUMBER + _CHECKED_HASH + source_hash
    if not data.startswith(header):
        return None
    try:
        code = marshal.loads(data[len(header) :])
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def _write_pyc(cache: str, source_hash: bytes, code: types.CodeType) -> None:
    data = importlib.util.MAGIC_NUMBER + _CHECKED_HASH + source_hash + marshal.dumps(code)
    tmp = f"{cache}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, cache)  # whole or absent: another environment may read it now
    except OSError:
        pass  # a cache that cannot be written only costs a compile


def _install_checked_imports(code_dir: str) -> None:
    """Source imports through CheckedSourceLoader everywhere; in the function's code folder no
    sourceless .pyc is imported at all (publishing never copies one)."""
    machinery = importlib.machinery
    extensions = (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES)
    sources = (CheckedSourceLoader, machinery.SOURCE_SUFFIXES)
    sourceless = (machinery.SourcelessFileLoader, machinery.BYTECODE_SUFFIXES)
    root = os.path.join(os.path.realpath(code_dir), "")

    def hook(path: str) -> machinery.FileFinder:
        if not os.path.isdir(path or "."):
            raise ImportError("only directories are supported", path=path)
        inside = os.path.join(os.path.realpath(path or "."), "").startswith(root)
        return machinery.FileFinder(path, extensions, sources, *(() if inside else (sourceless,)))

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()


def _become_subreaper() -> None:
    """Adopt the orphans of whatever the handler starts (Linux), so that a setsid()'d
    grandchild stays in this process's subtree, where stopping the environment finds it.
    (simulator/lambdas/processes.py explains; this script imports nothing of the package.)"""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def _preload(runtime_dir: str) -> None:
    site.addsitedir(runtime_dir)  # the runtime's packages (and their .pth files), after stdlib
    for name in _PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            pass


def _become(init: dict[str, Any]) -> None:
    """Turn this blank runtime into the function's environment."""
    os.environ.clear()
    os.environ.update(init["env"])
    time.tzset()
    os.chdir(init["code_dir"])
    sys.path[:0] = init["path"]  # the task root first, then the build, then the layers
    sys.argv = ["/var/runtime/bootstrap", init["handler"]]
    sys.pycache_prefix = init.get("pycache_prefix")
    sys.dont_write_bytecode = not init.get("cache_bytecode", True)
    # What `site` would have added, without its site-packages: exit(), quit(), help().
    site.setquit()
    site.setcopyright()
    site.sethelper()
    _install_checked_imports(init["code_dir"])


def main(argv: list[str]) -> int:
    _become_subreaper()  # before init: a spare pays for it while it waits, not a cold start
    control, runtime_dir = int(argv[1]), argv[2]
    _preload(runtime_dir)
    data = _read_all(control)
    os.close(control)
    if not data:
        return 0  # discarded before it was used
    init = json.loads(data)
    _become(init)
    from awslambdaric import __main__ as ric  # type: ignore[import-untyped]

    ric.main(sys.argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
