"""Starts AWS's Python runtime interface client (awslambdaric) inside one execution environment.

Run as a script by the function's interpreter, isolated and without `site`
(`python -I -S launcher.py CONTROL_FD RUNTIME_DIR [READY_FD]`, AWS_LAMBDA_RUNTIME_API set to its
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
_PATH_VARIABLES = (
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "PYTHONPATH",
    "PWD",
    "PATH",
    "LD_LIBRARY_PATH",
)
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
    "logging",
    "traceback",
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


# -- Lambda's paths: /var/task, /opt, /var/runtime --------------------------------------------
# In a mount namespace of its own (a user namespace too when not root: no privileges needed
# where the kernel allows them), the environment sees its code at /var/task, its layers merged
# at /opt and the runtime's packages at /var/runtime, as in Lambda; the host's own entries of
# /var and /opt stay visible (bound back into the tmpfs that adds those folders). Anything
# that fails leaves the host paths in use.
_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_MS_BIND, _MS_REC, _MS_PRIVATE, _MNT_DETACH = 4096, 16384, 1 << 18, 2
_MS_RDONLY, _MS_REMOUNT = 1, 32


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(libc: Any, source: str | None, target: str, fstype: str | None, flags: int) -> None:
    def encode(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    _check(
        libc.mount(encode(source), target.encode(), encode(fstype), flags, None), f"mount {target}"
    )


def _own_namespace(libc: Any) -> None:
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        _check(libc.unshare(_CLONE_NEWNS), "unshare")
    else:
        _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare")
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1"),
            ("gid_map", f"{gid} {gid} 1"),
        ):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing propagates to the host


def _graft(libc: Any, top: str, added: dict[str, str]) -> None:
    """Cover `top` with a tmpfs holding the host's entries of `top` (bound back) and `added`
    (name -> host folder, bound in)."""
    keep: dict[str, int] = {}
    links: dict[str, str] = {}
    if os.path.isdir(top):
        for entry in os.scandir(top):
            if entry.name in added:
                continue
            if entry.is_symlink():
                links[entry.name] = os.readlink(entry.path)
            else:
                keep[entry.name] = os.open(entry.path, os.O_PATH | os.O_NOFOLLOW)
    sources = {name: os.open(path, os.O_PATH) for name, path in added.items()}
    _mount(libc, "tmpfs", top, "tmpfs", 0)
    try:
        for name, fd in [*keep.items(), *sources.items()]:
            target = os.path.join(top, name)
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.mkdir(target)
            else:
                open(target, "w").close()
            _mount(libc, f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC)
        for name, link in links.items():
            os.symlink(link, os.path.join(top, name))
    except OSError:
        libc.umount2(top.encode(), _MNT_DETACH)
        raise
    finally:
        for fd in [*keep.values(), *sources.values()]:
            os.close(fd)


def _read_only(libc: Any, folder: str) -> None:
    """Bind `folder` onto itself, read-only (best effort: a folder that cannot be is left)."""
    try:
        _mount(libc, folder, folder, None, _MS_BIND | _MS_REC)
        _mount(libc, None, folder, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)
    except OSError:
        pass


def _merge_layers(target: str, layers: list[str]) -> None:
    """Lambda extracts every layer into /opt in order, a later one's files winning: the same
    tree as links, real folders only where two layers share one."""
    names: dict[str, list[str]] = {}
    for layer in layers:
        if os.path.isdir(layer):
            for name in os.listdir(layer):
                names.setdefault(name, []).append(os.path.join(layer, name))
    for name, paths in names.items():
        dirs = [p for p in paths if os.path.isdir(p) and not os.path.islink(p)]
        if len(dirs) > 1 and len(dirs) == len(paths):
            os.mkdir(os.path.join(target, name))
            _merge_layers(os.path.join(target, name), dirs)
        else:
            os.symlink(paths[-1], os.path.join(target, name))


def _lambda_paths(init: dict[str, Any]) -> dict[str, str] | None:
    """Mount Lambda's paths; returns host path -> Lambda path, or None if not possible here."""
    layout = init.get("layout")
    if not layout or not sys.platform.startswith("linux"):
        return None
    try:
        libc = _libc()
        _own_namespace(libc)
        _graft(libc, "/var", {"task": layout["task"], "runtime": layout["runtime"]})
        _graft(libc, "/opt", {})
        _merge_layers("/opt", layout["layers"])
    except (OSError, AttributeError, ValueError):
        return None
    for folder in layout.get("read_only", []):
        _read_only(libc, folder)
    moved = {layout["task"]: "/var/task", layout["runtime"]: "/var/runtime"}
    moved.update(dict.fromkeys(layout["layers"], "/opt"))
    return moved


def _moved(value: str, moved: dict[str, str]) -> str:
    """`value` (a path, or a colon-separated list of paths) with host folders replaced."""
    out = []
    for part in value.split(":"):
        for host, there in moved.items():
            if part == host or part.startswith(host + "/"):
                part = there + part[len(host) :]
                break
        out.append(part)
    return ":".join(out)


def _become(init: dict[str, Any]) -> None:
    """Turn this blank runtime into the function's environment."""
    moved = _lambda_paths(init) or {}
    env = {k: _moved(v, moved) if k in _PATH_VARIABLES else v for k, v in init["env"].items()}
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    os.chdir(_moved(init["code_dir"], moved))
    # The task root first, then the build, then the layers (paths deduplicated: layers all
    # become /opt/... once merged).
    path = list(dict.fromkeys(_moved(p, moved) for p in init["path"]))
    sys.path[:0] = path
    sys.argv = ["/var/runtime/bootstrap", init["handler"]]
    # The runtime client's main reads the log settings as it loads: imported now, with the
    # environment set and byte-code still cached beside it (not under the function's prefix,
    # which $LATEST never writes), so a cold start does not compile it.
    for name in ("awslambdaric.__main__", "awslambdaric.lambda_literals"):
        importlib.import_module(name)
    sys.pycache_prefix = init.get("pycache_prefix")
    sys.dont_write_bytecode = not init.get("cache_bytecode", True)
    # What `site` would have added, without its site-packages: exit(), quit(), help().
    site.setquit()
    site.setcopyright()
    site.sethelper()
    _install_checked_imports(_moved(init["code_dir"], moved))


def main(argv: list[str]) -> int:
    _become_subreaper()  # before init: a spare pays for it while it waits, not a cold start
    control, runtime_dir = int(argv[1]), argv[2]
    _preload(runtime_dir)
    if len(argv) > 3:  # the pool prefers spares that have got this far
        os.write(int(argv[3]), b"1")
        os.close(int(argv[3]))
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
