"""Real workspaces in tmp_path, a running simulator, and waiting on its log events."""

from __future__ import annotations

import io
import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from simulator.runtime import Runtime

ARN = "arn:aws:lambda:us-east-1:123456789012:function"

RECORDING_HANDLER = """
import json, os, sys, time
from urllib.parse import unquote_plus

OUT = os.environ["OUT"]
COUNT = 0
print("init", os.environ["AWS_LAMBDA_FUNCTION_VERSION"])


def handler(event, context):
    global COUNT
    COUNT += 1
    key = unquote_plus(event["Records"][0]["s3"]["object"]["key"]) if "Records" in event else ""
    record = {
        "event": event, "count": COUNT, "pid": os.getpid(), "cwd": os.getcwd(),
        "tag": TAG,
        "context": {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "identity": type(context.identity).__name__,
            "client_context": context.client_context,
        },
        "env": dict(os.environ),
        "tmp_marker": os.path.exists(os.path.join(os.environ["TMPDIR"], "marker")),
    }
    name = f"{context.aws_request_id}-{COUNT}-{os.getpid()}.json"
    with open(os.path.join(OUT, "." + name), "w") as f:
        json.dump(record, f)
    os.replace(os.path.join(OUT, "." + name), os.path.join(OUT, name))
    open(os.path.join(os.environ["TMPDIR"], "marker"), "w").close()
    if "fail" in key:
        raise ValueError(f"failing on purpose: {key}")
    if "sleep" in key:
        time.sleep(30)
    if "exit" in key:
        os._exit(3)
    print(f"handled {key}")
    return {"key": key, "tag": TAG}
"""


def handler_source(tag: str = "v1") -> str:
    return f"TAG = {tag!r}\n" + RECORDING_HANDLER


class EventLog(io.TextIOBase):
    """A console stream that parses the simulator's JSON lines and lets tests wait on them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._partial = ""

    def write(self, text: str) -> int:
        with self._cond:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            self.events += [json.loads(line) for line in lines if line.strip()]
            self._cond.notify_all()
        return len(text)

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if predicate(e)]

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if predicate(e)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [e.get("event") for e in self.events[-30:]]
                    raise AssertionError(
                        f"waited {timeout}s for {count} events, got "
                        f"{len(found)}; last events: {names}"
                    )
                self._cond.wait(remaining)

    def named(self, name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items())


def write_config(root: Path, config: dict[str, Any]) -> None:
    text = yaml.safe_dump(config, sort_keys=False)
    tmp = root / ".config.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(root / "config.yaml")


def make_workspace(
    root: Path, config: dict[str, Any], functions: dict[str, dict[str, str]]
) -> Path:
    for name, files in functions.items():
        for rel, code in files.items():
            path = root / "functions" / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(code))
    (root / "buckets").mkdir(parents=True, exist_ok=True)
    write_config(root, config)
    return root


def simple_config(
    out: Path, aliases: dict[str, Any] | None = None, target: str = "fn:live", **function: Any
) -> dict[str, Any]:
    fn: dict[str, Any] = {
        "handler": "handler.handler",
        "timeout": 3,
        "environment": {"OUT": str(out)},
        "retries": 2,
        "on_failure": {"bucket": "failed"},
        "aliases": aliases if aliases is not None else {"live": "$LATEST"},
    }
    fn.update(function)
    return {
        "region": "us-east-1",
        "account": "123456789012",
        "simulator": {"time_scale": 0.002, "settle_ms": 50, "seed": 1},
        "functions": {"fn": fn},
        "buckets": {
            "uploads": {
                "notifications": [
                    {
                        "id": "created",
                        "events": ["s3:ObjectCreated:*"],
                        "function": f"{ARN}:{target}",
                    },
                    {
                        "id": "removed",
                        "events": ["s3:ObjectRemoved:*"],
                        "function": f"{ARN}:{target}",
                    },
                ]
            },
            "failed": {},
        },
    }


def results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


@contextmanager
def running(root: Path) -> Iterator[tuple[Runtime, EventLog]]:
    """An in-process simulator with its supervisor loop on a thread of the test's, stopped
    (supervisor first, then every part) when the block ends, passed or failed."""
    log = EventLog()
    runtime = Runtime(root, console=log, console_json=True)
    runtime.start()  # returns once `simulator.ready` is logged, as a user would wait for it
    stop = threading.Event()
    supervisor = threading.Thread(target=runtime.supervise, args=(stop,), name="supervisor")
    supervisor.start()
    try:
        log.wait_for(log.named("simulator.ready"))
        yield runtime, log
    finally:
        stop.set()
        supervisor.join(30)
        runtime.stop()


def drop(path: Path, data: bytes | str = b"data") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def aws(ws: Path, *args: str) -> str:
    """The aws CLI (installed with the test dependencies), pointed at the running simulator
    by `s3sim env` alone: no --endpoint-url, as a user would run it."""
    import os
    import subprocess
    import sys

    from simulator import commands

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for line in commands.env(ws).splitlines():
        name, value = line.removeprefix("export ").split("=", 1)
        env[name] = value.strip("'")
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("aws")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
