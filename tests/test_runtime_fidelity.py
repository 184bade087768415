"""Handlers under AWS's runtime interface client, end to end, against values from the reference
(aws-semantics §6) and the recordings (tests/fixtures, shared/reference/aws-recordings).

Every invocation here is a real file dropped in a real bucket of a running simulator; results
are read where a user reads them: the on-failure record in the destination bucket, the
on-success record a second function (`sink`) receives, and the log stream. The last tests
drive the Runtime API itself with http.client, as a runtime would.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import queue
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from simulator.lambdas.runtime_api import MAX_PAYLOAD, Endpoint, Message, RuntimeApi, Work
from tests.conftest import fixture
from tests.faults import journal_rows
from tests.helpers import ARN, EventLog, drop, make_workspace, running, simple_config

pytestmark = pytest.mark.integration

# The sink: an on_success destination that keeps each Success record it receives, named by
# the request id of the invocation it reports.
SINK = """
import json, os

def handler(event, context):
    name = event["requestContext"]["requestId"] + ".json"
    tmp = os.path.join(os.environ["OUT"], "." + name)
    with open(tmp, "w") as f:
        json.dump(event, f)
    os.replace(tmp, os.path.join(os.environ["OUT"], name))
"""

# Shared by the handlers below: the object key of the event, decoded.
KEY = "from urllib.parse import unquote_plus\n\ndef key_of(event):\n    return unquote_plus(event['Records'][0]['s3']['object']['key'])\n"

TRACE = re.compile(
    r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0;Lineage=[0-9a-f]{8}:0$"
)
LOG_LINE = r"\[ERROR\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t"  # RIC's Text format, §6.6


def workspace(tmp_path: Path, files: dict[str, str], **function: Any) -> Path:
    """Function `fn` (alias `live` -> $LATEST, every bucket event of `uploads`), its failures
    recorded in bucket `failed` and its successes sent to function `sink`."""
    out = tmp_path / "out"
    out.mkdir()
    function.setdefault("retries", 0)
    config = simple_config(out, on_success={"function": f"{ARN}:sink:live"}, **function)
    config["functions"]["sink"] = {
        "handler": "handler.handler",
        "timeout": 3,
        "environment": {"OUT": str(out)},
        "retries": 0,
        "aliases": {"live": "$LATEST"},
    }
    return make_workspace(tmp_path / "ws", config, {"fn": files, "sink": {"handler.py": SINK}})


def success_record(ws: Path, request_id: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((ws.parent / "out" / f"{request_id}.json").read_text())
    return record


def failure_record(ws: Path) -> dict[str, Any]:
    (path,) = [p for p in (ws / "buckets/failed").rglob("*") if p.is_file()]
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def succeeded(log: EventLog, count: int = 1) -> list[dict[str, Any]]:
    """Waits until `count` Success records have reached the sink; the invocations of `fn`."""
    log.wait_for(log.named("invoke.report", function="sink", status="success"), count=count)
    return log.matching(log.named("invoke.report", function="fn"))


def lines_of(log: EventLog, request_id: str) -> list[str]:
    return [e["message"] for e in log.matching(log.named("function.log", request_id=request_id))]


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Polls a state a user could look at (the journal, `idle`), bounded."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s} s for {what}")
        time.sleep(0.02)


# -- 1. error payloads -------------------------------------------------------------------------


def test_unhandled_exception_payload_is_the_recorded_one(tmp_path: Path) -> None:
    """The recorded handler (`raise Exception("Handler fails")` on line 2), its payload
    compared whole, the code folder read as /var/task."""
    code = 'def handler(event, context):\n    raise Exception("Handler fails")\n'
    ws = workspace(
        tmp_path, {"lambda_handler_error.py": code}, handler="lambda_handler_error.handler"
    )
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (dead,) = log.wait_for(log.named("event.dead_lettered"))
        log.wait_for(log.named("destination.written"))
    payload = failure_record(ws)["responsePayload"]
    payload["stackTrace"] = [
        line.replace(str(ws / "functions/fn"), "/var/task") for line in payload["stackTrace"]
    ]
    expected = fixture("invoke_handler_error.json")["recorded"]["invocation_error"]["Payload"]
    assert payload == {**expected, "requestId": dead["request_id"]}
    assert list(payload) == ["errorMessage", "errorType", "requestId", "stackTrace"]


@pytest.mark.parametrize(
    "code, handler, payload",
    [
        pytest.param(
            "import not_a_module\n",
            "handler.handler",
            {
                "errorMessage": "Unable to import module 'handler': No module named 'not_a_module'",
                "errorType": "Runtime.ImportModuleError",
                "requestId": "",
                "stackTrace": [],
            },
            id="import-error",
        ),
        pytest.param(
            "def other(event, context):\n    pass\n",
            "handler.handler",
            {
                "errorMessage": "Handler 'handler' missing on module 'handler'",
                "errorType": "Runtime.HandlerNotFound",
                "requestId": "",
                "stackTrace": [],
            },
            id="handler-not-found",
        ),
        pytest.param(
            "x = 1\ndef handler(event, context)\n    return x\n",
            "handler.handler",
            {
                "errorMessage": "Syntax error in module 'handler': expected ':' (handler.py, line 2)",
                "errorType": "Runtime.UserCodeSyntaxError",
                "requestId": "",
                # awslambdaric: '  File "%s" Line %s\n    %s' % (filename, lineno, text)
                "stackTrace": [
                    '  File "/var/task/handler.py" Line 2\n    def handler(event, context)\n'
                ],
            },
            id="syntax-error",
        ),
    ],
)
def test_init_error_payloads(
    tmp_path: Path, code: str, handler: str, payload: dict[str, Any]
) -> None:
    """An init failure is the invocation's failure, with the payload the runtime client posts
    to /init/error (no request id yet: "", §6.1)."""
    ws = workspace(tmp_path, {"handler.py": code}, handler=handler)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (failure,) = log.wait_for(log.named("invoke.failed"))
        log.wait_for(log.named("destination.written"))
    record = failure_record(ws)["responsePayload"]
    record["stackTrace"] = [
        line.replace(str(ws / "functions/fn"), "/var/task") for line in record["stackTrace"]
    ]
    assert record == payload
    assert (failure["error_type"], failure["error"]) == (
        payload["errorType"],
        payload["errorMessage"],
    )


def test_timeout_payload_is_the_recorded_one(tmp_path: Path) -> None:
    """The recorded timeout (Timeout=1, a handler sleeping longer): the 2025 text."""
    code = "import time\n\ndef handler(event, context):\n    time.sleep(30)\n"
    ws = workspace(tmp_path, {"handler.py": code}, timeout=1)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (dead,) = log.wait_for(log.named("event.dead_lettered"))
        log.wait_for(log.named("destination.written"))
        (report,) = log.matching(log.named("invoke.report", function="fn"))
    expected = fixture("invoke_timeout.json")["recorded"]["invoke-result"]["Payload"]
    text = expected["errorMessage"].replace("<timeout_error_msg>", dead["request_id"])
    payload = failure_record(ws)["responsePayload"]
    assert payload == {"errorType": "Sandbox.Timedout", "errorMessage": text}
    assert text == f"RequestId: {dead['request_id']} Error: Task timed out after 1.00 seconds"
    # REPORT after a timeout still says how much memory the environment used (item 9)
    assert report["status"] == "Sandbox.Timedout" and report["max_memory_mb"] > 0


# -- 2. return values the marshaller takes ----------------------------------------------------


def test_decimal_and_bytes_returns_succeed_with_their_json(tmp_path: Path) -> None:
    """The marshaller writes Decimal("1.5") as the number 1.5 and passes bytes through
    (§6.4); both are successes, and the Success record carries the value."""
    code = KEY + (
        "import decimal\n\n"
        "def handler(event, context):\n"
        "    if key_of(event) == 'decimal.txt':\n"
        "        return {'price': decimal.Decimal('1.5'), 'n': [decimal.Decimal('2')]}\n"
        '    return b\'{"raw": [1, "two"]}\'\n'
    )
    ws = workspace(tmp_path, {"handler.py": code})
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/decimal.txt")
        drop(ws / "buckets/uploads/bytes.txt")
        reports = succeeded(log, count=2)
    assert [r["status"] for r in reports] == ["success", "success"]
    by_key = {}
    for report in reports:
        record = success_record(ws, report["request_id"])
        assert record["requestContext"]["condition"] == "Success"
        assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
        key = record["requestPayload"]["Records"][0]["s3"]["object"]["key"]
        by_key[key] = record["responsePayload"]
    assert by_key == {"decimal.txt": {"price": 1.5, "n": [2]}, "bytes.txt": {"raw": [1, "two"]}}


# -- 3. output cannot desynchronise results --------------------------------------------------


def test_a_lone_surrogate_printed_leaves_each_result_with_its_own_request(tmp_path: Path) -> None:
    """Output that is not UTF-8 cannot shift a result onto another request: the protocol
    binds each result to its request id."""
    code = KEY + (
        "\ndef handler(event, context):\n"
        "    print('\\udcff')\n"
        "    print('after', key_of(event))\n"
        "    return {'key': key_of(event)}\n"
    )
    ws = workspace(tmp_path, {"handler.py": code})
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/one.txt")
        log.wait_for(log.named("invoke.report", function="fn"))
        drop(ws / "buckets/uploads/two.txt")
        reports = succeeded(log, count=2)
    assert [r["status"] for r in reports] == ["success", "success"]
    keys = []
    for report in reports:
        rid = report["request_id"]
        record = success_record(ws, rid)
        key = record["requestPayload"]["Records"][0]["s3"]["object"]["key"]
        assert record["requestContext"]["requestId"] == rid
        assert record["responsePayload"] == {"key": key}
        # both lines, in order, under this invocation's id (the surrogate left as the byte
        # 0xff that surrogateescape writes)
        assert lines_of(log, rid) == ["\\xff", f"after {key}"]
        keys.append(key)
    assert keys == ["one.txt", "two.txt"]


# -- 4. NaN ------------------------------------------------------------------------------------


def test_a_nan_return_ends_with_bounded_attempts(tmp_path: Path) -> None:
    """float('nan') is written as `NaN` (the marshaller allows it): whatever the simulator
    makes of it, the event ends (done or dead) within retries + 1 = 3 attempts."""
    code = "def handler(event, context):\n    return {'value': float('nan')}\n"
    ws = workspace(tmp_path, {"handler.py": code}, retries=2)

    def rows() -> list[tuple[str, str, str, int]]:
        return [r for r in journal_rows(ws) if r[1] == "nan.txt"]

    with running(ws) as (runtime, log):
        drop(ws / "buckets/uploads/nan.txt")
        first = log.wait_for(log.named("invoke.report", function="fn"))[0]
        wait_until(lambda: [r[2] for r in rows()] in (["done"], ["dead"]), "an outcome")
        wait_until(runtime.idle, "the simulator to be idle")  # nothing left: no loop
        starts = log.matching(log.named("invoke.start", request_id=first["request_id"]))
        sink_runs = log.matching(log.named("invoke.start", function="sink"))
    ((_, _, state, attempts),) = rows()
    assert 1 <= attempts <= 3 and len(starts) == attempts, (state, attempts, len(starts))
    assert len(sink_runs) <= 1


# -- 5. output at the descriptor level and logging ---------------------------------------------


def test_descriptor_level_output_and_log_records_join_the_stream(tmp_path: Path) -> None:
    """Bytes written to descriptors 1 and 2 (by the handler and by a child process) are lines
    of this invocation; a logging record is one event in RIC's Text format (§6.6), a logged
    traceback included."""
    code = (
        "import logging, os, subprocess\n\n"
        "def handler(event, context):\n"
        "    os.write(1, b'fd-one\\n')\n"
        "    os.write(2, b'fd-two\\n')\n"
        "    subprocess.run(['echo', 'from-echo'], check=True)\n"
        "    logging.getLogger().error('x')\n"
        "    try:\n"
        "        raise ValueError('inner')\n"
        "    except ValueError:\n"
        "        logging.getLogger().exception('caught')\n"
        "    return 'ok'\n"
    )
    ws = workspace(tmp_path, {"handler.py": code})
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (report,) = succeeded(log)
    rid = report["request_id"]
    lines = lines_of(log, rid)
    for text in ("fd-one", "fd-two", "from-echo"):
        assert text in lines, (text, lines)
    assert len([m for m in lines if re.fullmatch(LOG_LINE + re.escape(rid) + r"\tx", m)]) == 1
    (traceback,) = [m for m in lines if "Traceback" in m]  # one event, newlines and all
    assert re.match(LOG_LINE + re.escape(rid) + r"\tcaught\nTraceback \(most recent", traceback)
    assert traceback.endswith("\nValueError: inner"), traceback
    assert "raise ValueError('inner')" in traceback


# -- 6. what a handler can import --------------------------------------------------------------


def test_boto3_is_the_one_installed_with_s3sim(tmp_path: Path) -> None:
    """Managed Python runtimes bundle boto3 (DESIGN.md, "Execution environments")."""
    code = "import boto3\n\ndef handler(event, context):\n    return boto3.__version__\n"
    ws = workspace(tmp_path, {"handler.py": code})
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (report,) = succeeded(log)
    assert report["status"] == "success"
    version = success_record(ws, report["request_id"])["responsePayload"]
    assert version == importlib.metadata.version("boto3")


@pytest.mark.parametrize("module", ["yaml", "structlog", "simulator"])
def test_the_simulators_own_packages_cannot_be_imported(tmp_path: Path, module: str) -> None:
    """The simulator's dependencies (and the simulator itself) are not the runtime's."""
    ws = workspace(tmp_path, {"handler.py": f"import {module}\n"})
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (failure,) = log.wait_for(log.named("invoke.failed"))
    assert failure["error_type"] == "Runtime.ImportModuleError"
    assert failure["error"] == f"Unable to import module 'handler': No module named '{module}'"


# -- 7. the process environment ---------------------------------------------------------------


def test_trace_header_runtime_api_context_and_stdio(tmp_path: Path) -> None:
    """What two invocations see (§6.3, §6.7): a fresh, well-formed X-Ray header each, the
    Runtime API address, the time left, usable stdio and the `exit` builtin."""
    code = (
        "import builtins, os, sys\n\n"
        "def handler(event, context):\n"
        "    return {\n"
        "        'trace': os.environ.get('_X_AMZN_TRACE_ID'),\n"
        "        'api': os.environ.get('AWS_LAMBDA_RUNTIME_API'),\n"
        "        'remaining_ms': context.get_remaining_time_in_millis(),\n"
        "        'encoding': sys.stdout.encoding,\n"
        "        'fileno': sys.stdout.fileno(),\n"
        "        'exit': callable(getattr(builtins, 'exit', None)),\n"
        "    }\n"
    )
    ws = workspace(tmp_path, {"handler.py": code}, timeout=3)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/one.txt")
        log.wait_for(log.named("invoke.report", function="fn"))
        drop(ws / "buckets/uploads/two.txt")
        reports = succeeded(log, count=2)
    seen = [success_record(ws, r["request_id"])["responsePayload"] for r in reports]
    for value in seen:
        assert TRACE.match(value["trace"]), value["trace"]
        assert re.fullmatch(r"127\.0\.0\.1:\d{1,5}", value["api"]), value["api"]
        assert 0 < value["remaining_ms"] <= 3000
        assert isinstance(value["encoding"], str) and value["encoding"]
        assert value["fileno"] == 1
        assert value["exit"] is True
    assert seen[0]["trace"] != seen[1]["trace"]


# -- 9. REPORT after a crash ---------------------------------------------------------------------


def test_report_after_a_crash_has_memory_used(tmp_path: Path) -> None:
    """os._exit(3) in the first invocation of an environment: Runtime.ExitError with Lambda's
    text (§6.5), and a REPORT that still measured the process."""
    code = "import os\n\ndef handler(event, context):\n    os._exit(3)\n"
    ws = workspace(tmp_path, {"handler.py": code})
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (failure,) = log.wait_for(log.named("invoke.failed"))
        (report,) = log.wait_for(log.named("invoke.report", function="fn"))
    rid = failure["request_id"]
    assert failure["error_type"] == "Runtime.ExitError"
    assert failure["error"] == f"RequestId: {rid} Error: Runtime exited with error: exit status 3"
    assert report["status"] == "Runtime.ExitError"
    assert report["max_memory_mb"] > 0


# -- 8. the Runtime API, driven directly ---------------------------------------------------------

API = "/2018-06-01/runtime"
ERROR_ID = {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}


@contextmanager
def endpoint() -> Iterator[tuple[RuntimeApi, Endpoint, queue.SimpleQueue[Message]]]:
    """A Runtime API with one endpoint (reading a pipe of ours as the runtime's output)."""
    read_fd, write_fd = os.pipe()
    api = RuntimeApi()
    messages: queue.SimpleQueue[Message] = queue.SimpleQueue()
    try:
        opened = api.open(messages, read_fd, None)
        try:
            yield api, opened, messages
        finally:
            api.close(opened)
    finally:
        api.shutdown()
        os.close(read_fd)
        os.close(write_fd)


def call(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, API + path, body=body)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def kinds(messages: queue.SimpleQueue[Message]) -> list[tuple[str, str]]:
    """The (kind, request id) of the messages the endpoint has posted so far, without the
    `next` each later `GET next` reports (the end of the invocation before it)."""
    found: list[tuple[str, str]] = []
    while True:
        try:
            message = messages.get(timeout=2.0)
        except queue.Empty:
            return found
        if message.kind != "next":
            found.append((message.kind, message.request_id))
        if messages.empty():
            return found


def test_runtime_api_statuses_follow_rapid() -> None:
    """One runtime's session, step by step: what `next` hands over, then each way a post can
    be wrong, with the status and body AWS's runtime API (RAPID) gives it."""
    event = b'{"Records": []}'
    arn = f"{ARN}:fn:live"
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
    first = Work("6b5d3c4c-0000-4000-8000-000000000001", event, 1700000000123, arn, trace)
    second = Work("6b5d3c4c-0000-4000-8000-000000000002", b"{}", 1700000009999, arn, trace)
    with endpoint() as (api, opened, messages):
        conn = http.client.HTTPConnection("127.0.0.1", opened.port, timeout=10)
        try:
            api.submit(opened, first)
            status, headers, body = call(conn, "GET", "/invocation/next")
            assert (status, body) == (200, event)
            assert headers["Content-Type"] == "application/json"
            assert headers["Lambda-Runtime-Aws-Request-Id"] == first.request_id
            assert headers["Lambda-Runtime-Deadline-Ms"] == "1700000000123"
            assert headers["Lambda-Runtime-Invoked-Function-Arn"] == arn
            assert headers["Lambda-Runtime-Trace-Id"] == trace
            assert kinds(messages) == [("ready", "")]

            # a response for an id that is not the one in flight
            status, _, body = call(conn, "POST", "/invocation/not-the-id/response", b'"x"')
            assert (status, json.loads(body)) == (400, ERROR_ID)

            # init/error once the runtime has asked for an invocation
            status, _, body = call(conn, "POST", "/init/error", b"{}")
            assert status == 403 and json.loads(body)["errorType"] == "InvalidStateTransition"

            # the right id: accepted, and the owner learns it
            status, _, body = call(
                conn, "POST", f"/invocation/{first.request_id}/response", b'"done"'
            )
            assert (status, json.loads(body)) == (202, {"status": "OK"})
            assert kinds(messages) == [("response", first.request_id)]

            # the same id again: nothing is in flight, so RAPID's 403
            status, _, body = call(
                conn, "POST", f"/invocation/{first.request_id}/response", b'"again"'
            )
            assert status == 403 and json.loads(body)["errorType"] == "InvalidStateTransition"

            # the next invocation: the finished id is now a wrong one (400)
            api.submit(opened, second)
            status, headers, _ = call(conn, "GET", "/invocation/next")
            assert headers["Lambda-Runtime-Aws-Request-Id"] == second.request_id
            status, _, body = call(
                conn, "POST", f"/invocation/{first.request_id}/response", b'"late"'
            )
            assert (status, json.loads(body)) == (400, ERROR_ID)

            # a response over 6291556 bytes: 413, and the invocation fails
            assert MAX_PAYLOAD == 6291556
            big = b'"' + b"x" * (6291556 - 1) + b'"'
            status, _, body = call(conn, "POST", f"/invocation/{second.request_id}/response", big)
            assert status == 413 and json.loads(body)["errorType"] == "RequestEntityTooLarge"
            assert kinds(messages) == [("too_large", second.request_id)]
        finally:
            conn.close()


def test_runtime_api_init_error_before_the_first_next_is_accepted() -> None:
    with endpoint() as (_, opened, messages):
        conn = http.client.HTTPConnection("127.0.0.1", opened.port, timeout=10)
        try:
            body = b'{"errorMessage":"Unable to import module \'handler\'","errorType":"Runtime.ImportModuleError"}'
            conn.request(
                "POST",
                API + "/init/error",
                body=body,
                headers={"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
            )
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (202, {"status": "OK"})
            message = messages.get(timeout=2.0)
            assert (message.kind, message.body, message.error_type) == (
                "init_error",
                body,
                "Runtime.ImportModuleError",
            )
        finally:
            conn.close()


def test_runtime_api_takes_a_response_of_exactly_the_limit() -> None:
    work = Work("6b5d3c4c-0000-4000-8000-000000000003", b"{}", 1700000000123, f"{ARN}:fn", "")
    with endpoint() as (api, opened, messages):
        conn = http.client.HTTPConnection("127.0.0.1", opened.port, timeout=10)
        try:
            api.submit(opened, work)
            assert call(conn, "GET", "/invocation/next")[0] == 200
            exact = b'"' + b"x" * (6291556 - 2) + b'"'
            status, _, _ = call(conn, "POST", f"/invocation/{work.request_id}/response", exact)
            assert status == 202
            assert kinds(messages) == [("ready", ""), ("response", work.request_id)]
        finally:
            conn.close()


# -- 8, end to end: a response over the limit --------------------------------------------------

BIG = KEY + (
    "\ndef handler(event, context):\n"
    "    if key_of(event) == 'big.txt':\n"
    "        return 'x' * 7000000\n"
    "    return 'small'\n"
)


def test_a_response_over_6291556_bytes_fails_as_response_size_too_large(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"handler.py": BIG})
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/big.txt")
        (failure,) = log.wait_for(log.named("invoke.failed"))
        log.wait_for(log.named("destination.written"))
    assert failure["error_type"] == "Function.ResponseSizeTooLarge"
    assert "6291556 bytes" in failure["error"]
    payload = failure_record(ws)["responsePayload"]
    assert (payload["errorType"], payload["errorMessage"]) == (
        failure["error_type"],
        failure["error"],
    )


def test_the_invocation_after_a_too_large_response_is_not_failed_by_it(tmp_path: Path) -> None:
    """One environment (reserved concurrency 1): small.txt waits while big.txt runs, then
    runs as soon as big.txt has failed. It must succeed, in a new environment."""
    ws = workspace(tmp_path, {"handler.py": BIG}, reserved_concurrency=1)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/big.txt")
        log.wait_for(log.named("invoke.start", function="fn"))
        drop(ws / "buckets/uploads/small.txt")
        reports = log.wait_for(log.named("invoke.report", function="fn"), count=2)
    assert [(r["key"], r["status"]) for r in reports] == [
        ("big.txt", "Function.ResponseSizeTooLarge"),
        ("small.txt", "success"),
    ]
