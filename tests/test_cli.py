"""The command line, as a user runs it (separate processes where it matters)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simulator.cli import main
from tests.helpers import ARN, drop, handler_source

pytestmark = pytest.mark.integration


def cli(ws: Path, *args: str) -> int:
    return main(["-w", str(ws), *args])


def test_validate_ok_and_invalid_with_the_same_messages(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(ws, "validate") == 0
    assert "OK (1 functions" in capsys.readouterr().out
    raw = yaml.safe_load((ws / "config.yaml").read_text())
    raw["functions"]["fn"]["timeout"] = 1000
    (ws / "config.yaml").write_text(yaml.safe_dump(raw))
    assert cli(ws, "validate") == 2
    assert (
        "config.yaml: functions.fn.timeout: 1 validation error detected: Value '1000' at "
        "'timeout' failed to satisfy constraint: Member must have value less than or equal "
        "to 900"
    ) in capsys.readouterr().err


def test_publish_versions_and_alias_commands(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ws / "config.yaml").read_text()
    (ws / "config.yaml").write_text(
        "# my workspace\n" + text.replace("live: $LATEST", "live: $LATEST  # keep this comment")
    )
    assert cli(ws, "publish", "fn", "--description", "first") == 0
    assert capsys.readouterr().out.strip() == "1"
    assert cli(ws, "publish", "fn") == 0
    assert capsys.readouterr().out.strip() == "1"  # unchanged: AWS returns the last version
    (ws / "functions/fn/handler.py").write_text(handler_source("v2"))
    assert cli(ws, "publish", "fn") == 0
    assert capsys.readouterr().out.strip() == "2"
    assert cli(ws, "versions", "fn") == 0
    listing = capsys.readouterr().out
    assert "first" in listing and listing.splitlines()[1].startswith("$LATEST")
    assert cli(ws, "alias", "set", "fn", "prod", "1", "--weight", "2=0.25") == 0
    capsys.readouterr()
    saved = (ws / "config.yaml").read_text()
    assert "# my workspace" in saved and "# keep this comment" in saved
    assert yaml.safe_load(saved)["functions"]["fn"]["aliases"]["prod"] == {
        "version": "1",
        "weights": {2: 0.25},
    }
    assert cli(ws, "alias", "list", "fn") == 0
    assert f"prod   1        2=0.25   {ARN}:fn:prod" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (("9",), f"Function not found: {ARN}:fn:9"),
        (
            ("$LATEST", "--weight", "1=0.5"),
            "$LATEST is not supported for an alias pointing to more than 1 version",
        ),
    ],
)
def test_alias_set_refuses_invalid_requests(
    ws: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    cli(ws, "publish", "fn")
    before = (ws / "config.yaml").read_text()
    assert cli(ws, "alias", "set", "fn", "prod", *args) == 2
    assert message in capsys.readouterr().err
    assert (ws / "config.yaml").read_text() == before


def test_alias_name_of_digits_refused(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(ws, "alias", "set", "fn", "2024", "$LATEST") == 2  # a usage error
    assert "Value '2024' at 'name' failed to satisfy constraint" in capsys.readouterr().err


def test_explain_shows_each_condition_and_resolution(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(ws, "explain", "uploads", "my photo.jpg") == 0
    out = capsys.readouterr().out
    assert "encoded key: my+photo.jpg" in out
    assert "- created: MATCH" in out and "- removed: no match" in out
    assert f"target {ARN}:fn:live -> version $LATEST" in out


def test_invoke_prints_result_and_executed_version(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drop(ws / "buckets/uploads/photo.jpg", b"something")
    assert cli(ws, "invoke", f"{ARN}:fn:live", "--bucket", "uploads", "--key", "photo.jpg") == 0
    out = capsys.readouterr().out
    assert out.startswith("ExecutedVersion: $LATEST\nStatusCode: 200\n")
    assert json.loads(out.split("Payload: ", 1)[1]) == {"key": "photo.jpg", "tag": "v1"}
    drop(ws / "buckets/uploads/fail.jpg")
    assert cli(ws, "invoke", "fn", "--bucket", "uploads", "--key", "fail.jpg") == 1
    assert "FunctionError: Unhandled" in capsys.readouterr().out


def run_cli(ws: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", "-w", str(ws), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )


def test_run_exit_when_idle_and_logs_filters(ws: Path) -> None:
    drop(ws / "buckets/uploads/before.txt")  # recorded on first start, not fired
    first = run_cli(ws, "run", "--exit-when-idle")
    assert first.returncode == 0, first.stderr
    assert "simulator.ready" in first.stderr
    drop(ws / "buckets/uploads/good.txt")
    drop(ws / "buckets/uploads/fail.txt")
    second = run_cli(ws, "run", "--exit-when-idle")  # catch-up fires both; one dead-letters
    assert second.returncode == 1, second.stderr
    assert "START RequestId:" in second.stderr and "REPORT RequestId:" in second.stderr
    logs = run_cli(ws, "logs", "--function", "fn", "--json")
    events = [json.loads(line) for line in logs.stdout.splitlines()]
    assert events and all(e.get("function") == "fn" for e in events)
    dead = [e for e in events if e["event"] == "event.dead_lettered"]
    assert len(dead) == 1 and dead[0]["key"] == "fail.txt"
    one = run_cli(ws, "logs", "--request-id", dead[0]["request_id"])
    assert "END RequestId: " + dead[0]["request_id"] in one.stdout
    assert "good.txt" not in one.stdout


def test_run_refuses_invalid_config_with_exit_2(ws: Path) -> None:
    (ws / "config.yaml").write_text("functions: {fn: {timeout: 0}}\n")
    result = run_cli(ws, "run")
    assert result.returncode == 2
    assert "functions.fn.timeout" in result.stderr
