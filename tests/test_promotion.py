"""promote, rollback and alias history through the CLI, on a real workspace and journal."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simulator import cli


def s3sim(ws: Path, *args: str) -> int:
    return cli.main(["-w", str(ws), *args])


def publish_versions(ws: Path, count: int) -> None:
    handler = ws / "functions" / "fn" / "handler.py"
    for i in range(count):
        handler.write_text(handler.read_text() + f"\n# revision {i}\n")
        assert s3sim(ws, "publish", "fn") == 0


def aliases(ws: Path) -> dict[str, object]:
    config = yaml.safe_load((ws / "config.yaml").read_text())
    return dict(config["functions"]["fn"]["aliases"])


def history_rows(ws: Path, capsys: pytest.CaptureFixture[str], *alias: str) -> list[list[str]]:
    capsys.readouterr()
    assert s3sim(ws, "alias", "history", "fn", *alias) == 0
    lines = capsys.readouterr().out.splitlines()
    # TIME ALIAS OLD NEW CAUSE DETAIL: columns split on two spaces or more
    import re

    return [re.split(r"\s{2,}", line.strip())[1:] for line in lines[1:]]


def test_promote_then_rollback_with_every_cause_in_the_history(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_versions(ws, 3)
    assert s3sim(ws, "alias", "set", "fn", "prod", "1") == 0
    assert s3sim(ws, "alias", "set", "fn", "beta", "2") == 0
    capsys.readouterr()
    assert s3sim(ws, "promote", "fn", "beta", "prod") == 0
    assert capsys.readouterr().out.strip() == "functions.fn.aliases.prod: 1 -> 2"
    assert aliases(ws)["prod"] == "2"

    # A hand edit of config.yaml, seen by the next command that reads the history.
    text = (ws / "config.yaml").read_text()
    (ws / "config.yaml").write_text(text.replace("beta: '2'", "beta: '3'"))
    assert s3sim(ws, "rollback", "fn", "prod") == 0
    assert capsys.readouterr().out.strip() == "functions.fn.aliases.prod: 2 -> 1"
    assert aliases(ws)["prod"] == "1"

    rows = history_rows(ws, capsys)
    assert [r[:4] for r in rows] == [
        ["prod", "(none)", "1", "alias set"],
        ["beta", "(none)", "2", "alias set"],
        ["live", "(none)", "$LATEST", "first seen"],  # when a command first looked
        ["prod", "1", "2", "promote"],
        ["beta", "2", "3", "hand edit"],
        ["prod", "2", "1", "rollback"],
    ]
    assert rows[3][4] == "from beta"
    assert rows[5][4] == "undoes change 4 (promote)"
    # Only prod's story, from a fresh journal connection (it is all on disk).
    assert [r[3] for r in history_rows(ws, capsys, "prod")] == [
        "alias set",
        "promote",
        "rollback",
    ]


def test_weights_are_part_of_an_alias_change(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    publish_versions(ws, 2)
    assert s3sim(ws, "alias", "set", "fn", "prod", "1") == 0
    assert s3sim(ws, "alias", "set", "fn", "prod", "1", "--weight", "2=0.25") == 0
    assert s3sim(ws, "rollback", "fn", "prod") == 0
    assert aliases(ws)["prod"] == "1"
    assert s3sim(ws, "rollback", "fn", "prod") == 0  # the rollback is the last change now
    assert aliases(ws)["prod"] == {"version": "1", "weights": {2: 0.25}}
    rows = history_rows(ws, capsys, "prod")
    assert [r[1:4] for r in rows] == [
        ["(none)", "1", "alias set"],
        ["1", "1 + 2 at 0.25", "alias set"],
        ["1 + 2 at 0.25", "1", "rollback"],
        ["1", "1 + 2 at 0.25", "rollback"],
    ]


def test_a_hand_edit_before_an_alias_set_keeps_its_place_in_the_history(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_versions(ws, 3)
    assert s3sim(ws, "alias", "set", "fn", "prod", "1") == 0
    text = (ws / "config.yaml").read_text()
    (ws / "config.yaml").write_text(text.replace("prod: '1'", "prod: '2'"))
    assert s3sim(ws, "alias", "set", "fn", "prod", "3") == 0
    assert [r[1:4] for r in history_rows(ws, capsys, "prod")] == [
        ["(none)", "1", "alias set"],
        ["1", "2", "hand edit"],
        ["2", "3", "alias set"],
    ]


def test_rollback_of_an_alias_without_an_earlier_version_says_so(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert s3sim(ws, "rollback", "fn", "live") == 1
    assert capsys.readouterr().err.strip() == (
        "s3sim: fn:live has no earlier version to return to (see `s3sim alias history fn live`)"
    )
    assert s3sim(ws, "promote", "fn", "nope", "live") == 3  # not found
    assert "Alias not found: arn:aws:lambda:us-east-1:123456789012:function:fn:nope" in (
        capsys.readouterr().err
    )


def test_publish_with_alias_and_no_preference_moves_the_alias_at_once(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_versions(ws, 1)
    assert s3sim(ws, "alias", "set", "fn", "prod", "1") == 0
    (ws / "functions" / "fn" / "handler.py").write_text("def handler(e, c):\n    return 2\n")
    capsys.readouterr()
    assert s3sim(ws, "publish", "fn", "--alias", "prod") == 0
    assert capsys.readouterr().out.splitlines() == ["2", "functions.fn.aliases.prod: 1 -> 2"]
    assert history_rows(ws, capsys, "prod")[-1][1:4] == ["1", "2", "publish --alias"]


def test_a_resumed_deployment_skips_the_time_it_was_not_watched() -> None:
    from simulator.core.deployments import Deployment, DeploymentType, alias_target
    from simulator.promotion.records import from_json, shifted, to_json

    d = Deployment(
        "d-ABCDEFGHI", "fn", "prod", "1", "2", DeploymentType.parse("Canary10Percent5Minutes"),
        time_scale=0.01, phase="AllowTraffic", traffic_start_s=100.0,
    )  # fmt: skip
    assert from_json(to_json(d)) == d  # what the journal keeps is the deployment
    assert alias_target(d, 103.0) == ("2", {})  # 5 minutes (3 s) after traffic started
    resumed = shifted(d, downtime_s=50.0)  # stopped for 50 s at 102.5
    assert alias_target(resumed, 152.5) == ("1", {"2": 0.1})
    assert alias_target(resumed, 153.0) == ("2", {})


def test_an_alias_removed_by_hand_ends_its_history_with_none(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_versions(ws, 1)
    assert s3sim(ws, "alias", "set", "fn", "beta", "1") == 0
    config = yaml.safe_load((ws / "config.yaml").read_text())
    del config["functions"]["fn"]["aliases"]["beta"]
    (ws / "config.yaml").write_text(yaml.safe_dump(config))
    assert [r[1:4] for r in history_rows(ws, capsys, "beta")] == [
        ["(none)", "1", "alias set"],
        ["1", "(none)", "hand edit"],
    ]
    assert len(history_rows(ws, capsys, "beta")) == 2  # recorded once


def test_shift_requests_are_checked_before_they_are_queued(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_versions(ws, 2)
    assert s3sim(ws, "alias", "set", "fn", "prod", "1") == 0
    capsys.readouterr()
    assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--type", "Canary5Percent") == 2
    assert capsys.readouterr().err.startswith(
        "s3sim: unknown deployment type 'Canary5Percent': use one of Canary10Percent5Minutes, "
    )
    assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--rollback-if", "latency>3") == 2
    assert s3sim(ws, "shift", "fn", "prod", "--to", "9") == 3
    assert "Function not found: arn:aws:lambda:us-east-1:123456789012:function:fn:9" in (
        capsys.readouterr().err
    )
    assert s3sim(ws, "shift", "fn", "live", "--to", "2") == 1  # $LATEST cannot be weighted
    assert s3sim(ws, "shift", "fn", "prod", "--to", "1") == 1  # already there
    assert s3sim(ws, "shift", "fn", "prod", "--stop") == 1  # nothing to stop
    assert capsys.readouterr().err.splitlines() == [
        "s3sim: fn:live points to $LATEST: a traffic shift needs a published version on both "
        "sides (AWS refuses $LATEST in a weighted alias)",
        "s3sim: fn:prod already points to version 1",
        "s3sim: no deployment of fn:prod is in progress",
    ]
