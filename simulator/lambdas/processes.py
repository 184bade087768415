"""No process a handler starts outlives its execution environment.

A handler may fork a child that calls setsid(): it leaves the worker's process group, so
killing the group misses it, and once its parent dies PID 1 adopts it and it runs on. On Linux
every worker marks itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER, in worker.py), so
orphans of its descendants are adopted by the worker instead: while a worker lives, everything
its handler started stays in its subtree. Stopping an environment freezes the worker, kills its
whole subtree (found through /proc), then the worker.

`s3sim run` makes the simulator a subreaper too: what a worker that exited on its own (a crash,
`os._exit` in a handler) leaves behind is adopted by the simulator rather than PID 1, and
`sweep` kills and reaps it. Every process the simulator starts goes through `spawn`, so the
sweep knows which children are its own workers and never reaps one (their exit statuses
belong to their Popen objects). Without /proc or prctl (macOS) only the process group is killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
_KILL_WAIT_S = 5.0  # how long the kill loop waits for killed processes to die
_lock = threading.Lock()  # spawn vs sweep: a fresh worker is registered before a sweep looks
_owned: dict[int, subprocess.Popen[bytes]] = {}
_adopting = False  # set once this process is a subreaper that sweeps what it adopts


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str  # as in /proc/<pid>/stat: R, S, D, Z, T, ...
    start_ticks: int  # tells a process from a later one with the same pid


def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (Linux); True if it now does."""
    global _adopting
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _adopting = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _adopting = False
    return _adopting


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Popen, registered as the simulator's own before any sweep can look at it."""
    with _lock:
        proc: subprocess.Popen[bytes] = subprocess.Popen(args, **kwargs)
        _owned[proc.pid] = proc
    return proc


def stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill a worker and everything it started; reap what this process is left with."""
    died_alone = proc.poll() is not None  # its orphans, if any, were adopted by this process
    if not died_alone:
        _signal(proc.pid, signal.SIGSTOP)  # the handler forks no more while its tree is walked
        kill_descendants(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    with _lock:
        if _owned.get(proc.pid) is proc:
            del _owned[proc.pid]
    sweep(live_orphans=died_alone)


def kill_descendants(root: int) -> list[Proc]:
    """SIGKILL every descendant of `root`, again and again until none is left alive: a victim
    may have forked in its last moment. `root` must stay alive meanwhile (stopped is fine):
    as a subreaper it adopts the orphans, which keeps them findable under it."""
    killed: dict[tuple[int, int], Proc] = {}
    deadline = time.monotonic() + _KILL_WAIT_S
    while time.monotonic() < deadline:
        alive = [p for p in descendants(root) if p.state not in ("Z", "X")]
        if not alive:
            break
        fresh = [p for p in alive if (p.pid, p.start_ticks) not in killed]
        for p in fresh:
            _signal(p.pid, signal.SIGKILL)
            killed[(p.pid, p.start_ticks)] = p
        if not fresh:
            time.sleep(0.001)  # killed, not yet dead: the kernel is tearing them down
    return list(killed.values())


def sweep(live_orphans: bool = False) -> int:
    """In a subreaper simulator: kill and reap adopted children (orphans of workers that are
    gone), leaving its own workers alone. Returns how many were reaped. Walking /proc costs
    milliseconds, so unless live orphans are expected (a worker died on its own) it is
    walked only when some child is a zombie."""
    if not _adopting or not (live_orphans or _zombie_child()):
        return 0
    reaped = 0
    with _lock:
        for child in descendants(os.getpid(), depth=1):
            if child.pid in _owned:
                continue
            if child.state not in ("Z", "X"):
                kill_descendants(child.pid)
                _signal(child.pid, signal.SIGKILL)
            try:
                os.waitpid(child.pid, 0)  # ours, and dead or dying
                reaped += 1
            except ChildProcessError:
                pass
    return reaped


def _zombie_child() -> bool:
    try:  # WNOWAIT: only looks; the zombie stays for whoever owns it
        return os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False


def descendants(root: int, depth: int = 1 << 30) -> list[Proc]:
    """Processes below `root` (children first), from /proc; [] where there is no /proc."""
    by_parent: dict[int, list[Proc]] = defaultdict(list)
    for proc in _all_processes():
        by_parent[proc.ppid].append(proc)
    found: list[Proc] = []
    level = [root]
    while level and depth > 0:
        level_procs = [child for pid in level for child in by_parent.get(pid, [])]
        found += level_procs
        level, depth = [p.pid for p in level_procs], depth - 1
    return found


def _all_processes() -> list[Proc]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    return [p for p in map(read_stat, (int(n) for n in names if n.isdigit())) if p is not None]


def read_stat(pid: int) -> Proc | None:
    """One process's /proc/<pid>/stat, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()  # the name may hold spaces and parens
    return Proc(pid, int(fields[1]), fields[0].decode(), int(fields[19]))


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
