"""The workloads, each run against the simulator and (for latency and burst) the floor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from benchmarks.harness import (
    ARN,
    HANDLER,
    ROOT,
    Simulator,
    make_workspace,
    read_entries,
    scratch,
    summary_ms,
    wait_entries,
    write_file,
)
from simulator.lambdas.runtimes import Runtimes

PAYLOAD = b"x" * 1024


class Pipeline(Protocol):
    bucket: Path
    entries: Path

    def stop(self) -> None: ...


class SimulatorPipeline:
    def __init__(self, root: Path, **workspace: Any) -> None:
        self.ws = make_workspace(root, **workspace)
        self.bucket = self.ws / "buckets" / "bench"
        self.entries = root / "entries.tsv"
        self.sim = Simulator(self.ws)
        self.ready_s = self.sim.start().ready_s

    def stop(self) -> None:
        self.sim.stop()


class FloorPipeline:
    """One of the floors of benchmarks/floor.py: `ric` (the runtime client over a minimal
    Runtime API, what the simulator is measured against) or `pipe` (a worker over a pipe)."""

    def __init__(self, root: Path, kind: str = "ric") -> None:
        self.bucket = root / "floor-bucket"
        self.bucket.mkdir(parents=True)
        self.entries = root / "floor-entries.tsv"
        code = root / "floor-code"
        code.mkdir()
        handler = code / "floor_handler.py"
        handler.write_text(HANDLER)
        args = [str(self.bucket), str(handler)]
        if kind == "ric":
            runtime = Runtimes(root / "floor-runtimes").default()
            assert runtime.interpreter is not None and runtime.packages is not None
            args += [runtime.interpreter, str(runtime.packages)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.floor", kind, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT), "OUT": str(self.entries)},
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == b"ready"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def warm_up(p: Pipeline, count: int = 4) -> None:
    """Start the environments before measuring (the latency workload is about warm ones)."""
    (p.bucket / "warmup").mkdir(exist_ok=True)
    for i in range(count):
        write_file(p.bucket / "warmup" / f"w{i}.dat", PAYLOAD)
    wait_entries(p.entries, count, 60)


def latency(p: Pipeline, count: int, interval_s: float = 0.02) -> dict[str, Any]:
    warm_up(p)
    (p.bucket / "lat").mkdir()
    closes: dict[str, int] = {}
    next_at = time.monotonic()
    for i in range(count):
        key = f"lat/l{i:05d}.dat"
        closes[key] = write_file(p.bucket / key, PAYLOAD)
        next_at += interval_s
        time.sleep(max(0.0, next_at - time.monotonic()))  # the load generator's pacing
    entries = wait_entries(p.entries, count + 4, 60)
    lat = [entries[k][0] - c for k, c in closes.items() if k in entries]
    return {**summary_ms(lat), "lost": count - len(lat)}


def burst(p: Pipeline, count: int, nested: bool) -> dict[str, Any]:
    warm_up(p)
    folders = [p.bucket / "burst" / (f"d{i:03d}" if nested else "") for i in range(100)]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for i, folder in enumerate(folders[: 100 if nested else 1]):  # every folder is watched
        write_file(folder / f"probe{i}.dat", PAYLOAD)
    wait_entries(p.entries, 4 + (100 if nested else 1), 60)
    closes: dict[str, int] = {}
    for i in range(count):
        folder = folders[i % 100] if nested else folders[0]
        path = folder / f"b{i:06d}.dat"
        closes[path.relative_to(p.bucket).as_posix()] = write_file(path, PAYLOAD)
    written_s = (max(closes.values()) - min(closes.values())) / 1e9
    entries = wait_entries(p.entries, count + 4 + (100 if nested else 1), 300)
    got = [(entries[k][0], c) for k, c in closes.items() if k in entries]
    span_s = (max(e for e, _ in got) - min(closes.values())) / 1e9 if got else float("nan")
    return {
        "events_per_s": round(len(got) / span_s, 1) if got else 0.0,
        "writer_files_per_s": round(count / written_s, 1) if written_s else 0.0,
        "latency_ms": summary_ms([e - c for e, c in got]),
        "lost": count - len(got),
    }


def slow_handlers(count: int, concurrency: int, env: dict[str, str]) -> dict[str, Any]:
    with scratch() as root:
        p = SimulatorPipeline(root, concurrency=concurrency, env=env)
        try:
            result = burst(p, count, nested=False)
        finally:
            p.stop()
    return result


def with_simulator(fn: Any, *args: Any, **workspace: Any) -> tuple[dict[str, Any], float, float]:
    """Run a workload; also returns the simulator's peak RSS and an idle worker's RSS (MB)."""
    with scratch() as root:
        p = SimulatorPipeline(root, **workspace)
        try:
            result = fn(p, *args)
            peak = p.sim.peak_rss_mb()
            workers = p.sim.worker_rss_mb()
        finally:
            p.stop()
    return result, peak, (max(workers) if workers else float("nan"))  # spares are smaller


def with_floor(fn: Any, *args: Any, kind: str = "ric") -> dict[str, Any]:
    with scratch() as root:
        p = FloorPipeline(root, kind)
        try:
            return fn(p, *args)  # type: ignore[no-any-return]
        finally:
            p.stop()


def cold_starts(count: int) -> dict[str, Any]:
    """First invocation of each newly published version (alias moved to it while running)."""
    from simulator.cli import main as cli

    with scratch() as root:
        p = SimulatorPipeline(root)
        ws = p.ws
        lat, init = [], []
        try:
            warm_up(p, 1)
            for i in range(count):
                (ws / "functions/fn0/handler.py").write_text(HANDLER + f"\nVERSION_MARK = {i}\n")
                with open(os.devnull, "w") as sink:
                    stdout, sys.stdout = sys.stdout, sink
                    try:
                        cli(["-w", str(ws), "publish", "fn0"])
                        cli(["-w", str(ws), "alias", "set", "fn0", "live", str(i + 1)])
                    finally:
                        sys.stdout = stdout
                p.sim.wait_for(_alias_moved_to(str(i + 1)))
                key = f"cold{i}.dat"
                closed = write_file(p.bucket / key, PAYLOAD)
                entries = wait_entries(p.entries, 2 + i, 60)
                lat.append(entries[key][0] - closed)
                (report,) = p.sim.wait_for(_report_of(str(i + 1)))
                init.append(int(report.get("init_ms", 0) * 1e6))
        finally:
            p.stop()
    return {"close_to_handler_ms": summary_ms(lat), "init_duration_ms": summary_ms(init)}


def alias_repoint(rounds: int) -> dict[str, Any]:
    """config.yaml saved with the alias moved -> first handler entry running the new version."""
    with scratch() as root:
        p = SimulatorPipeline(root)
        ws = p.ws
        from simulator.cli import main as cli

        results = []
        try:
            with open(os.devnull, "w") as sink:
                stdout, sys.stdout = sys.stdout, sink
                try:
                    for i in range(2):
                        (ws / "functions/fn0/handler.py").write_text(HANDLER + f"\nMARK = {i}\n")
                        cli(["-w", str(ws), "publish", "fn0"])
                finally:
                    sys.stdout = stdout
            raw = yaml.safe_load((ws / "config.yaml").read_text())
            fn = raw["functions"]["fn0"]
            fn["aliases"] = {"live": 1, "warm": {"version": 1, "weights": {2: 0.5}}}
            raw["buckets"]["bench"]["notifications"] = [
                {
                    "id": "main",
                    "events": ["s3:ObjectCreated:*"],
                    "prefix": "main/",
                    "function": "arn:aws:lambda:us-east-1:123456789012:function:fn0:live",
                },
                {
                    "id": "warm",
                    "events": ["s3:ObjectCreated:*"],
                    "prefix": "warm/",
                    "function": "arn:aws:lambda:us-east-1:123456789012:function:fn0:warm",
                },
            ]
            _save(ws, raw)
            p.sim.wait_for(lambda e: e.get("event") == "config.reloaded")
            (p.bucket / "warm").mkdir()
            (p.bucket / "main").mkdir()
            for i in range(16):  # both versions warm, so the repoint measures routing only
                write_file(p.bucket / "warm" / f"w{i}.dat", PAYLOAD)
            wait_entries(p.entries, 16, 60)
            for r in range(rounds):
                target = 2 if r % 2 == 0 else 1
                fn["aliases"]["live"] = target
                saved = _save(ws, raw)
                n = 0
                while True:
                    key = f"main/r{r}-{n}.dat"
                    write_file(p.bucket / key, PAYLOAD)
                    entries = wait_entries(p.entries, 0, 0)
                    hit = entries.get(key)
                    deadline = time.monotonic() + 2
                    while hit is None and time.monotonic() < deadline:
                        time.sleep(0.001)
                        hit = read_entries(p.entries).get(key)
                    if hit is not None and hit[1] == str(target):
                        results.append(hit[0] - saved)
                        break
                    n += 1
        finally:
            p.stop()
    return summary_ms(results)


def _save(ws: Path, raw: dict[str, Any]) -> int:
    tmp = ws / ".config.yaml.tmp"
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
    os.replace(tmp, ws / "config.yaml")
    return time.monotonic_ns()


def startup(objects: int, changed: int) -> dict[str, Any]:
    """Start-up on a bucket of existing objects, then catch-up after changes while stopped."""
    with scratch() as root:
        ws = make_workspace(root)
        bucket = ws / "buckets" / "bench"
        for d in range(1000):
            folder = bucket / f"d{d:04d}"
            folder.mkdir()
            for i in range(objects // 1000):
                write_file(folder / f"o{i:04d}.dat", PAYLOAD)
        sim = Simulator(ws)
        ready_s = sim.start(wait_event="simulator.ready").ready_s
        (scanned,) = sim.wait_for(lambda e: e.get("event") == "watch.rescanned")
        scan_done_s = (time.monotonic_ns() - sim.started_ns) / 1e9
        sim.stop()
        per_dir = max(1, changed // 1000)
        for d in range(1000):
            for i in range(per_dir):
                write_file(bucket / f"d{d:04d}" / f"o{i:04d}.dat", PAYLOAD + b"changed")
        sim = Simulator(ws)
        restart_ready_s = sim.start(wait_event="simulator.ready").ready_s
        started = sim.started_ns
        entries = wait_entries(root / "entries.tsv", per_dir * 1000, 600)
        catch_up_s = (max(e for e, _ in entries.values()) - started) / 1e9 if entries else 0
        sim.stop()
    return {
        "objects": objects,
        "ready_s": round(ready_s, 3),
        "first_scan_done_s": round(scan_done_s, 3),
        "first_scan_ms_reported": scanned.get("duration_ms"),
        "changed": per_dir * 1000,
        "restart_ready_s": round(restart_ready_s, 3),
        "catch_up_all_handled_s": round(catch_up_s, 3),
        "handled": len(entries),
    }


def _alias_moved_to(version: str) -> Callable[[dict[str, Any]], bool]:
    def moved(e: dict[str, Any]) -> bool:
        changes = e.get("changes", [])
        return e.get("event") == "config.reloaded" and any(
            "live: " in c and f"-> {version}" in c for c in changes
        )

    return moved


def _report_of(version: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == "invoke.report" and e.get("version") == version


def validate_rules(count: int) -> dict[str, Any]:
    """Validation of one bucket with `count` non-overlapping rules (distinct prefixes): the
    model alone (config_parse.parse) and the whole read of config.yaml (YAML included)."""
    from simulator.core import config_parse
    from simulator.store import config_source
    from simulator.store.versions import VersionStore

    notes = [
        {
            "id": f"r{i}",
            "events": ["s3:ObjectCreated:*"],
            "prefix": f"p{i:06d}/",
            "suffix": ".jpg",
            "function": f"{ARN}:fn:live",
        }
        for i in range(count)
    ]
    raw = {
        "region": "us-east-1",
        "account": "123456789012",
        "functions": {"fn": {"handler": "handler.handler", "aliases": {"live": "$LATEST"}}},
        "buckets": {"bench": {"notifications": notes}},
    }
    with scratch() as root:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # writing it is not measured
        (root / "config.yaml").write_text(yaml.dump(raw, Dumper=dumper, sort_keys=False))
        started = time.perf_counter()
        config_parse.parse(raw)
        model_s = time.perf_counter() - started
        started = time.perf_counter()
        config_source.read(root / "config.yaml", VersionStore(root / "versions"))
        read_s = time.perf_counter() - started
    return {"rules": count, "parse_s": round(model_s, 3), "read_s": round(read_s, 3)}
