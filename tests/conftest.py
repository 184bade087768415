import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Each test starts and ends with structlog's defaults and no log file open."""
    import structlog

    from simulator import logs

    yield
    structlog.reset_defaults()
    logs.close()


@pytest.fixture
def recorded() -> Any:
    return fixture


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with one function `fn` (the recording handler, alias `live` -> $LATEST)."""
    from tests.helpers import handler_source, make_workspace, simple_config

    out = tmp_path / "out"
    out.mkdir()
    return make_workspace(
        tmp_path / "ws", simple_config(out), {"fn": {"handler.py": handler_source()}}
    )


_FAULT_ROWS: list[dict[str, Any]] = []


@pytest.fixture
def fault_report() -> Any:
    """Fault tests report what was in play; the table is printed at the end of the run."""

    def add(fault: str, **numbers: Any) -> None:
        _FAULT_ROWS.append({"fault": fault, **numbers})

    return add


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FAULT_ROWS:
        return
    terminalreporter.section("fault injection: events in play and where they ended")
    for row in _FAULT_ROWS:
        fields = " ".join(f"{k}={v}" for k, v in row.items() if k != "fault")
        terminalreporter.write_line(f"{row['fault']}: {fields}")


@pytest.fixture
def simulator() -> Any:
    """Makes `s3sim run` processes (simulator.testing.SimulatorProcess) and stops every one of
    them when the test ends, passed or failed: SIGTERM, then SIGKILL."""
    from simulator.testing import SimulatorProcess

    made: list[SimulatorProcess] = []

    def make(workspace: Path, console: Path | None = None) -> SimulatorProcess:
        made.append(SimulatorProcess(workspace, console))
        return made[-1]

    yield make
    for sim in made:
        sim.stop()


REPO = Path(__file__).parents[1]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """The repository's own demo workspace (config.yaml, versions 1 and 2, functions)."""
    import shutil

    ws = tmp_path / "demo"
    ws.mkdir()
    shutil.copy(REPO / "config.yaml", ws / "config.yaml")
    shutil.copytree(REPO / "versions", ws / "versions")
    shutil.copytree(REPO / "functions", ws / "functions")
    return ws


def _mount_namespaces() -> bool:
    """Whether this machine lets a process mount Lambda's paths without privileges (a user
    and mount namespace; as root, a mount namespace): then code is at /var/task."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None:
        return False
    args = ["unshare", "--mount", "true"] if os.geteuid() == 0 else ["unshare", "-Urm", "true"]
    return subprocess.run(args, capture_output=True, check=False).returncode == 0


LAMBDA_PATHS = _mount_namespaces()
