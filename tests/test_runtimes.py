"""What a handler's process can run and import: layers, requirements.txt builds, custom
runtimes, runtimes that are not installed, and Lambda's logging config."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from simulator import commands
from tests.conftest import LAMBDA_PATHS
from tests.helpers import drop, make_workspace, running, simple_config

pytestmark = pytest.mark.integration


def workspace(tmp_path: Path, files: dict[str, str], **function: Any) -> Path:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return make_workspace(tmp_path / "ws", simple_config(out, retries=0, **function), {"fn": files})


def invoke(ws: Path, qualifier: str = "live", key: str = "a.txt") -> tuple[bool, Any]:
    """`s3sim invoke` of one object: (succeeded, payload), as the CLI prints them."""
    drop(ws / "buckets/uploads" / key)
    text, ok = commands.invoke(ws, f"fn:{qualifier}", None, "uploads", key)
    return ok, json.loads(text.split("Payload: ", 1)[1])


def tiny_wheel(folder: Path, name: str = "tinydep", value: str = "from-a-wheel") -> Path:
    """A real wheel (a zip with dist-info), so pip installs it without an index."""
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"{name}.py", f"VALUE = {value!r}\n")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(f"{info}/RECORD", "")
    return wheel


def test_a_layer_provides_a_module_a_command_and_is_snapshotted_by_publish(tmp_path: Path) -> None:
    handler = """
import shutil, subprocess
import shared  # from the layer's python/ folder

def handler(event, context):
    tool = shutil.which("hello-tool")
    said = subprocess.run([tool], capture_output=True, text=True).stdout.strip() if tool else None
    return {"shared": shared.VALUE, "tool": said}
"""
    ws = workspace(tmp_path, {"handler.py": handler}, layers=["layers/common"])
    layer = ws / "layers/common"
    (layer / "python").mkdir(parents=True)
    (layer / "python/shared.py").write_text("VALUE = 'layer v1'\n")
    (layer / "bin").mkdir()
    (layer / "bin/hello-tool").write_text("#!/bin/sh\necho hello from the layer\n")
    os.chmod(layer / "bin/hello-tool", 0o755)
    assert invoke(ws) == (True, {"shared": "layer v1", "tool": "hello from the layer"})

    number = commands.publish(ws, "fn", None)
    snapshot = ws / "versions/fn" / number
    assert (snapshot / "layers/0/python/shared.py").read_text() == "VALUE = 'layer v1'\n"
    files = json.loads((snapshot / "version.json").read_text())["Files"]
    assert "/layers/0/python/shared.py" in files  # part of the version's digest
    # The layer changes after publishing: the version keeps running its snapshot.
    (layer / "python/shared.py").write_text("VALUE = 'layer v2'\n")
    assert invoke(ws, number)[1]["shared"] == "layer v1"
    assert invoke(ws)[1]["shared"] == "layer v2"


def test_requirements_txt_is_built_with_pip_and_published_with_the_version(tmp_path: Path) -> None:
    handler = "import tinydep\n\ndef handler(event, context):\n    return tinydep.VALUE\n"
    ws = workspace(tmp_path, {"handler.py": handler})
    fn = ws / "functions/fn"
    tiny_wheel(fn)
    (fn / "requirements.txt").write_text("./tinydep-1.0-py3-none-any.whl\n")
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (built,) = log.wait_for(log.named("function.built"))
        (report,) = log.wait_for(log.named("invoke.report"))
    assert built["function"] == "fn" and report["status"] == "success"
    assert invoke(ws) == (True, "from-a-wheel")
    number = commands.publish(ws, "fn", None)
    snapshot = ws / "versions/fn" / number
    assert (snapshot / "build/tinydep.py").is_file()
    assert "/build/tinydep.py" in json.loads((snapshot / "version.json").read_text())["Files"]


def test_a_failing_pip_names_the_function_and_keeps_the_last_good_build(tmp_path: Path) -> None:
    handler = "import tinydep\n\ndef handler(event, context):\n    return tinydep.VALUE\n"
    ws = workspace(tmp_path, {"handler.py": handler})
    fn = ws / "functions/fn"
    tiny_wheel(fn)
    (fn / "requirements.txt").write_text("./tinydep-1.0-py3-none-any.whl\n")
    assert invoke(ws) == (True, "from-a-wheel")
    (fn / "requirements.txt").write_text("./no-such-package-1.0-py3-none-any.whl\n")
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/second.txt")
        (failed,) = log.wait_for(log.named("function.build_failed"))
        (report,) = log.wait_for(log.named("invoke.report"))
    assert failed["function"] == "fn" and report["status"] == "success"
    assert "no-such-package" in failed["error"]


BOOTSTRAP = """#!{python} -I
# A custom runtime: the Runtime API loop of a `provided.al2023` function, by hand.
import json, os, sys, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
if os.path.exists("init-fails"):
    body = json.dumps({{"errorMessage": "cannot start", "errorType": "Custom.InitFailed"}})
    request = urllib.request.Request(API + "/init/error", body.encode(), method="POST",
                                     headers={{"Lambda-Runtime-Function-Error-Type": "Custom.InitFailed"}})
    urllib.request.urlopen(request).read()
    sys.exit(1)
print("bootstrap ready", os.environ["_HANDLER"], flush=True)
while True:
    with urllib.request.urlopen(API + "/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    key = event["Records"][0]["s3"]["object"]["key"]
    if "fail" in key:
        body, path = {{"errorMessage": "no " + key, "errorType": "Custom.Failed"}}, "/error"
    else:
        body, path = {{"handled": key, "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"]}}, "/response"
    urllib.request.urlopen(urllib.request.Request(
        API + "/invocation/" + request_id + path, json.dumps(body).encode(), method="POST")).read()
"""


def custom_runtime(tmp_path: Path, *extra: str) -> Path:
    import sys

    ws = workspace(
        tmp_path,
        {"bootstrap": BOOTSTRAP.format(python=sys.executable)},
        runtime="provided.al2023",
        handler="function.handler",
    )
    os.chmod(ws / "functions/fn/bootstrap", 0o755)
    for name in extra:
        (ws / "functions/fn" / name).write_text("")
    return ws


def test_a_custom_runtime_bootstrap_answers_and_fails_through_the_runtime_api(
    tmp_path: Path,
) -> None:
    ws = custom_runtime(tmp_path)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/ok.txt")
        log.wait_for(log.named("invoke.report"))
        drop(ws / "buckets/uploads/fail.txt")
        log.wait_for(log.named("invoke.report"), count=2)
    (failure,) = log.matching(log.named("invoke.failed"))
    assert (failure["error_type"], failure["error"]) == ("Custom.Failed", "no fail.txt")
    lines = [e["message"] for e in log.events if e["event"] == "function.log"]
    assert "bootstrap ready function.handler" in lines
    assert len(log.matching(log.named("invoke.init_start"))) == 1  # warm for the second
    assert invoke(ws, key="ok.txt") == (True, {"handled": "ok.txt", "version": "$LATEST"})
    assert invoke(ws, key="fail.txt") == (
        False,
        {"errorMessage": "no fail.txt", "errorType": "Custom.Failed"},
    )


def test_a_custom_runtime_init_error_fails_the_invocation_with_its_payload(tmp_path: Path) -> None:
    ws = custom_runtime(tmp_path, "init-fails")
    assert invoke(ws) == (
        False,
        {"errorMessage": "cannot start", "errorType": "Custom.InitFailed"},
    )


def test_a_runtime_that_is_not_installed_is_named(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path, {"handler.py": "def handler(e, c):\n    return 1\n"}, runtime="python3.99"
    )
    ok, payload = invoke(ws)
    assert not ok and payload["errorType"] == "Runtime.Unavailable"
    assert "runtime python3.99 is not installed here" in payload["errorMessage"]


def test_json_log_format_and_level_come_from_the_runtime_client(tmp_path: Path) -> None:
    handler = """
import logging
logger = logging.getLogger()

def handler(event, context):
    logger.debug("not shown at INFO")
    logger.info("hello", extra={"order": 7})
    return 1
"""
    ws = workspace(tmp_path, {"handler.py": handler}, log_format="JSON", log_level="INFO")

    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report"))
    events = log.events
    logged = [json.loads(e["message"]) for e in events if e["event"] == "function.log"]
    (hello,) = [entry for entry in logged if entry.get("message") == "hello"]
    start = next(e for e in events if e["event"] == "invoke.start")
    assert hello["level"] == "INFO" and hello["logger"] == "root" and hello["order"] == 7
    assert hello["requestId"] == start["request_id"]
    assert not [entry for entry in logged if entry.get("message") == "not shown at INFO"]


def test_a_log_level_without_json_format_is_refused_as_lambda_refuses_it(tmp_path: Path) -> None:
    from simulator.errors import ConfigError
    from simulator.store import config_source
    from simulator.store.versions import VersionStore

    ws = workspace(
        tmp_path, {"handler.py": ""}, log_level="DEBUG", runtime="ruby3.3", layers=["../outside"]
    )
    with pytest.raises(ConfigError) as info:
        config_source.read(ws / "config.yaml", VersionStore(ws / "versions"))
    problems = sorted(str(p) for p in info.value.problems)
    assert problems == [
        "functions.fn.layers[0]: must be a relative folder inside the workspace, got '../outside'",
        "functions.fn.log_level: an application log level can only be set with log_format: JSON "
        "(as in Lambda)",
        "functions.fn.runtime: runtime must be python3.X, provided.al2023 or provided.al2, "
        "got 'ruby3.3'",
    ]


@pytest.mark.skipif(not LAMBDA_PATHS, reason="no mount namespaces on this machine: host paths")
def test_code_and_layers_appear_at_lambdas_paths(tmp_path: Path) -> None:
    handler = """
import os, sys, shared, other

def handler(event, context):
    if "fail" in event["Records"][0]["s3"]["object"]["key"]:
        raise ValueError("boom")
    return {"cwd": os.getcwd(), "root": os.environ["LAMBDA_TASK_ROOT"],
            "runtime": os.environ["LAMBDA_RUNTIME_DIR"], "shared": shared.__file__,
            "other": other.VALUE, "host_var": os.path.isdir("/var/tmp") or os.path.islink("/var/run")}
"""
    ws = workspace(tmp_path, {"handler.py": handler}, layers=["layers/one", "layers/two"])
    for name, value in (("one", "first"), ("two", "second")):
        (ws / "layers" / name / "python").mkdir(parents=True)
        (ws / "layers" / name / "python/other.py").write_text(f"VALUE = {value!r}\n")
    (ws / "layers/one/python/shared.py").write_text("")
    assert invoke(ws) == (
        True,
        {
            "cwd": "/var/task",
            "root": "/var/task",
            "runtime": "/var/runtime",
            "shared": "/opt/python/shared.py",
            "other": "second",  # the later layer wins, as when Lambda extracts them into /opt
            "host_var": True,  # the host's own /var entries stay
        },
    )
    ok, payload = invoke(ws, key="fail.txt")
    assert not ok
    assert payload["stackTrace"][0].startswith('  File "/var/task/handler.py", line 6, in handler')


def test_the_demo_thumbnailer_reads_through_the_s3_api_and_its_output_fires_the_auditor(
    demo: Path,
) -> None:
    """The demo as a new user meets it: a photo dropped into uploads/photos/ runs
    thumbnailer $LATEST, which reads it with boto3 and writes a thumbnail into the
    thumbnails bucket, whose own rule runs the auditor."""
    import boto3  # type: ignore[import-untyped]

    for bucket in ("uploads/photos", "thumbnails"):
        (demo / "buckets" / bucket).mkdir(parents=True, exist_ok=True)
    with running(demo) as (_, log):
        drop(demo / "buckets/uploads/photos/red flower.jpg", "pixels")
        log.wait_for(log.named("invoke.report", function="auditor"))
    (report,) = log.matching(log.named("invoke.report", function="thumbnailer"))
    assert report["status"] == "success" and report["version"] == "$LATEST"
    thumbnail = demo / "buckets/thumbnails/photos/red flower.jpg.txt"
    assert thumbnail.read_text() == (
        "thumbnail 128px of s3://uploads/photos/red flower.jpg (6 bytes)\n"
    )
    audited = [e["message"] for e in log.matching(log.named("function.log", function="auditor"))]
    assert any("ObjectCreated:Put s3://thumbnails/photos/red flower.jpg.txt" in m for m in audited)
    lines = [e["message"] for e in log.matching(log.named("function.log", function="thumbnailer"))]
    assert f"cold start: thumbnailer loading, size 128, boto3 {boto3.__version__}" in lines


POWERTOOLS = """
import os
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="thumbs")
tracer = Tracer(service="thumbs")
metrics = Metrics(namespace="S3sim", service="thumbs")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event, context):
    logger.info("processing")
    metrics.add_metric(name="Thumbnails", unit=MetricUnit.Count, value=1)
    return "ok"
"""


def test_powertools_logger_tracer_and_metrics_run_without_warnings(tmp_path: Path) -> None:
    """Powertools (from a layer, as teams ship it) sees a Lambda: a trace header for the
    Tracer and the Logger's xray_trace_id, the context for the Logger, stdout for metrics."""
    from simulator.lambdas import runtimes

    ws = workspace(tmp_path, {"handler.py": POWERTOOLS}, layers=["layers/powertools"])
    runtime = {d.metadata["Name"] for d in runtimes.bundled_distributions()}
    shipped = [
        d
        for d in runtimes.bundled_distributions(("aws-lambda-powertools", "aws-xray-sdk"))
        if d.metadata["Name"] not in runtime
    ]
    runtimes.link_distributions(ws / "layers/powertools/python", shipped)
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (report,) = log.wait_for(log.named("invoke.report"))
    assert report["status"] == "success"
    lines = [e["message"] for e in log.events if e["event"] == "function.log"]
    assert not [line for line in lines if "warn" in line.lower()], lines
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    (processing,) = [e for e in entries if e.get("message") == "processing"]
    assert processing["function_request_id"] == report["request_id"]
    assert processing["cold_start"] is True and processing["function_name"] == "fn"
    assert processing["xray_trace_id"].startswith("1-")
    (emf,) = [e for e in entries if "_aws" in e]
    assert emf["Thumbnails"] == [1.0] and emf["service"] == "thumbs"


def test_stopping_an_environment_twice_closes_each_descriptor_once(tmp_path: Path) -> None:
    """A crash stops the environment, then the pool stops it again: the second stop once
    closed the output pipes' numbers again, by then reused by someone else's file."""
    from simulator.lambdas.environment import launch_blank
    from simulator.lambdas.runtime_api import RuntimeApi
    from simulator.lambdas.runtimes import Runtimes

    api = RuntimeApi()
    try:
        blank = launch_blank(Runtimes(tmp_path / "runtimes").default(), api)
        fds = [blank.output_fd, blank.telemetry_fd]
        blank.discard()
        files = [open(tmp_path / f"reused{i}", "wb") for i in range(8)]
        try:  # the numbers just freed are taken again by these files
            blank.discard()
            for f in files:
                f.write(b"still open")
        finally:
            for f in files:
                f.close()
        assert all((tmp_path / f"reused{i}").read_bytes() == b"still open" for i in range(8))
        assert all(fd is not None for fd in fds)
    finally:
        api.shutdown()
