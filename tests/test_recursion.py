"""Recursive-loop detection: a chain S3 -> Lambda -> S3 -> ... is tracked through the trace
header's Lineage, which botocore forwards from the handler's `_X_AMZN_TRACE_ID` to the S3 API;
the invocation that would continue it past 16 is not run and becomes a dead letter."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from simulator.core import lineage
from simulator.core.lambda_env import trace_header
from tests.conftest import LAMBDA_PATHS
from tests.helpers import ARN, drop, make_workspace, running

F = "arn:aws:lambda:us-east-1:123456789012:function:looper"


def test_a_chain_counts_each_function_apart_and_stops_at_16() -> None:
    first = lineage.step("", F)
    assert first.count == 0 and first.lineage == f"{lineage.function_hash(F)}:0"
    other = lineage.step(first.lineage, F.replace("looper", "other"))
    assert other.count == 0 and other.lineage.startswith(first.lineage + "|")
    chain = first.lineage
    counts = []
    for _ in range(17):
        step = lineage.step(chain, F)
        counts.append(step.count)
        chain = step.lineage
    assert counts == list(range(1, 18))
    assert not lineage.step("", F).loops
    assert [lineage.step(f"{lineage.function_hash(F)}:{n}", F).loops for n in (14, 15)] == [
        False,
        True,
    ]


def test_the_lineage_is_read_back_from_the_header_botocore_sends() -> None:
    # botocore percent-encodes `|` (it is not in its safe set); the X-Ray docs' example chain.
    header = (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0;"
        "Lineage=a87bd80c:1%7C68fd508a:5%7Cc512fbe3:2"
    )
    assert lineage.from_trace_header(header) == "a87bd80c:1|68fd508a:5|c512fbe3:2"
    assert lineage.from_trace_header("Root=1-5759e988-bd862e3fe1be46a994272793") == ""
    assert lineage.from_trace_header("Lineage=not-a-chain") == ""
    assert lineage.from_trace_header(None) == ""
    assert trace_header(0x5759E988, "bd862e3fe1be46a994272793", "53995c3f42cd8ad8", "a:0") == (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0;Lineage=a:0"
    )


LOOPER = """
import os
import boto3
from urllib.parse import unquote_plus

s3 = boto3.client("s3")


def handler(event, context):
    key = unquote_plus(event["Records"][0]["s3"]["object"]["key"])
    n = int(key.rsplit("/", 1)[1]) + 1
    s3.put_object(Bucket="loop", Key=f"in/{n}", Body=os.environ["_X_AMZN_TRACE_ID"].encode())
    return n
"""

DIRECT = """
import os
from pathlib import Path


def handler(event, context):
    Path(os.environ["LOOP_BUCKET"], "direct").write_text("x")
"""


def loop_workspace(tmp_path: Path, recursive_loop: str = "Terminate") -> Path:
    config = {
        "region": "us-east-1",
        "account": "123456789012",
        "simulator": {"time_scale": 0.002, "settle_ms": 20, "seed": 1},
        "functions": {
            "looper": {"timeout": 10, "retries": 0, "recursive_loop": recursive_loop},
            "direct": {
                "timeout": 10,
                "retries": 0,
                "environment": {"LOOP_BUCKET": str(tmp_path / "ws/buckets/loop")},
            },
        },
        "buckets": {
            "loop": {
                "notifications": [
                    {
                        "id": "again",
                        "events": ["s3:ObjectCreated:*"],
                        "prefix": "in/",
                        "function": f"{ARN}:looper",
                    }
                ]
            },
            "direct": {
                "notifications": [
                    {"id": "d", "events": ["s3:ObjectCreated:*"], "function": f"{ARN}:direct"}
                ]
            },
        },
    }
    return make_workspace(
        tmp_path / "ws",
        config,
        {"looper": {"handler.py": LOOPER}, "direct": {"handler.py": DIRECT}},
    )


@pytest.mark.integration
def test_an_s3_loop_runs_16_times_then_is_stopped_and_dead_lettered(tmp_path: Path) -> None:
    ws = loop_workspace(tmp_path)
    with running(ws) as (_, log):
        drop(ws / "buckets/loop/in/0")
        stopped = log.wait_for(log.named("invoke.recursive_loop"), timeout=90)[0]
        dead = log.wait_for(log.named("event.dead_lettered", function="looper"), timeout=30)[0]
        assert dead["condition"] == "RecursiveInvocationDetected" and dead["key"] == "in/16"
        assert dead["error_type"] == "RecursiveInvocationException" and dead["attempts"] == 0
        # The 16th run's REPORT may follow the stop of the event its write fired.
        reports = log.wait_for(log.named("invoke.report", function="looper"), count=16)
        assert len(reports) == 16 and all(r["status"] == "success" for r in reports)
        assert stopped["function"] == "looper" and stopped["rule"] == "again"
        assert stopped["key"] == "in/16" and stopped["invocations"] == 16
        assert stopped["lineage"] == f"{lineage.function_hash(F)}:16"
        # Each write carried its invocation's trace header, Lineage included.
        body = (ws / "buckets/loop/in/16").read_text()
        assert body.endswith(f";Lineage={lineage.function_hash(F)}:15")
        assert not (ws / "buckets/loop/in/17").exists()


@pytest.mark.integration
def test_recursive_loop_allow_lets_the_chain_go_on(tmp_path: Path) -> None:
    ws = loop_workspace(tmp_path, "Allow")
    with running(ws) as (_, log):
        drop(ws / "buckets/loop/in/0")
        log.wait_for(log.named("invoke.report", function="looper"), count=20, timeout=120)
        assert not log.matching(log.named("invoke.recursive_loop"))
        # Stop the runaway the way the Lambda console's Throttle button does.
        config = yaml.safe_load((ws / "config.yaml").read_text())
        config["functions"]["looper"]["reserved_concurrency"] = 0
        (ws / "config.yaml").write_text(yaml.safe_dump(config))
        log.wait_for(log.named("event.dead_lettered", function="looper"), timeout=60)


@pytest.mark.integration
@pytest.mark.skipif(not LAMBDA_PATHS, reason="no mount namespaces here")
def test_a_handler_cannot_write_straight_into_a_bucket_folder(tmp_path: Path) -> None:
    ws = loop_workspace(tmp_path)
    with running(ws) as (_, log):
        drop(ws / "buckets/direct/x")
        report = log.wait_for(log.named("invoke.report", function="direct"), timeout=60)[0]
        assert report["status"] == "OSError"
        assert not (ws / "buckets/loop/direct").exists()
        assert any("[Errno 30] Read-only file system" in json.dumps(e) for e in log.events)
    assert os.access(ws / "buckets/loop", os.W_OK)  # the host's own view stays writable


@pytest.mark.integration
def test_a_loop_through_on_success_destinations_is_stopped_too(tmp_path: Path) -> None:
    ok = "def handler(event, context):\n    return 1\n"
    config = {
        "region": "us-east-1",
        "account": "123456789012",
        "simulator": {"time_scale": 0.002, "settle_ms": 20},
        "functions": {
            "ping": {"retries": 0, "on_success": {"function": f"{ARN}:pong"}},
            "pong": {"retries": 0, "on_success": {"function": f"{ARN}:ping"}},
        },
        "buckets": {
            "start": {
                "notifications": [
                    {"id": "go", "events": ["s3:ObjectCreated:*"], "function": f"{ARN}:ping"}
                ]
            }
        },
    }
    ws = make_workspace(
        tmp_path / "ws", config, {"ping": {"handler.py": ok}, "pong": {"handler.py": ok}}
    )
    with running(ws) as (_, log):
        drop(ws / "buckets/start/x")
        stopped = log.wait_for(log.named("invoke.recursive_loop"), timeout=90)[0]
        assert stopped["function"] == "ping" and stopped["invocations"] == 16
        assert len(log.wait_for(log.named("invoke.report", function="ping"), count=16)) == 16
        assert len(log.wait_for(log.named("invoke.report", function="pong"), count=16)) == 16


SELF_INVOKER = """
import boto3

lam = boto3.client("lambda")  # AWS_ENDPOINT_URL_LAMBDA comes from the environment


def handler(event, context):
    lam.invoke(FunctionName=context.function_name, InvocationType="Event", Payload=b"{}")
    return 1
"""


@pytest.mark.integration
def test_a_function_that_invokes_itself_through_the_lambda_api_is_stopped(tmp_path: Path) -> None:
    config = {
        "region": "us-east-1",
        "account": "123456789012",
        "simulator": {"time_scale": 0.002, "settle_ms": 20},
        "functions": {"again": {"timeout": 10, "retries": 0}},
        "buckets": {
            "start": {
                "notifications": [
                    {"id": "go", "events": ["s3:ObjectCreated:*"], "function": f"{ARN}:again"}
                ]
            }
        },
    }
    ws = make_workspace(tmp_path / "ws", config, {"again": {"handler.py": SELF_INVOKER}})
    with running(ws) as (_, log):
        drop(ws / "buckets/start/x")
        stopped = log.wait_for(log.named("invoke.recursive_loop"), timeout=90)[0]
        assert stopped["function"] == "again" and stopped["invocations"] == 16
        reports = log.wait_for(log.named("invoke.report", function="again"), count=16)
        assert len(reports) == 16 and all(r["status"] == "success" for r in reports)
