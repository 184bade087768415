"""The S3 API workloads: PutObject of 1 KiB objects and GetObject of a 1 MiB one, with boto3.

PutObject is timed from boto3's call to its return (the request latency, puts back to back),
and, for puts one every 20 ms, to the entry of the handler its event runs (the write's whole
path). In the same run, alternating with the
simulator's, the request latency is measured on a floor: boto3 against a minimal HTTP server
(`python -m benchmarks.s3_api floor DIR`, a process of its own as the simulator is) that
writes the body to a file and answers 200 (for GetObject, sends the file back). Targets:
request p50 < 5 ms and within 2x of the floor; GetObject > 200 MB/s.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, Simulator, make_workspace, read_entries, scratch, summary_ms
from simulator.core.lambda_env import DUMMY_CREDENTIALS

PAYLOAD = b"x" * 1024
BIG = os.urandom(1 << 20)


def client(endpoint: str) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def puts(
    s3: Any, bucket: str, count: int, prefix: str = "put", first: int = 0
) -> tuple[dict[str, int], list[int]]:
    """Sequential PutObjects into one folder: (key -> call start ns, request durations ns)."""
    started: dict[str, int] = {}
    durations = []
    for i in range(first, first + count):
        key = f"{prefix}/p{i:05d}.dat"
        t0 = time.monotonic_ns()
        s3.put_object(Bucket=bucket, Key=key, Body=PAYLOAD)
        durations.append(time.monotonic_ns() - t0)
        started[key] = t0
    return started, durations


def put_summary(durations: list[int]) -> dict[str, Any]:
    return {
        **summary_ms(durations),
        "puts_per_s": round(len(durations) / (sum(durations) / 1e9), 1),
    }


def run(count: int, gets: int) -> dict[str, Any]:
    """The simulator and the floor side by side, their PutObjects alternating, so both see
    the same load on a shared machine (the simulator's pipeline, which handles each put's
    event meanwhile, included); then GetObject once the simulator is idle."""
    with scratch() as root:
        ws = make_workspace(root)
        (root / "floor").mkdir()
        sim = Simulator(ws)
        sim.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.s3_api", "floor", str(root / "floor")],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert proc.stdout is not None
            floor_s3 = client(proc.stdout.readline().decode().strip())
            s3 = client(json.loads((ws / ".s3sim/endpoints.json").read_text())["s3"])
            for target in (s3, floor_s3):  # connections, environments, imports
                puts(target, "bench", 20, "warmup")
            _wait(root / "entries.tsv", 20)
            started: dict[str, int] = {}
            durations: list[int] = []
            floor_durations: list[int] = []
            for i in range(count):
                more, took = puts(s3, "bench", 1, first=i)
                started.update(more)
                durations += took
                floor_durations += puts(floor_s3, "bench", 1, first=i)[1]
            entries = _wait(root / "entries.tsv", 20 + count)
            lost = count - sum(k in entries for k in started)
            paced = _paced_puts(s3, count // 4)  # one every 20 ms: no queue builds up
            entries = _wait(root / "entries.tsv", 20 + count + len(paced))
            to_handler = [entries[k][0] - t0 for k, t0 in paced.items() if k in entries]
            lost += len(paced) - len(to_handler)
            (ws / "buckets/bench/big.bin").write_bytes(BIG)
            _wait(root / "entries.tsv", 21 + count + len(paced))  # handled: the simulator idles
            mb_per_s = _get_rate(s3, "bench", "big.bin", gets)
            floor_s3.put_object(Bucket="bench", Key="big.bin", Body=BIG)
            floor_mb_per_s = _get_rate(floor_s3, "bench", "big.bin", gets)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            sim.stop()
    return {
        "s3_floor_put": {
            "request_ms": put_summary(floor_durations),
            "get_1mib_mb_per_s": floor_mb_per_s,
        },
        "s3_api": {
            "request_ms": put_summary(durations),
            "put_to_handler_ms": summary_ms(to_handler),
            "lost": lost,
            "get_1mib_mb_per_s": mb_per_s,
        },
    }


def _paced_puts(s3: Any, count: int, interval_s: float = 0.02) -> dict[str, int]:
    """PutObjects at a steady pace, as the file-drop latency workload writes: the time to the
    handler without the queueing that back-to-back puts at full speed build up."""
    started: dict[str, int] = {}
    next_at = time.monotonic()
    for i in range(count):
        started.update(puts(s3, "bench", 1, "paced", first=i)[0])
        next_at += interval_s
        time.sleep(max(0.0, next_at - time.monotonic()))  # the load generator's pacing
    return started


def _get_rate(s3: Any, bucket: str, key: str, count: int) -> float:
    s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # warm
    t0 = time.monotonic_ns()
    for _ in range(count):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert len(body) == len(BIG)
    return round(count * len(BIG) / 1e6 / ((time.monotonic_ns() - t0) / 1e9), 1)


def _wait(path: Path, count: int, timeout_s: float = 120) -> dict[str, tuple[int, str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        entries = read_entries(path) if path.exists() else {}
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.02)  # polling a file the handlers append to: no event to wait on


class _FloorHandler(http.server.BaseHTTPRequestHandler):
    """Writes the body to a file named after the path and answers 200 with its ETag."""

    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects
    root = Path()

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = self.root / hashlib.md5(self.path.encode(), usedforsecurity=False).hexdigest()
        path.write_bytes(body)
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.root / hashlib.md5(self.path.encode(), usedforsecurity=False).hexdigest()
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def floor_main(root: str) -> None:
    _FloorHandler.root = Path(root)
    server = http.server.HTTPServer(("127.0.0.1", 0), _FloorHandler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    floor_main(sys.argv[2])
