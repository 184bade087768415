"""Handler failures as the Lambda runtime reports them, retries, dead letters, destinations."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fixture
from tests.helpers import ARN, drop, handler_source, make_workspace, results, running, simple_config

pytestmark = pytest.mark.integration


def workspace(tmp_path: Path, files: dict[str, str] | None = None, **function: Any) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return make_workspace(
        tmp_path / "ws",
        simple_config(out, **function),
        {"fn": files or {"handler.py": handler_source()}},
    )


def test_failing_handler_retried_with_same_request_id_then_recorded(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    with running(ws) as (runtime, log):
        drop(ws / "buckets/uploads/please-fail.txt")
        (dead,) = log.wait_for(log.named("event.dead_lettered"))
        log.wait_for(log.named("destination.written"))
    failed = log.matching(log.named("invoke.failed"))
    assert [e["attempt"] for e in failed] == [1, 2, 3]
    assert len({e["request_id"] for e in failed}) == 1  # same id across retries, as in AWS
    assert [e["attempt"] for e in log.matching(log.named("retry.scheduled"))] == [2, 3]
    assert dead["condition"] == "RetriesExhausted" and dead["attempts"] == 3
    (record_path,) = [p for p in (ws / "buckets/failed").rglob("*") if p.is_file()]
    rel = record_path.relative_to(ws / "buckets/failed").as_posix()
    assert rel.startswith("aws/lambda/async/fn/") and rel.endswith(dead["request_id"])
    record = json.loads(record_path.read_text())
    assert list(record) == [
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    ]
    assert record["requestContext"] == {
        "requestId": dead["request_id"],
        "functionArn": f"{ARN}:fn:live",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    payload = record["responsePayload"]
    assert set(payload) == set(
        fixture("invoke_handler_error.json")["recorded"]["invocation_error"]["Payload"]
    )
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "failing on purpose: please-fail.txt"
    assert payload["requestId"] == dead["request_id"]
    assert 'raise ValueError(f"failing on purpose: {key}")' in payload["stackTrace"][-1]
    assert record["requestPayload"]["Records"][0]["s3"]["object"]["key"] == "please-fail.txt"
    # the handler saw the same request id on every attempt, in a warm environment
    ids = {r["context"]["aws_request_id"] for r in results(ws.parent / "out")}
    assert ids == {dead["request_id"]}
    assert runtime.deliverer.dead_lettered == 1


def test_timeout_kills_environment_keeps_tmp_and_cold_starts_next(tmp_path: Path) -> None:
    ws = workspace(tmp_path, timeout=1, retries=0)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/first.txt")
        log.wait_for(log.named("invoke.report"))
        drop(ws / "buckets/uploads/sleep.txt")
        (failure,) = log.wait_for(log.named("invoke.failed"))
        drop(ws / "buckets/uploads/after.txt")
        log.wait_for(log.named("invoke.report"), count=3)
    expected = fixture("invoke_timeout.json")["recorded"]["invoke-result"]["Payload"]
    assert failure["error_type"] == expected["errorType"] == "Sandbox.Timedout"
    assert failure["error"] == (
        f"RequestId: {failure['request_id']} Error: Task timed out after 1.00 seconds"
    )
    timed_out = [
        e
        for e in log.matching(log.named("function.log"))
        if "Task timed out after 1.00 seconds" in e["message"]
    ]
    assert timed_out and failure["request_id"] in timed_out[0]["message"]
    reports = log.matching(log.named("invoke.report"))
    assert "init_ms" in reports[2]  # the runtime was reset: a cold start
    after = next(
        r
        for r in results(ws.parent / "out")
        if r["event"]["Records"][0]["s3"]["object"]["key"] == "after.txt"
    )
    assert after["count"] == 1 and after["tmp_marker"] is True  # globals reset, /tmp kept


def test_process_exit_is_runtime_exit_error_and_replaced(tmp_path: Path) -> None:
    ws = workspace(tmp_path, retries=0)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/exit.txt")
        (failure,) = log.wait_for(log.named("invoke.failed"))
        drop(ws / "buckets/uploads/ok.txt")
        log.wait_for(log.named("invoke.report", status="success"))
    assert failure["error_type"] == "Runtime.ExitError"
    assert failure["error"] == (
        f"RequestId: {failure['request_id']} Error: Runtime exited with error: exit status 3"
    )


@pytest.mark.parametrize(
    "files, handler, error_type, message",
    [
        (
            {"handler.py": "import not_a_module\n"},
            "handler.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'handler': No module named 'not_a_module'",
        ),
        (
            {"handler.py": "def other(e, c):\n    pass\n"},
            "handler.handler",
            "Runtime.HandlerNotFound",
            "Handler 'handler' missing on module 'handler'",
        ),
        (
            {"handler.py": "def handler(e, c)\n"},
            "handler.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'handler'",
        ),
        ({"handler.py": "raise KeyError('boom')\n"}, "handler.handler", "KeyError", "'boom'"),
        (
            {"handler.py": ""},
            "sys.handler",
            "Runtime.BuiltInModuleConflict",
            "Cannot use built-in module sys as a handler module",
        ),
    ],
)
def test_init_failures_use_runtime_error_types(
    tmp_path: Path, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    ws = workspace(tmp_path, files, handler=handler, retries=0)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (failure,) = log.wait_for(log.named("invoke.failed"))
        log.wait_for(log.named("event.dead_lettered"))
    assert failure["error_type"] == error_type
    assert failure["error"].startswith(message)


def test_handler_without_a_dot_is_refused_by_validation_and_by_the_runtime(tmp_path: Path) -> None:
    """Validation refuses it with the text AWS's runtime client gives a version published
    before validation refused it (the client checks it too)."""
    from awslambdaric.bootstrap import _get_handler  # type: ignore[import-untyped]
    from awslambdaric.lambda_runtime_exception import (  # type: ignore[import-untyped]
        FaultException,
    )

    from simulator.errors import ConfigError
    from simulator.store import config_source
    from simulator.store.versions import VersionStore

    ws = workspace(tmp_path, {"handler.py": ""}, handler="handler", retries=0)
    message = "Bad handler 'handler': not enough values to unpack (expected 2, got 1)"
    with pytest.raises(ConfigError) as info:
        config_source.read(ws / "config.yaml", VersionStore(ws / "versions"))
    assert [str(p) for p in info.value.problems] == [f"functions.fn.handler: {message}"]
    with pytest.raises(FaultException) as init:
        _get_handler("handler")
    assert (init.value.exception_type, init.value.msg) == ("Runtime.MalformedHandlerName", message)


def test_handler_output_is_capped_per_invocation(tmp_path: Path) -> None:
    flood = (
        "def handler(e, c):\n    for i in range(100000):\n        print('x' * 100)\n    return 1\n"
    )
    ws = workspace(tmp_path, {"handler.py": flood})
    config = (
        (ws / "config.yaml")
        .read_text()
        .replace("settle_ms: 50", "settle_ms: 50\n  log_limit_bytes: 4096")
    )
    (ws / "config.yaml").write_text(config)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report", status="success"))
    lines = log.matching(log.named("function.log"))
    assert len(lines) < 60
    assert "truncated at 4096 bytes" in lines[-1]["message"]
