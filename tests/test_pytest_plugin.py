"""The pytest plugin: the `s3sim` fixture (entry point pytest11) on real simulators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulator.pytest_plugin import Launcher

pytest_plugins = ["pytester"]

ARN = "arn:aws:lambda:us-east-1:123456789012:function"
REPO = Path(__file__).parents[1]

HANDLER = """
import os
from urllib.parse import unquote_plus

TAG = "v1"
print("init", TAG)


def handler(event, context):
    record = event["Records"][0]
    key = unquote_plus(record["s3"]["object"]["key"])
    print("handling", key)
    if key.startswith("fail"):
        raise ValueError(f"failing on purpose: {key}")
    return {"key": key, "tag": TAG, "request_id": context.aws_request_id, "pid": os.getpid()}
"""


def config(retries: int = 2, alias: str = "$LATEST") -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "account": "123456789012",
        "simulator": {"time_scale": 0.002, "settle_ms": 50},
        "functions": {
            "fn": {
                "handler": "handler.handler",
                "timeout": 5,
                "retries": retries,
                "aliases": {"live": alias},
            }
        },
        "buckets": {
            "uploads": {
                "notifications": [
                    {"id": "put", "events": ["s3:ObjectCreated:*"], "function": f"{ARN}:fn:live"},
                    {"id": "del", "events": ["s3:ObjectRemoved:*"], "function": f"{ARN}:fn:live"},
                ]
            }
        },
    }


FILES = {"functions/fn/handler.py": HANDLER}


def test_a_dropped_object_comes_back_as_an_invocation_with_its_event_result_and_logs(
    s3sim: Launcher,
) -> None:
    sim = s3sim.start(config(), FILES)
    sim.put("uploads", "photos/red flower.jpg", b"pixels")
    run = sim.settle()

    inv = run.only(function="fn")
    assert (inv.state, inv.executed_version, inv.alias) == ("done", "$LATEST", "live")
    assert inv.target == f"{ARN}:fn:live"
    assert (inv.bucket, inv.key) == ("uploads", "photos/red flower.jpg")
    record = inv.event["Records"][0]
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["object"]["key"] == "photos/red+flower.jpg"  # as AWS encodes it
    assert record["s3"]["object"]["size"] == 6
    assert inv.result["key"] == "photos/red flower.jpg"
    assert inv.result["request_id"] == inv.request_id  # the context's aws_request_id
    assert inv.error is None
    (attempt,) = inv.attempts
    assert (attempt.ok, attempt.cold, attempt.version) == (True, True, "$LATEST")
    assert attempt.logs == ("init v1", "handling photos/red flower.jpg")
    assert run.dead_letters == ()


def test_deletes_overwrites_and_a_second_settle_report_only_what_is_new(s3sim: Launcher) -> None:
    sim = s3sim.start(config(), FILES)
    sim.put("uploads", "a.txt", "one")
    first = sim.settle()
    sim.put("uploads", "a.txt", "two!")
    sim.delete("uploads", "a.txt")
    second = sim.settle()

    assert [i.event["Records"][0]["eventName"] for i in first.invocations] == ["ObjectCreated:Put"]
    names = [i.event["Records"][0]["eventName"] for i in second.invocations]
    # The overwrite may still be settling when the delete comes: S3 then sees only the delete.
    assert names in (["ObjectCreated:Put", "ObjectRemoved:Delete"], ["ObjectRemoved:Delete"])
    assert all(i.ok for i in second.invocations)
    assert sim.settle().invocations == ()  # nothing new, and idle at once


def test_a_failing_event_is_retried_with_the_same_request_id_then_dead_lettered(
    s3sim: Launcher,
) -> None:
    sim = s3sim.start(config(retries=2), FILES)
    sim.put("uploads", "fail.txt", b"x")
    run = sim.settle()

    (dead,) = run.dead_letters
    assert (dead.state, dead.condition, dead.result) == ("dead", "RetriesExhausted", None)
    assert dead.error is not None
    assert (dead.error.type, dead.error.message) == ("ValueError", "failing on purpose: fail.txt")
    assert dead.error.stack_trace  # awslambdaric's stackTrace lines
    assert [a.status for a in dead.attempts] == ["ValueError"] * 3  # 1 + MaximumRetryAttempts
    assert [a.logs[-1] for a in dead.attempts][-1].startswith("[ERROR] ValueError")
    assert len(run.named("retry.scheduled")) == 2

    sim.write("functions/fn/handler.py", HANDLER.replace('key.startswith("fail")', "False"))
    sim.replay()
    replayed = sim.settle().only(key="fail.txt")
    assert (replayed.ok, replayed.result["key"]) == (True, "fail.txt")
    assert replayed.request_id != dead.request_id  # a replay is a new request
    assert [i.state for i in sim.history().of(key="fail.txt")] == ["replayed", "done"]


def test_publish_and_repoint_an_alias_then_the_next_event_runs_that_version(
    s3sim: Launcher,
) -> None:
    sim = s3sim.start(config(), FILES)
    assert sim.publish("fn") == 1
    sim.write("functions/fn/handler.py", HANDLER.replace('TAG = "v1"', 'TAG = "v2"'))
    assert sim.publish("fn", "second") == 2
    sim.alias("fn", "live", 1)
    sim.put("uploads", "one.txt")
    one = sim.settle().only()
    sim.alias("fn", "live", 2)
    sim.put("uploads", "two.txt")
    run = sim.settle()
    two = run.only()

    assert (one.executed_version, one.result["tag"]) == ("1", "v1")
    assert (two.executed_version, two.result["tag"]) == ("2", "v2")
    (reloaded,) = run.named("config.reloaded")
    assert reloaded["changes"] == ["functions.fn.aliases.live: 1 -> 2"]


def test_a_rejected_config_is_reported_once_and_the_last_good_one_stays_in_force(
    s3sim: Launcher,
) -> None:
    sim = s3sim.start(config(), FILES)
    sim.write("config.yaml", "functions: [this is: not valid\n")  # seen by watcher and sync
    sim.put("uploads", "a.txt")
    run = sim.settle()
    (rejected,) = run.named("config.rejected")
    assert rejected["problems"][0].startswith("config.yaml: line 2, column 1: invalid YAML")
    assert rejected["kept"] == "last good configuration"
    assert run.only().ok


def test_a_copy_of_an_existing_workspace_runs_its_own_functions(s3sim: Launcher) -> None:
    sim = s3sim.start(copy_from=REPO)  # the demo workspace: images/*.jpg -> thumbnailer:prod
    assert not (sim.workspace / ".git").exists() and not (sim.workspace / ".venv").exists()
    sim.put("uploads", "images/cat.jpg", b"meow")
    inv = sim.settle().only(function="thumbnailer")
    assert (inv.alias, inv.executed_version, inv.ok) == ("prod", "1", True)
    assert inv.logs[-1] == "thumbnail 128px of s3://uploads/images/cat.jpg"


def test_teardown_stops_the_simulator_and_its_environments_after_a_failing_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_inner=f"""
        from pathlib import Path

        CONFIG = {config()!r}
        FILES = {FILES!r}

        def test_fails(s3sim):
            sim = s3sim.start(CONFIG, FILES)
            sim.put("uploads", "a.txt")
            handler_pid = sim.settle().only().result["pid"]
            Path("pids").write_text(f"{{sim.pid}} {{handler_pid}}")
            assert False, "failing on purpose"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*failing on purpose*",
            "*- s3sim log of * (last 40 events) -*",
            "*[[]fn:$LATEST *] START RequestId: * Version: $LATEST",
        ]
    )
    pids = [int(p) for p in (pytester.path / "pids").read_text().split()]
    assert [pid for pid in pids if _alive(pid)] == []


def _alive(pid: int) -> bool:
    """Running (a zombie has exited: only its parent's wait is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_readme_example_passes_as_written(pytester: pytest.Pytester) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Testing in CI: the pytest plugin") :]
    example = section[section.index("```python\n") + 10 : section.index("```\n", 10)]
    assert len(example.splitlines()) == 10  # the ten-line example the README promises
    pytester.makepyfile(test_readme=example.replace("path/to/workspace", str(REPO)))
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
