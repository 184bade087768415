"""Traffic shifts on a running simulator: the weights in config.yaml move on schedule (time
compressed), hooks report through the local CodeDeploy endpoint with boto3's own client, a
failing new version is rolled back automatically, and a shift survives a restart."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
import yaml
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from simulator import cli
from simulator.core.arn import FunctionArn
from simulator.core.lambda_env import DUMMY_CREDENTIALS
from simulator.runtime import Runtime
from tests.helpers import ARN, EventLog, make_workspace, running
from tests.test_lambda_api import lambda_client

# v1 always succeeds; v2 fails 3 of every 10 invocations (its 1st, 2nd and 10th, ...).
HANDLER = """
import os, time
COUNT = 0
def handler(event, context):
    global COUNT
    COUNT += 1
    time.sleep(event.get("sleep", 0))
    if os.environ["AWS_LAMBDA_FUNCTION_VERSION"] == "2" and FLAKY and COUNT % 10 < 3:
        raise ValueError(f"version 2 fails invocation {COUNT}")
    return {"version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"]}
"""
HOOK = """
import os
import boto3

def handler(event, context):
    # What a CodeDeploy hook does in AWS, unchanged.
    boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=os.environ["REPORT"],
    )
    return {"reported": os.environ["REPORT"]}
"""


def s3sim(ws: Path, *args: str) -> int:
    return cli.main(["-w", str(ws), *args])


def workspace(root: Path, time_scale: float, flaky: bool = True, **settings: Any) -> Path:
    hook = {"handler": "handler.handler", "timeout": 30}
    config: dict[str, Any] = {
        "region": "us-east-1",
        "account": "123456789012",
        "simulator": {"time_scale": time_scale, "settle_ms": 50, "seed": 7, **settings},
        "functions": {
            "fn": {
                "handler": "handler.handler",
                "aliases": {"prod": "$LATEST"},
                "reserved_concurrency": 1,
            },
            "hook_ok": {**hook, "environment": {"REPORT": "Succeeded"}},
            "hook_fails": {**hook, "environment": {"REPORT": "Failed"}},
            "hook_raises": {"handler": "handler.broken", "timeout": 30},
            "hook_sleeps": {"handler": "handler.slow", "timeout": 1},
        },
        "buckets": {},
    }
    code = f"FLAKY = {flaky}\n" + HANDLER
    make_workspace(
        root,
        config,
        {
            "fn": {"handler.py": code},
            "hook_ok": {"handler.py": HOOK},
            "hook_fails": {"handler.py": HOOK},
            "hook_raises": {"handler.py": "def broken(event, context):\n    raise KeyError(1)\n"},
            "hook_sleeps": {
                "handler.py": "import time\ndef slow(event, context):\n    time.sleep(60)\n"
            },
        },
    )
    for revision in ("v1", "v2"):
        handler = root / "functions" / "fn" / "handler.py"
        handler.write_text(handler.read_text() + f"# {revision}\n")
        assert s3sim(root, "publish", "fn") == 0
    assert s3sim(root, "alias", "set", "fn", "prod", "1") == 0
    return root


def prod(ws: Path) -> Any:
    return yaml.safe_load((ws / "config.yaml").read_text())["functions"]["fn"]["aliases"]["prod"]


def invoke(runtime: Runtime) -> str:
    arn = FunctionArn.parse(f"{ARN}:fn:prod")
    inv = runtime.invoker.invoke(runtime.source.current, arn, {}, str(uuid.uuid4()))
    assert inv.version is not None
    return inv.version


def history(ws: Path, capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str, str]]:
    import re

    capsys.readouterr()
    assert s3sim(ws, "alias", "history", "fn", "prod") == 0
    rows = [re.split(r"\s{2,}", x.strip()) for x in capsys.readouterr().out.splitlines()[1:]]
    return [(r[2], r[3], r[4]) for r in rows]


def ended(log: EventLog, timeout: float = 120) -> dict[str, Any]:
    done = log.wait_for(
        lambda e: e.get("event") in ("shift.succeeded", "shift.rolled_back"), timeout=timeout
    )
    return done[0]


def test_a_canary_whose_new_version_fails_30_percent_is_rolled_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.5)  # 5 minutes last 150 s: time to trip
    with running(ws) as (runtime, log):
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--type",
                     "Canary10Percent5Minutes", "--rollback-if", "error_rate>=20%") == 0  # fmt: skip
        log.wait_for(log.named("shift.step", split="1: 90%, 2: 10%"))
        assert prod(ws) == {"version": "1", "weights": {2: 0.1}}
        seen: dict[str, int] = {}
        while not log.matching(log.named("shift.rolled_back")):
            version = invoke(runtime)
            seen[version] = seen.get(version, 0) + 1
            assert sum(seen.values()) < 2000, seen
        end = ended(log)
        assert end["reason"] == (
            "error_rate >= 20% over 1 min tripped: 3 errors (0 timeouts) in 10 invocations (30%)"
        )
        assert prod(ws) == "1"  # the routing restored at once
        assert {invoke(runtime) for _ in range(20)} == {"1"}
        drawn = log.wait_for(log.named("shift.report"))[0]  # the end of every shift
        assert "  version 2: 10 invocations, 3 errors (30%)" in drawn["changes"]
        assert Path(drawn["chart"]).read_text().startswith("<body>")
    assert seen["2"] == 10
    assert history(ws, capsys)[-2:] == [
        ("1", "1 + 2 at 0.1", "shift step"),
        ("1 + 2 at 0.1", "1", "automatic rollback"),
    ]
    capsys.readouterr()
    assert s3sim(ws, "shift", "report", "fn", "prod", "--html", str(tmp_path / "c.html")) == 0
    out = capsys.readouterr().out
    assert f"Canary10Percent5Minutes: RolledBack ({end['reason']})" in out
    assert "  version 2: 10 invocations, 3 errors (30%)" in out
    assert "fn:prod 1 -> 2 (Canary10Percent5Minutes): traffic split" in out
    assert (tmp_path / "c.html").read_text().startswith("<body>")  # plotext's HTML page
    print(out, file=sys.stderr)


def test_hooks_report_through_codedeploy_and_bracket_the_traffic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.002, flaky=False)  # 5 minutes: 0.6 s
    with running(ws) as (_, log):
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--type",
                     "Canary10Percent5Minutes", "--pre-traffic", "hook_ok",
                     "--post-traffic", "hook_ok") == 0  # fmt: skip
        end = ended(log)
        names = [e["event"] for e in log.events if str(e.get("event", "")).startswith("shift.")]
    assert end["event"] == "shift.succeeded"
    assert names[:7] == [
        "shift.started",
        "shift.hook_started",
        "shift.hook_finished",
        "shift.step",
        "shift.step",
        "shift.hook_started",
        "shift.hook_finished",
    ]
    assert prod(ws) == "2"
    assert history(ws, capsys)[-2:] == [
        ("1", "1 + 2 at 0.1", "shift step"),
        ("1 + 2 at 0.1", "2", "shift step"),
    ]


@pytest.mark.parametrize(
    ("hook", "reason"),
    [
        ("hook_fails", "BeforeAllowTraffic hook hook_fails failed: it reported Failed"),
        ("hook_raises", "BeforeAllowTraffic hook hook_raises failed: KeyError: 1"),
    ],
)
def test_a_failing_pre_traffic_hook_stops_the_shift_before_any_traffic_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hook: str, reason: str
) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.002, flaky=False)
    with running(ws) as (_, log):
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--pre-traffic", hook) == 0
        end = ended(log)
        assert not log.matching(log.named("shift.step"))
    assert (end["event"], end["reason"]) == ("shift.rolled_back", reason)
    assert prod(ws) == "1"
    assert history(ws, capsys)[-1] == ("$LATEST", "1", "alias set")


def test_a_pre_traffic_hook_that_times_out_fails(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.002, flaky=False)
    with running(ws) as (_, log):
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--pre-traffic", "hook_sleeps") == 0
        end = ended(log)
    assert end["reason"].startswith(
        "BeforeAllowTraffic hook hook_sleeps failed: Sandbox.Timedout: "
    )
    assert end["reason"].endswith("Task timed out after 1.00 seconds")
    assert prod(ws) == "1"


def test_a_failing_post_traffic_hook_rolls_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.002, flaky=False)
    with running(ws) as (_, log):
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--post-traffic", "hook_fails") == 0
        end = ended(log)
    assert end["reason"] == "AfterAllowTraffic hook hook_fails failed: it reported Failed"
    assert prod(ws) == "1"
    assert history(ws, capsys)[-2:] == [
        ("1", "2", "shift step"),
        ("2", "1", "automatic rollback"),
    ]


def test_the_codedeploy_endpoint_answers_as_codedeploy(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.002, flaky=False)
    with running(ws):
        endpoints = json.loads((ws / ".s3sim" / "endpoints.json").read_text())
        keys = {k.lower(): v for k, v in DUMMY_CREDENTIALS.items()}
        client = boto3.client(
            "codedeploy", endpoint_url=endpoints["codedeploy"], region_name="us-east-1", **keys
        )
        put = client.put_lifecycle_event_hook_execution_status
        with pytest.raises(ClientError) as found:
            put(deploymentId="d-AAAAAAAAA", lifecycleEventHookExecutionId="x", status="Succeeded")
        assert found.value.response["Error"]["Code"] == "DeploymentDoesNotExistException"
        with pytest.raises(ClientError) as found:
            put(deploymentId="d-AAAAAAAAA", lifecycleEventHookExecutionId="x", status="Pending")
        assert found.value.response["Error"]["Code"] == (
            "InvalidLifecycleEventHookExecutionStatusException"
        )
        stranger = boto3.client(
            "codedeploy",
            endpoint_url=endpoints["codedeploy"],
            region_name="us-east-1",
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        with pytest.raises(ClientError) as found:
            stranger.put_lifecycle_event_hook_execution_status(
                deploymentId="d-AAAAAAAAA", lifecycleEventHookExecutionId="x", status="Failed"
            )
        assert found.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_a_shift_survives_a_restart_and_resumes_where_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.05, flaky=False)  # 5 minutes: 15 s
    with running(ws) as (_, log):
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--type",
                     "Canary10Percent5Minutes") == 0  # fmt: skip
        log.wait_for(log.named("shift.step", split="1: 90%, 2: 10%"))
    assert prod(ws) == {"version": "1", "weights": {2: 0.1}}
    capsys.readouterr()
    assert s3sim(ws, "status") == 0
    assert "Canary10Percent5Minutes InProgress phase AllowTraffic, split 1 + 2 at 10%" in (
        capsys.readouterr().out
    )
    with running(ws) as (_, log):
        resumed = log.wait_for(log.named("shift.resumed"))[0]
        assert resumed["phase"] == "AllowTraffic"
        assert ended(log)["event"] == "shift.succeeded"
    assert prod(ws) == "2"


def declare_preference(ws: Path, **preference: Any) -> None:
    config = yaml.safe_load((ws / "config.yaml").read_text())
    config["functions"]["fn"]["deployment_preference"] = {"alias": "prod", **preference}
    (ws / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_publish_with_alias_runs_the_declared_deployment_preference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.002, flaky=False)
    declare_preference(ws, type="Canary10Percent5Minutes", pre_traffic="hook_ok")
    handler = ws / "functions" / "fn" / "handler.py"
    handler.write_text(handler.read_text() + "# v3\n")
    with running(ws) as (_, log):
        capsys.readouterr()
        assert s3sim(ws, "publish", "fn", "--alias", "prod") == 0
        out = capsys.readouterr().out
        assert out.startswith("3\ndeployment d-")
        assert "fn:prod 1 -> 3, Canary10Percent5Minutes (10% at 0 min, 100% at 5 min)" in out
        assert ended(log)["event"] == "shift.succeeded"
        assert log.matching(log.named("shift.hook_finished", hook="hook_ok", status="Succeeded"))
    assert prod(ws) == "3"
    assert history(ws, capsys)[-2:] == [
        ("1", "1 + 3 at 0.1", "shift step"),
        ("1 + 3 at 0.1", "3", "shift step"),
    ]
    assert s3sim(ws, "alias", "history", "fn", "prod") == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.endswith(f"shift step  deployment {out.split()[2].rstrip(':')} (publish --alias)")


def test_publish_version_then_update_alias_through_the_lambda_api_is_a_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.002, flaky=False)
    declare_preference(ws, type="AllAtOnce", post_traffic="hook_fails")
    handler = ws / "functions" / "fn" / "handler.py"
    handler.write_text(handler.read_text() + "# v3\n")
    with running(ws) as (_, log):
        client = lambda_client(ws)
        # An older version is a direct edit (a repoint, not a release) ...
        client.update_alias(FunctionName="fn", Name="prod", FunctionVersion="2")
        assert prod(ws) == "2"
        # ... a version published since the alias last changed is released through the
        # declared preference: its post-traffic hook fails, so prod returns to 2.
        assert client.publish_version(FunctionName="fn")["Version"] == "3"
        client.update_alias(FunctionName="fn", Name="prod", FunctionVersion="3")
        end = ended(log)
    assert end["reason"] == "AfterAllowTraffic hook hook_fails failed: it reported Failed"
    assert prod(ws) == "2"
    assert [row[2] for row in history(ws, capsys)][-4:] == [
        "alias set",
        "lambda api",
        "shift step",
        "automatic rollback",
    ]


def test_shift_stop_rolls_back_by_hand_and_a_hand_edit_is_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.5, flaky=False)  # 5 minutes: 150 s
    with running(ws) as (_, log):
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--type",
                     "Linear10PercentEvery10Minutes") == 0  # fmt: skip
        log.wait_for(log.named("shift.step", split="1: 90%, 2: 10%"))
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2") == 1  # one shift per alias
        assert s3sim(ws, "shift", "fn", "prod", "--stop") == 0
        end = ended(log)
        assert end["reason"] == "stopped by hand: s3sim shift --stop"
        assert prod(ws) == "1"
        text = (ws / "config.yaml").read_text()
        (ws / "config.yaml").write_text(text.replace("prod: '1'", "prod: '2'"))
        log.wait_for(log.named("alias.changed", alias="prod", cause="hand edit"))
    assert history(ws, capsys)[-3:] == [
        ("1", "1 + 2 at 0.1", "shift step"),
        ("1 + 2 at 0.1", "1", "automatic rollback"),
        ("1", "2", "hand edit"),
    ]


def test_a_shift_stopped_before_the_simulator_took_it_up_never_starts(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.002, flaky=False)
    assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--pre-traffic", "hook_ok") == 0
    assert s3sim(ws, "shift", "fn", "prod", "--stop") == 0
    with running(ws) as (_, log):
        end = ended(log)
        assert not log.matching(log.named("shift.hook_started"))
    assert end["reason"] == "stopped by hand: s3sim shift --stop"
    assert prod(ws) == "1"


def test_events_during_a_step_are_routed_by_its_weight(tmp_path: Path) -> None:
    """At the 10% step of a linear shift, the running simulator's own (seeded) routing sends
    10% of invocations to the new version, within 4 standard deviations."""
    ws = workspace(tmp_path / "ws", time_scale=0.5, flaky=False)  # the step lasts 300 s
    with running(ws) as (runtime, log):
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--type",
                     "Linear10PercentEvery10Minutes") == 0  # fmt: skip
        log.wait_for(log.named("shift.step", split="1: 90%, 2: 10%"))
        versions = [invoke(runtime) for _ in range(500)]
        assert not log.matching(log.named("shift.step", split="1: 80%, 2: 20%"))
    share = versions.count("2") / len(versions)
    assert abs(share - 0.1) < 4 * (0.1 * 0.9 / len(versions)) ** 0.5, share


def test_throttles_of_the_function_during_a_shift_roll_it_back(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws", time_scale=0.5, flaky=False, throttle="backoff")
    with running(ws) as (_, log):
        assert s3sim(ws, "shift", "fn", "prod", "--to", "2", "--type",
                     "Linear10PercentEvery10Minutes", "--rollback-if", "throttles>=1") == 0  # fmt: skip
        log.wait_for(log.named("shift.step", split="1: 90%, 2: 10%"))
        client = lambda_client(ws)
        for _ in range(3):  # one runs at a time (reserved concurrency 1): the others throttle
            client.invoke(FunctionName="fn:prod", InvocationType="Event", Payload=b'{"sleep": 1}')
        end = ended(log)
    assert end["reason"] == "throttles >= 1 over 1 min tripped: 1 throttles"
    assert prod(ws) == "1"
