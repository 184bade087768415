"""End to end: real folders, the real watcher, real worker processes, the real journal."""

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import LAMBDA_PATHS
from tests.helpers import (
    ARN,
    drop,
    results,
    running,
)

pytestmark = pytest.mark.integration


def out_dir(ws: Path) -> Path:
    return ws.parent / "out"


def test_put_delivers_aws_shaped_event_and_context(ws: Path) -> None:
    os.environ["AWS_PROFILE"] = "someone-real"  # must never reach a handler
    try:
        with running(ws) as (_, log):
            drop(ws / "buckets/uploads/photos/red flower+1@x.jpg", b"something")
            log.wait_for(log.named("invoke.report", status="success"))
    finally:
        del os.environ["AWS_PROFILE"]
    (result,) = results(out_dir(ws))
    record = result["event"]["Records"][0]
    assert list(record) == [
        "eventVersion",
        "eventSource",
        "awsRegion",
        "eventTime",
        "eventName",
        "userIdentity",
        "requestParameters",
        "responseElements",
        "s3",
    ]
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["eventVersion"] == "2.1"
    obj = record["s3"]["object"]
    # eTag of "something" as recorded by real AWS (sqs_object_created_put.json)
    assert obj["eTag"] == "437b930db84b8079c2dd804a71936b5f" and obj["size"] == 9
    assert obj["key"] == "photos/red+flower%2B1%40x.jpg"
    assert "versionId" not in obj
    assert len(obj["sequencer"]) == 18 and obj["sequencer"] == obj["sequencer"].upper()
    assert record["s3"]["configurationId"] == "created"
    assert record["s3"]["bucket"]["arn"] == "arn:aws:s3:::uploads"
    ctx = result["context"]
    assert ctx["invoked_function_arn"] == f"{ARN}:fn:live"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["memory_limit_in_mb"] == "128"
    assert ctx["log_group_name"] == "/aws/lambda/fn"
    assert "[$LATEST]" in ctx["log_stream_name"]
    assert ctx["identity"] == "CognitoIdentity" and ctx["client_context"] is None
    assert 0 < ctx["remaining_ms"] <= 3000
    env = result["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn" and env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "handler.handler" and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    task_root = "/var/task" if LAMBDA_PATHS else str(ws / "functions" / "fn")
    assert env["LAMBDA_TASK_ROOT"] == result["cwd"] == task_root
    assert "AWS_PROFILE" not in env and env["AWS_ACCESS_KEY_ID"].startswith("ASIA")


def test_delete_fires_removed_event_with_key_and_sequencer_only(ws: Path) -> None:
    with running(ws) as (_, log):
        path = drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report"))
        path.unlink()
        log.wait_for(log.named("invoke.report"), count=2)
    put, delete = sorted(
        (r["event"]["Records"][0] for r in results(out_dir(ws))), key=lambda r: r["eventName"]
    )
    assert delete["eventName"] == "ObjectRemoved:Delete"
    assert set(delete["s3"]["object"]) == {"key", "sequencer"}
    assert delete["s3"]["object"]["sequencer"] > put["s3"]["object"]["sequencer"]


def test_atomic_save_fires_one_put_and_no_temp_file_events(ws: Path) -> None:
    with running(ws) as (_, log):
        folder = ws / "buckets/uploads"
        drop(folder / ".report.txt.swp", b"swap")
        drop(folder / "report.txt.tmp", b"partial")
        os.replace(folder / "report.txt.tmp", folder / "report.txt")
        drop(folder / "4913", b"")
        (folder / "4913").unlink()
        drop(folder / "after.txt")  # a later event proves the earlier ones were processed
        log.wait_for(log.named("invoke.report"), count=2)
    keys = sorted(r["event"]["Records"][0]["s3"]["object"]["key"] for r in results(out_dir(ws)))
    assert keys == ["after.txt", "report.txt"]


def test_rename_inside_bucket_is_delete_then_put(ws: Path) -> None:
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/old.txt")
        log.wait_for(log.named("invoke.report"))
        os.rename(ws / "buckets/uploads/old.txt", ws / "buckets/uploads/new.txt")
        log.wait_for(log.named("invoke.report"), count=3)
    events = {
        (r["event"]["Records"][0]["eventName"], r["event"]["Records"][0]["s3"]["object"]["key"])
        for r in results(out_dir(ws))
    }
    assert events == {
        ("ObjectCreated:Put", "old.txt"),
        ("ObjectRemoved:Delete", "old.txt"),
        ("ObjectCreated:Put", "new.txt"),
    }


def test_new_folders_and_moved_in_trees_fire_once_per_file(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "batch"
    for i in range(3):
        drop(outside / f"sub/f{i}.txt", f"moved {i}")
    with running(ws) as (_, log):
        for i in range(3):
            drop(ws / f"buckets/uploads/deep/a/b/c{i}.txt", f"written {i}")
        os.rename(outside, ws / "buckets/uploads/batch")
        log.wait_for(log.named("invoke.report"), count=6)
        drop(ws / "buckets/uploads/last.txt")
        log.wait_for(log.named("invoke.report"), count=7)
    keys = sorted(r["event"]["Records"][0]["s3"]["object"]["key"] for r in results(out_dir(ws)))
    assert keys == [
        "batch/sub/f0.txt",
        "batch/sub/f1.txt",
        "batch/sub/f2.txt",
        "deep/a/b/c0.txt",
        "deep/a/b/c1.txt",
        "deep/a/b/c2.txt",
        "last.txt",
    ]


def test_overwrite_fires_put_again_with_new_etag(ws: Path) -> None:
    with running(ws) as (_, log):
        path = drop(ws / "buckets/uploads/x.bin", b"one")
        log.wait_for(log.named("invoke.report"))
        path.write_bytes(b"two")
        log.wait_for(log.named("invoke.report"), count=2)
    etags = sorted(r["event"]["Records"][0]["s3"]["object"]["eTag"] for r in results(out_dir(ws)))
    assert etags == sorted([hashlib.md5(b"one").hexdigest(), hashlib.md5(b"two").hexdigest()])


def test_warm_environment_reuses_module_state(ws: Path) -> None:
    with running(ws) as (_, log):
        for i in range(3):
            drop(ws / f"buckets/uploads/w{i}.txt")
            log.wait_for(log.named("invoke.report"), count=i + 1)
    reports = log.matching(log.named("invoke.report"))
    assert "init_ms" in reports[0] and all("init_ms" not in r for r in reports[1:])
    assert sorted(r["count"] for r in results(out_dir(ws))) == [1, 2, 3]
    assert len({r["pid"] for r in results(out_dir(ws))}) == 1


def test_thousand_files_delivered_exactly_once(ws: Path) -> None:
    with running(ws) as (_, log):
        for i in range(1000):
            folder = ws / "buckets/uploads" / f"burst/{i % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".f{i}.tmp"
            tmp.write_bytes(b"x" * (i % 7))
            os.replace(tmp, folder / f"f{i}.dat")
        log.wait_for(log.named("invoke.report", status="success"), count=1000, timeout=120)
        failures = log.matching(log.named("invoke.failed"))
        assert failures == [], failures[:3]
    keys = [r["event"]["Records"][0]["s3"]["object"]["key"] for r in results(out_dir(ws))]
    assert len(keys) == 1000 and len(set(keys)) == 1000
    assert not any(".tmp" in k for k in keys)
