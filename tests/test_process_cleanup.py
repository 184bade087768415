"""No process a handler starts outlives its execution environment, not even a daemon that
left the worker's session with setsid() (the process-group kill cannot reach it)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from simulator.lambdas.processes import read_stat
from simulator.testing import SimulatorProcess
from tests.helpers import drop, make_workspace, simple_config

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="subreapers and /proc are Linux's"
    ),
]

DAEMONIZING_HANDLER = """
import os, time

def handler(event, context):
    key = event["Records"][0]["s3"]["object"]["key"]
    pid_file = os.path.join(os.environ["PID_DIR"], key + ".pid")
    child = os.fork()
    if child == 0:  # the classic daemon: new session, fork again, the middle one exits
        os.setsid()
        if os.fork() == 0:
            with open(pid_file + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(pid_file + ".tmp", pid_file)
            time.sleep(600)
        os._exit(0)
    os.waitpid(child, 0)
    if "sleep" in key:
        time.sleep(60)
    return "daemon started"
"""


def workspace(tmp_path: Path) -> Path:
    pids = tmp_path / "pids"
    pids.mkdir()
    config = simple_config(tmp_path, timeout=1, retries=0)
    config["functions"]["fn"]["environment"] = {"PID_DIR": str(pids)}
    return make_workspace(tmp_path / "ws", config, {"fn": {"handler.py": DAEMONIZING_HANDLER}})


@contextmanager
def simulator(ws: Path) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(ws)
    try:
        yield sim.start()
    finally:
        try:
            sim.stop()
        except subprocess.TimeoutExpired:
            sim.kill9()


@contextmanager
def daemon_pid(pid_file: Path, timeout_s: float = 30.0) -> Iterator[int]:
    """The daemon's pid once the handler's grandchild has written it; killed afterwards if
    it is still there (it is the very leak under test: never let it outlive the test)."""
    deadline = time.monotonic() + timeout_s
    while not pid_file.exists():
        assert time.monotonic() < deadline, f"no {pid_file.name} after {timeout_s} s"
        time.sleep(0.01)
    pid = int(pid_file.read_text())
    first = read_stat(pid)
    assert first is not None and first.state != "Z", "the daemon should be running"
    try:
        yield pid
    finally:
        now = read_stat(pid)
        if now is not None and now.start_ticks == first.start_ticks and now.state != "Z":
            os.kill(pid, signal.SIGKILL)


def gone(pid: int, timeout_s: float = 10.0) -> bool:
    """True once /proc/<pid> is absent: killed and reaped (polling, bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if read_stat(pid) is None:
            return True
        time.sleep(0.01)
    return False


def test_setsid_daemon_is_gone_when_the_simulator_stops(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    with simulator(ws) as sim:
        drop(ws / "buckets/uploads/a.txt")
        sim.wait_for(lambda e: e.get("event") == "invoke.report" and e.get("status") == "success")
        with daemon_pid(tmp_path / "pids/a.txt.pid") as pid:
            sim.stop()
            assert gone(pid), f"pid {pid} outlived the simulator: {read_stat(pid)}"


def test_setsid_daemon_is_gone_after_a_timeout(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    with simulator(ws) as sim:
        drop(ws / "buckets/uploads/sleep.txt")
        with daemon_pid(tmp_path / "pids/sleep.txt.pid") as pid:
            sim.wait_for(
                lambda e: (
                    e.get("event") == "invoke.report" and e.get("status") == "Sandbox.Timedout"
                )
            )
            # The simulator still runs: the environment's reset killed the daemon, and the
            # simulator reaped what it inherited (no zombie left behind either).
            assert gone(pid), f"pid {pid} outlived its environment: {read_stat(pid)}"
