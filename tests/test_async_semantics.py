"""Lambda's asynchronous invocation in full: overrides, destinations, throttles, chaos, memory."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.cli import main
from simulator.core import config_parse
from tests.helpers import ARN, drop, handler_source, make_workspace, results, running, simple_config

pytestmark = pytest.mark.integration


def workspace(
    tmp_path: Path,
    settings: dict[str, Any] | None = None,
    functions: dict[str, dict[str, str]] | None = None,
    **function: Any,
) -> Path:
    out = tmp_path / "out"
    out.mkdir(parents=True)
    config = simple_config(out, **function)
    config["simulator"].update(settings or {})
    return make_workspace(
        tmp_path / "ws", config, functions or {"fn": {"handler.py": handler_source()}}
    )


def add_function(ws: Path, name: str, code: str, **settings: Any) -> None:
    raw = yaml.safe_load((ws / "config.yaml").read_text())
    raw["functions"][name] = {"handler": "handler.handler", **settings}
    (ws / "functions" / name).mkdir(parents=True, exist_ok=True)
    (ws / "functions" / name / "handler.py").write_text(code)
    (ws / "config.yaml").write_text(yaml.safe_dump(raw))


SINK = """
import json, os
def handler(event, context):
    with open(os.path.join(os.environ["OUT"], "sink-" + context.aws_request_id + ".json"), "w") as f:
        json.dump(event, f)
    return "ok"
"""


def test_alias_overrides_retries_and_destinations(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path,
        aliases={
            "live": {"version": "$LATEST", "retries": 0, "on_failure": {"bucket": "alias-failures"}}
        },
    )
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/fail.txt")
        (dead,) = log.wait_for(log.named("event.dead_lettered"))
        (written,) = log.wait_for(log.named("destination.written"))
    assert dead["attempts"] == 1 and dead["condition"] == "RetriesExhausted"
    assert written["bucket"] == "alias-failures"


def test_on_success_to_a_function_carries_the_success_record(tmp_path: Path) -> None:
    ws = workspace(tmp_path, on_success={"function": f"{ARN}:sink"})
    add_function(ws, "sink", SINK, environment={"OUT": str(tmp_path / "out")})
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/ok.txt")
        (sent,) = log.wait_for(log.named("destination.invoked"))
        log.wait_for(log.named("invoke.report", function="sink"))
    (sink,) = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("sink-*.json")]
    assert sink["requestContext"] == {
        "requestId": sent["request_id"],
        "functionArn": f"{ARN}:fn:live",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert sink["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert sink["responsePayload"] == {"key": "ok.txt", "tag": "v1"}
    assert sink["requestPayload"]["Records"][0]["s3"]["object"]["key"] == "ok.txt"


def test_on_success_bucket_is_refused() -> None:
    from simulator.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        config_parse.parse(simple_config(Path("/tmp"), on_success={"bucket": "failed"}))
    assert "supported as on-failure destinations only" in str(info.value)


def test_reserved_concurrency_zero_sends_events_straight_to_failure(tmp_path: Path) -> None:
    ws = workspace(tmp_path, reserved_concurrency=0)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (dead,) = log.wait_for(log.named("event.dead_lettered"))
        log.wait_for(log.named("destination.written"))
    assert log.matching(log.named("invoke.start")) == []
    assert dead["attempts"] == 0 and dead["error_type"] == "TooManyRequestsException"
    (path,) = [p for p in (ws / "buckets/failed").rglob("*") if p.is_file()]
    record = json.loads(path.read_text())
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["responseContext"] == {"statusCode": 429}


def test_throttle_backoff_mode_retries_without_using_attempts(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path, settings={"throttle": "backoff", "time_scale": 0.01}, reserved_concurrency=1
    )
    with running(ws) as (_, log):
        for i in range(3):
            drop(ws / f"buckets/uploads/t{i}.txt")
        log.wait_for(log.named("invoke.report", status="success"), count=3)
    throttles = [e for e in log.matching(log.named("invoke.throttled")) if "delivery_id" in e]
    assert throttles and all(e["retry_in_s"] >= 0.01 for e in throttles)
    assert all(r["event"] for r in results(tmp_path / "out"))
    assert log.matching(log.named("retry.scheduled")) == []


def test_chaos_duplicates_keep_the_request_id(tmp_path: Path) -> None:
    ws = workspace(tmp_path, settings={"duplicate_fraction": 1.0, "reorder_window_ms": 50})
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report"), count=2)
    assert len(log.matching(log.named("delivery.duplicated"))) == 1
    assert len(log.matching(log.named("delivery.delayed"))) == 1
    ids = [r["context"]["aws_request_id"] for r in results(tmp_path / "out")]
    assert len(ids) == 2 and len(set(ids)) == 1
    starts = log.matching(log.named("invoke.start"))
    assert sorted(bool(s.get("duplicate")) for s in starts) == [False, True]


def test_memory_limit_kills_and_reports_out_of_memory(tmp_path: Path) -> None:
    hog = "def handler(e, c):\n    blocks = [bytearray(16 * 2**20) for _ in range(20)]\n    return len(blocks)\n"
    ws = workspace(tmp_path, functions={"fn": {"handler.py": hog}}, retries=0)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (failure,) = log.wait_for(log.named("invoke.failed"))
        (report,) = log.wait_for(log.named("invoke.report"))
    assert failure["error_type"] == "Runtime.OutOfMemory"
    assert failure["error"] == (
        f"RequestId: {failure['request_id']} Error: Runtime exited with error: signal: killed"
    )
    assert report["max_memory_mb"] > 128


def test_force_cold_start_and_keep_alive_reaping(tmp_path: Path) -> None:
    ws = workspace(tmp_path, settings={"force_cold_start": True})
    with running(ws) as (_, log):
        for i in range(2):
            drop(ws / f"buckets/uploads/c{i}.txt")
            log.wait_for(log.named("invoke.report"), count=i + 1)
    assert all("init_ms" in r for r in log.matching(log.named("invoke.report")))
    ws2 = workspace(tmp_path / "two", settings={"keep_alive_s": 1})
    with running(ws2) as (runtime, log):
        drop(ws2 / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report"))
        log.wait_for(log.named("environment.reaped"), timeout=10)
        assert runtime.pool.warm_count() == {}


def cli(ws: Path, *args: str) -> int:
    return main(["-w", str(ws), *args])


def test_dead_letters_listed_and_replayed_with_new_request_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path, retries=0)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/fail.txt")
        (dead,) = log.wait_for(log.named("event.dead_lettered"))
        assert cli(ws, "dead-letters") == 0
        listing = capsys.readouterr().out
        assert dead["request_id"] in listing and "RetriesExhausted" in listing
        assert cli(ws, "replay", str(dead["delivery_id"])) == 0
        (replayed,) = log.wait_for(log.named("event.replayed"))
        log.wait_for(log.named("event.dead_lettered"), count=2)
    assert replayed["replay_of"] == dead["request_id"]
    assert replayed["request_id"] != dead["request_id"]
    ids = {r["context"]["aws_request_id"] for r in results(tmp_path / "out")}
    assert ids == {dead["request_id"], replayed["request_id"]}


def test_refire_existing_objects_and_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path)
    drop(ws / "buckets/uploads/old/a.txt")
    drop(ws / "buckets/uploads/old/b.txt")
    drop(ws / "buckets/uploads/other.txt")
    with running(ws) as (_, log):
        assert cli(ws, "replay", "--bucket", "uploads", "--prefix", "old/") == 0
        assert "queued: re-fire events for s3://uploads/old/*" in capsys.readouterr().out
        log.wait_for(log.named("invoke.report"), count=2)
        log.wait_for(log.named("bucket.refired"))
    keys = sorted(
        r["event"]["Records"][0]["s3"]["object"]["key"] for r in results(tmp_path / "out")
    )
    assert keys == ["old/a.txt", "old/b.txt"]
    assert cli(ws, "status", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["running"] is False
    assert report["functions"]["fn"]["done"] == 2 and report["functions"]["fn"]["dead"] == 0
    assert cli(ws, "status") == 0
    assert capsys.readouterr().out.startswith("simulator: not running")


def test_a_throttled_event_past_its_age_is_given_up_unrun(tmp_path: Path) -> None:
    """In backoff mode a throttled event goes back on the queue with Lambda's backoff, but
    never beyond its maximum age: then it ends with EventAgeExceeded, not run."""
    ws = workspace(
        tmp_path,
        settings={"throttle": "backoff", "time_scale": 0.001},
        reserved_concurrency=1,
        max_event_age=60,  # 60 ms at this time scale; the backoff passes it within 7 throttles
        timeout=10,
    )
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/sleep.txt")  # holds the only slot
        log.wait_for(log.named("invoke.start", key="sleep.txt"))
        drop(ws / "buckets/uploads/late.txt")
        (dead,) = log.wait_for(log.named("event.dead_lettered", key="late.txt"))
    assert dead["condition"] == "EventAgeExceeded" and dead["attempts"] == 0
    throttles = [e for e in log.matching(log.named("invoke.throttled")) if "delivery_id" in e]
    assert [e["throttles"] for e in throttles] == list(range(1, len(throttles) + 1))
    assert {r["event"]["Records"][0]["s3"]["object"]["key"] for r in results(tmp_path / "out")} == {
        "sleep.txt"
    }
