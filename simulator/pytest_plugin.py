"""The pytest plugin (entry point `pytest11`): the `s3sim` fixture runs `s3sim run` on a
temporary workspace, lets a test change objects, aliases and versions, waits until the
simulator says it is idle, and returns what happened as values (simulator.core.activity).

    def test_thumbnail(s3sim):
        sim = s3sim.start(config={...}, files={"functions/thumbnailer/handler.py": CODE})
        sim.put("uploads", "images/cat.jpg", b"...")
        run = sim.settle()
        assert run.only(function="thumbnailer").result == {"size": 128}

Every simulator a test started is stopped when the test ends, passed or failed (SIGTERM,
then SIGKILL), with the environments it ran.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the rest is imported when a test uses the fixture: pytest loads this
    from simulator.core.activity import Activity  # module in every run of the environment
    from simulator.testing import SimulatorProcess

# What a copy of a workspace leaves out: the runtime state (a copy starts fresh), and what a
# repository root that is also a workspace holds besides it.
_NOT_COPIED = (".s3sim", ".git", ".venv", "__pycache__", "*.egg-info", ".*_cache")
TAIL_LINES = 40  # log events shown in a failed test's report, per simulator


class Simulation:
    """One running simulator on its workspace; actions go through the CLI's code paths."""

    def __init__(self, workspace: Path, process: SimulatorProcess) -> None:
        self.workspace = workspace
        self.process = process
        ready = process.wait_for(lambda e: e.get("event") == "simulator.ready")[0]
        self.s3_endpoint: str = ready["s3_endpoint"]
        self.lambda_endpoint: str = ready["lambda_endpoint"]
        self.pid: int = ready["pid"]
        self._changed: set[str] = set()  # paths changed since the last settle
        self._seen_events = 0  # log events of this run reported by earlier settles
        self._seen_delivery = self._last_delivery()

    # -- objects -------------------------------------------------------------------------------
    def put(self, bucket: str, key: str, body: bytes | str = b"") -> None:
        """Drop (or overwrite) an object: a file written into the bucket folder."""
        path = self._object_path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body.encode() if isinstance(body, str) else body)
        self._changed.add(f"buckets/{bucket}/{key}")

    def delete(self, bucket: str, key: str) -> None:
        self._object_path(bucket, key).unlink()
        self._changed.add(f"buckets/{bucket}/{key}")

    def read(self, bucket: str, key: str) -> bytes:
        return self._object_path(bucket, key).read_bytes()

    def keys(self, bucket: str) -> list[str]:
        """The objects in a bucket (ignored editor files included), as keys."""
        root = self.workspace / "buckets" / bucket
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def _object_path(self, bucket: str, key: str) -> Path:
        return self.workspace / "buckets" / bucket / key

    # -- functions, versions, aliases ---------------------------------------------------------
    def write(self, path: str, text: str) -> None:
        """Write a workspace file: `$LATEST` code (`functions/<name>/...`), config.yaml, ...
        A change to `$LATEST` returns once the simulator has taken it in
        (`function.code_changed`): the next event runs the new code."""
        target = self.workspace / path
        target.parent.mkdir(parents=True, exist_ok=True)
        before = len(self.process.events())
        target.write_text(textwrap.dedent(text))
        rel = Path(path).as_posix()
        if Path(path).parts[0] == "functions":
            self.process.wait_for(
                lambda e: e.get("event") == "function.code_changed" and rel in _paths(e),
                after=before,
            )
        else:
            self._changed.add(rel)
            self._sync()

    def publish(self, function: str, description: str | None = None) -> int:
        """`s3sim publish`: a new version of `$LATEST` (or the last one, if unchanged)."""
        from simulator import commands

        number = int(commands.publish(self.workspace, function, description))
        self._changed.add(f"versions/{function}/{number}")
        self._sync()
        return number

    def alias(
        self,
        function: str,
        alias: str,
        version: str | int,
        weights: Mapping[int, float] | None = None,
    ) -> None:
        """`s3sim alias set`: point (or create) an alias, optionally weighted."""
        from simulator import commands

        extra = [f"{v}={w}" for v, w in (weights or {}).items()]
        commands.alias_set(self.workspace, function, alias, str(version), extra)
        self._changed.add("config.yaml")
        self._sync()

    def replay(self, *dead_letter_ids: int) -> None:
        """`s3sim replay`: deliver dead letters again (every one when none is named)."""
        from simulator import commands

        commands.replay(self.workspace, list(dead_letter_ids), not dead_letter_ids, None, None, "")

    # -- what happened --------------------------------------------------------------------------
    def settle(self, timeout: float = 300.0) -> Activity:
        """Wait until the simulator is idle (it answers an `idle` request with a
        `simulator.idle` line once nothing is pending, retries included) and return what
        happened since the last settle."""
        self._ask("idle", "simulator.idle", timeout)
        activity = self._activity(self._seen_delivery, self._seen_events)
        if activity.invocations:
            self._seen_delivery = activity.invocations[-1].delivery_id
        self._seen_events += len(activity.events)
        return activity

    def _sync(self, timeout: float = 120.0) -> None:
        """Return once the simulator has taken in the changed config or versions (a `sync`
        request, answered with `simulator.synced`): the next event sees them. Work in
        flight goes on meanwhile."""
        self._ask("sync", "simulator.synced", timeout)

    def _ask(self, kind: str, answer: str, timeout: float) -> None:
        """A request to the running simulator through the journal (as `s3sim replay` sends
        one), carrying the paths changed since the last one; waits for its answer."""
        from simulator.store.journal import Journal
        from simulator.store.workspace import Workspace

        journal = Journal(Workspace(self.workspace).journal)
        try:
            request = journal.add_request(kind, {"paths": sorted(self._changed)})
        finally:
            journal.close()
        self._changed.clear()
        try:
            self.process.wait_for(
                lambda e: e.get("event") == answer and e.get("request") == request,
                timeout=timeout,
            )
        except TimeoutError:
            raise TimeoutError(
                f"s3sim did not answer its {kind} request within {timeout} s; "
                f"still open: {self._open_work() or 'nothing in the journal'}"
            ) from None

    def _open_work(self) -> str:
        """What keeps the simulator busy, as `s3sim status` would count it."""
        from simulator.store.journal import Journal
        from simulator.store.workspace import Workspace

        journal = Journal(Workspace(self.workspace).journal)
        try:
            open_rows = journal.open_summary()
        finally:
            journal.close()
        counts: dict[str, int] = {}
        for function, _, _, _ in open_rows:
            counts[function] = counts.get(function, 0) + 1
        return ", ".join(f"{n} pending for {f}" for f, n in sorted(counts.items()))

    def history(self) -> Activity:
        """Everything this run did (without waiting)."""
        return self._activity(0, 0)

    def _activity(self, after_delivery: int, after_event: int) -> Activity:
        from simulator.core import activity
        from simulator.store.journal import Journal
        from simulator.store.workspace import Workspace

        events = self.process.events()
        journal = Journal(Workspace(self.workspace).journal)
        try:
            rows = [asdict(d) for d in journal.since(after_delivery)]
        finally:
            journal.close()
        invocations = activity.build(rows, events)
        return activity.Activity(invocations, tuple(events[after_event:]))

    def _last_delivery(self) -> int:
        from simulator.store.journal import Journal
        from simulator.store.workspace import Workspace

        journal = Journal(Workspace(self.workspace).journal)
        try:
            found = journal.since(0)
        finally:
            journal.close()
        return found[-1].id if found else 0

    def stop(self) -> None:
        self.process.stop()


class Launcher:
    """The `s3sim` fixture: starts simulators on temporary workspaces, stops them all."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._started: list[Simulation | SimulatorProcess] = []
        self._made = 0  # workspaces built, each in its own folder

    def start(
        self,
        config: Mapping[str, Any] | str | None = None,
        files: Mapping[str, str | bytes] | None = None,
        copy_from: Path | str | None = None,
        timeout: float = 300.0,
    ) -> Simulation:
        """A new workspace (`config` as a mapping or YAML text, `files` by relative path,
        str values dedented) or a copy of `copy_from` (with `config` and `files` laid
        over it), and a simulator running on it, ready."""
        workspace = self.workspace(config, files, copy_from)
        from simulator.testing import SimulatorProcess

        process = SimulatorProcess(workspace, console=workspace.parent / "console.jsonl")
        self._started.append(process)  # stopped at teardown even if the start fails
        process.start(timeout=timeout)
        sim = Simulation(workspace, process)
        self._started[-1] = sim
        return sim

    def workspace(
        self,
        config: Mapping[str, Any] | str | None = None,
        files: Mapping[str, str | bytes] | None = None,
        copy_from: Path | str | None = None,
    ) -> Path:
        """Only build the workspace (for a test that starts the simulator itself)."""
        self._made += 1
        home = self._root / f"sim{self._made}"
        workspace = home / "workspace"
        if copy_from is not None:
            shutil.copytree(copy_from, workspace, ignore=shutil.ignore_patterns(*_NOT_COPIED))
        elif config is None:
            raise ValueError("s3sim.start needs a config (a mapping or YAML text) or copy_from")
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "buckets").mkdir(exist_ok=True)
        if config is not None:
            _write(workspace / "config.yaml", config if isinstance(config, str) else _yaml(config))
        for rel, content in (files or {}).items():
            _write(workspace / rel, content)
        return workspace

    def stop_all(self) -> None:
        for started in reversed(self._started):
            started.stop()

    def tails(self, lines: int = TAIL_LINES) -> list[tuple[str, str]]:
        """The last log lines of each simulator, as the console shows them (for a report)."""
        from simulator import logs

        tails = []
        for started in self._started:
            process = started.process if isinstance(started, Simulation) else started
            shown = "\n".join(logs.render(e) for e in process.events()[-lines:])
            tails.append((f"s3sim log of {process.ws} (last {lines} events)", shown))
        return tails


def _yaml(config: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(config), sort_keys=False)


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(textwrap.dedent(content))


_LAUNCHER = pytest.StashKey["Launcher"]()


@pytest.fixture
def s3sim(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Launcher]:
    """Start simulators with `s3sim.start(...)`; all are stopped when the test ends."""
    launcher = Launcher(tmp_path_factory.mktemp("s3sim"))
    request.node.stash[_LAUNCHER] = launcher
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report shows the end of each simulator's log (in CI, often all
    there is to read)."""
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    launcher = item.stash.get(_LAUNCHER, None)
    if launcher is not None and report.failed and call.when == "call":
        report.sections.extend(launcher.tails())


def _paths(event: dict[str, Any]) -> list[str]:
    """The paths a `function.code_changed` names: a list when one save changed several."""
    path = event.get("path")
    return path if isinstance(path, list) else [str(path)]
