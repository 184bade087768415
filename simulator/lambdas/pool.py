"""The environment pool: warm worker processes per function version, owned in one place.

An environment is checked out by one invocation at a time. Idle environments are kept warm
per (function, version, generation); `$LATEST` code edits bump the generation so old
environments retire once their in-flight invocation ends. Each environment slot has a
private temp dir that outlives a runtime reset (timeout, crash), as /tmp does in Lambda.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path

from simulator.lambdas import processes
from simulator.lambdas.environment import Blank, Environment, Spec, launch_blank
from simulator.lambdas.runtime_api import RuntimeApi
from simulator.lambdas.runtimes import Runtime


class Spares:
    """Blank runtimes of the default Python runtime started ahead of need, the runtime client
    already imported: a cold start then skips interpreter start-up and those imports (about
    40-100 ms here) and pays only for loading the handler. Owns its refill thread."""

    def __init__(self, count: int, runtime: Runtime | None, api: RuntimeApi) -> None:
        self._count = count if runtime is not None else 0
        self._runtime = runtime
        self._api = api
        self._ready: list[Blank] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="s3sim-spares", daemon=True)

    def start(self) -> None:
        if self._count > 0:
            self._thread.start()

    def take(self, runtime: Runtime) -> Blank | None:
        if runtime != self._runtime:
            return None
        with self._lock:
            for dead in [b for b in self._ready if b.proc.poll() is not None]:
                self._ready.remove(dead)
                dead.discard()
            # One that has imported the runtime client, else the oldest (furthest along).
            ready = [b for b in self._ready if b.preloaded()] or self._ready[:1]
            taken = ready[0] if ready else None
            if taken is not None:
                self._ready.remove(taken)
        self._wake.set()
        return taken

    def _loop(self) -> None:
        while not self._stopping:
            while len(self._ready) < self._count and not self._stopping:
                assert self._runtime is not None
                try:
                    blank = launch_blank(self._runtime, self._api)
                except Exception:  # e.g. out of processes or disk: cold starts launch their own
                    break
                with self._lock:
                    self._ready.append(blank)
            self._wake.wait()
            self._wake.clear()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            for blank in self._ready:
                blank.discard()
            self._ready.clear()


class Pool:
    def __init__(
        self,
        tmp_root: Path,
        log_limit: int,
        force_cold: bool = False,
        spares: int = 0,
        default_runtime: Runtime | None = None,
        on_idle_output: Callable[[Spec, str], None] | None = None,
        endpoints: Mapping[str, str] | None = None,
    ) -> None:
        self._endpoints = dict(endpoints or {})  # AWS_ENDPOINT_URL_*: the local APIs
        self._tmp_root = tmp_root
        self.api = RuntimeApi()  # one event loop serves every environment's Runtime API
        self.spares = Spares(spares, default_runtime, self.api)
        self.spares.start()
        self._on_idle_output = on_idle_output
        self._log_limit = log_limit
        self.force_cold = force_cold  # a fresh environment for every invocation
        self._idle_since: dict[Environment, float] = {}
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str, int], list[Environment]] = defaultdict(list)
        self._busy: set[Environment] = set()
        self._slots: dict[tuple[str, str], set[int]] = defaultdict(set)
        self._generations: dict[str, int] = defaultdict(int)
        self._closed = False
        self._dead: list[Environment] = []  # found dead at checkout; stopped at the next reap

    def _idle_sink(self, spec: Spec) -> Callable[[str], None] | None:
        sink = self._on_idle_output
        if sink is None:
            return None
        return lambda text: sink(spec, text)

    def generation(self, function: str) -> int:
        return self._generations[function]

    def checkout(self, spec: Spec) -> tuple[Environment, bool]:
        """A warm environment for `spec`, or a new unstarted one (second value: is it cold)."""
        with self._lock:
            idle = self._idle.get(spec.key)
            while idle:
                env = idle.pop()
                self._idle_since.pop(env, None)
                # Its runtime exited while idle (a crash after a result), or $LATEST's settings
                # (handler, environment, timeout, ...) changed in config.yaml since it started.
                if not env.usable() or env.spec != spec:
                    self._release_slot(env)
                    self._dead.append(env)
                    continue
                self._busy.add(env)
                return env, False
            env = Environment(
                spec,
                self._claim_slot(spec),
                self._log_limit,
                self.api,
                self._idle_sink(spec),
                self._endpoints,
            )
            self._busy.add(env)
            return env, True

    def checkin(self, env: Environment) -> None:
        """Return an environment after an invocation; dead or stale ones are stopped."""
        with self._lock:
            self._busy.discard(env)
            keep = env.alive and not self._closed and not self.force_cold and not self._stale(env)
            if keep:
                self._idle[env.spec.key].append(env)
                self._idle_since[env] = time.monotonic()
                return
            self._release_slot(env)
        env.stop()

    def _stale(self, env: Environment) -> bool:
        """Only $LATEST changes under a running environment; published versions never do."""
        return (
            env.spec.version == "$LATEST"
            and env.spec.generation != self._generations[env.spec.function]
        )

    def retire_latest(self, function: str) -> None:
        """$LATEST code changed: idle environments stop now, busy ones when checked in."""
        with self._lock:
            self._generations[function] += 1
            stale = [
                e
                for key, envs in self._idle.items()
                if key[0] == function and key[1] == "$LATEST"
                for e in envs
            ]
            for key in [k for k in self._idle if k[0] == function and k[1] == "$LATEST"]:
                del self._idle[key]
            for env in stale:
                self._idle_since.pop(env, None)
                self._release_slot(env)
        for env in stale:
            env.stop()

    def reap(self, keep_alive_s: float) -> int:
        """Stop environments idle for longer than `keep_alive_s` (Lambda's shutdown of idle
        environments); returns how many were stopped."""
        now = time.monotonic()
        with self._lock:
            expired = [e for e, since in self._idle_since.items() if now - since > keep_alive_s]
            for env in expired:
                self._idle[env.spec.key].remove(env)
                del self._idle_since[env]
                self._release_slot(env)
            expired += self._dead
            self._dead = []
        for env in expired:
            env.stop()
        processes.sweep()  # orphans of a worker that died while idle
        return len(expired)

    def warm_count(self) -> dict[str, int]:
        """Idle + busy environments per `function:version`, for status output."""
        with self._lock:
            counts: dict[str, int] = defaultdict(int)
            for envs in self._idle.values():
                for env in envs:
                    counts[f"{env.spec.function}:{env.spec.version}"] += 1
            for env in self._busy:
                counts[f"{env.spec.function}:{env.spec.version}"] += 1
            return dict(counts)

    def close(self) -> None:
        """Stop every environment (called after delivery has stopped waiting for them)."""
        self.spares.close()
        with self._lock:
            self._closed = True
            envs = [e for idle in self._idle.values() for e in idle] + list(self._busy)
            envs += self._dead
            self._idle.clear()
            self._idle_since.clear()
        for env in envs:  # busy ones too: their events stay pending and run at the next start
            env.stop()
        self.api.shutdown()

    def _claim_slot(self, spec: Spec) -> Path:
        taken = self._slots[(spec.function, spec.version)]
        slot = next(i for i in range(len(taken) + 1) if i not in taken)
        taken.add(slot)
        return self._tmp_root / spec.function / spec.version.replace("$", "") / str(slot)

    def _release_slot(self, env: Environment) -> None:
        # The slot number is the last path component; its temp dir stays for the next runtime.
        self._slots[(env.spec.function, env.spec.version)].discard(int(env.tmp_dir.name))
