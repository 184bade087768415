"""A published version's folder is gone while an alias points at it: every command says
what is missing and how to recover, and the commands that repair the config still work."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main

pytestmark = pytest.mark.integration
ARN = "arn:aws:lambda:us-east-1:123456789012:function:thumbnailer"


def lost(alias: str) -> str:
    return (
        f"Function not found: {ARN}:1 (the files of published version 1 are missing from "
        f"versions/thumbnailer/1/: restore that folder (e.g. git checkout -- "
        f"versions/thumbnailer/1), or point the alias at another version: "
        f"s3sim alias set thumbnailer {alias} <version>)"
    )


def s3sim(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", "-w", str(ws), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def remove_tree(path: Path) -> None:
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, stat.S_IRWXU)  # published versions are read-only
    shutil.rmtree(path)


def test_commands_report_a_lost_version_and_alias_set_repairs_it(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remove_tree(demo / "versions/thumbnailer/1")

    assert main(["-w", str(demo), "validate"]) == 2
    assert capsys.readouterr().err == (
        f"s3sim: config.yaml: functions.thumbnailer.aliases.prod: {lost('prod')}\n"
    )

    assert main(["-w", str(demo), "alias", "list", "thumbnailer"]) == 0
    out, err = capsys.readouterr()
    assert f"prod    1        -        {ARN}:prod" in out
    assert (
        err == f"s3sim: warning: config.yaml: functions.thumbnailer.aliases.prod: {lost('prod')}\n"
    )

    assert main(["-w", str(demo), "versions", "thumbnailer"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "VERSION",
        "$LATEST",
        "2",
    ]

    # Pointing another alias at the lost version is refused, with the same advice.
    assert main(["-w", str(demo), "alias", "set", "thumbnailer", "beta", "1"]) == 2
    assert capsys.readouterr().err == (
        f"s3sim: config.yaml: functions.thumbnailer.aliases.beta: {lost('beta')}\n"
    )

    # The repair: prod is set although canary still names version 1, which is said.
    assert main(["-w", str(demo), "alias", "set", "thumbnailer", "prod", "2"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{ARN}:prod -> 2\n"
    assert err == (
        f"s3sim: warning: config.yaml: functions.thumbnailer.aliases.canary: {lost('canary')}\n"
        "s3sim: warning: the alias was set, but config.yaml still refers to missing versions "
        "(above); a running simulator keeps its last good configuration until they are fixed\n"
    )
    assert main(["-w", str(demo), "alias", "set", "thumbnailer", "canary", "2"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["-w", str(demo), "validate"]) == 0


def test_a_version_never_published_still_says_publish_it_first(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-w", str(demo), "alias", "set", "thumbnailer", "prod", "3"]) == 2
    assert capsys.readouterr().err == (
        f"s3sim: config.yaml: functions.thumbnailer.aliases.prod: Function not found: {ARN}:3 "
        f"(publish it first: s3sim publish thumbnailer)\n"
    )


def test_run_with_a_lost_version_and_no_usable_last_good_config_exits_2(demo: Path) -> None:
    first = s3sim(demo, "run", "--exit-when-idle")
    assert first.returncode == 0, first.stderr
    assert (demo / ".s3sim/last-good-config.yaml").exists()
    remove_tree(demo / "versions/thumbnailer/1")
    result = s3sim(demo, "run", "--exit-when-idle")
    assert result.returncode == 2
    assert result.stderr == (
        f"s3sim: config.yaml: functions.thumbnailer.aliases.prod: {lost('prod')}\n"
        "config.yaml: not starting: the last good configuration "
        "(.s3sim/last-good-config.yaml) fails too (the same problem)\n"
    )
