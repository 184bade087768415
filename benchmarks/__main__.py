"""`python -m benchmarks [--quick] [--out FILE] [--before FILE]`: the benchmark suite (not a test).

Builds temporary workspaces (on tmpfs where available), runs the real simulator as a user
would (a separate `s3sim run` process, real folders), and measures the same workloads on two
minimal pipelines in the same run (benchmarks/floor.py): the floor, watchdog -> queue -> AWS's
runtime client over a minimal Runtime API, which the simulator's ratios are taken against;
and the pipe floor, watchdog -> queue -> a warm worker over a pipe, printed beside it so the
cost of running handlers under the runtime client stays visible. Prints a table and writes
JSON (default benchmarks/results/latest.json); `--before` adds the simulator's figures from
an earlier results file (e.g. the previous commit's) as a column.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks import harness, s3_api
from benchmarks import scenarios as sc


def run(quick: bool) -> dict[str, Any]:
    n_lat, n_burst = (100, 3000) if quick else (300, 10000)
    results: dict[str, Any] = {"quick": quick, "machine": platform.platform()}
    t0 = time.monotonic()
    results["floor_latency"] = sc.with_floor(sc.latency, n_lat)
    results["pipe_floor_latency"] = sc.with_floor(sc.latency, n_lat, kind="pipe")
    results["latency"], _, idle_worker = sc.with_simulator(sc.latency, n_lat)
    results["idle_worker_rss_mb"] = round(idle_worker, 1)
    for shape, nested in (("flat", False), ("nested", True)):
        results[f"floor_burst_{shape}"] = sc.with_floor(sc.burst, n_burst, nested)
        results[f"pipe_floor_burst_{shape}"] = sc.with_floor(sc.burst, n_burst, nested, kind="pipe")
        results[f"burst_{shape}"], peak, _ = sc.with_simulator(sc.burst, n_burst, nested)
        if not nested:
            results["simulator_peak_rss_mb"] = round(peak, 1)
    n_slow = 200 if quick else 1000
    results["io_bound_50ms_c8"] = sc.slow_handlers(n_slow, 8, {"SLEEP_S": "0.05"})
    results["cpu_bound_10ms_c2"] = sc.slow_handlers(
        n_slow // 2 if quick else n_slow, 2, {"BURN_S": "0.01"}
    )
    results["cold_start"] = sc.cold_starts(3 if quick else 10)
    results["alias_repoint_ms"] = sc.alias_repoint(4 if quick else 20)
    objects, changed = (20000, 2000) if quick else (100000, 10000)
    results["startup"] = sc.startup(objects, changed)
    results["validate_rules"] = sc.validate_rules(100000)  # the same size in --quick
    results.update(run_s3(quick))
    if not quick:
        growth = {}
        for label, kwargs in (
            ("1 rule", {}),
            ("100 rules", {"rules": 100}),
            ("20 functions", {"functions": 20}),
        ):
            growth[label], _, _ = sc.with_simulator(_spread_burst, 2000, **kwargs)
        results["growth_2000_files"] = growth
    results["elapsed_s"] = round(time.monotonic() - t0, 1)
    return results


def run_s3(quick: bool) -> dict[str, Any]:
    """The S3 API's PutObject (against its floor, in the same run) and GetObject."""
    n_puts, n_gets = (200, 50) if quick else (1000, 200)
    return s3_api.run(n_puts, n_gets)


def _spread_burst(p: Any, count: int) -> dict[str, Any]:
    """A flat burst whose keys spread over p0/..p19/ when there are 20 functions."""
    functions = len(list((p.bucket.parents[1] / "functions").iterdir()))
    if functions == 1:
        return sc.burst(p, count, False)
    sc.warm_up(p, 0)
    closes = {}
    for i in range(count):
        folder = p.bucket / f"p{i % functions}"
        folder.mkdir(exist_ok=True)
        path = folder / f"s{i:06d}.dat"
        closes[path.relative_to(p.bucket).as_posix()] = harness.write_file(path, sc.PAYLOAD)
    entries = harness.wait_entries(p.entries, count, 300)
    span_s = (max(e for e, _ in entries.values()) - min(closes.values())) / 1e9
    return {"events_per_s": round(len(entries) / span_s, 1), "lost": count - len(entries)}


def _get(r: dict[str, Any] | None, *keys: str) -> float | None:
    value: Any = r
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def table(r: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """One row per measure: the simulator, the floor (runtime client over a minimal Runtime
    API) and its ratio to it, the pipe floor and the floor's ratio to that (the cost of the
    runtime client), the simulator's figure in `before` if given, the target and verdict."""
    rows = [
        (
            "measure",
            "simulator",
            "floor",
            "sim/floor",
            "pipe floor",
            "floor/pipe",
            *(("before",) if before is not None else ()),
            "target",
            "verdict",
        )
    ]

    def add(
        name: str,
        keys: tuple[str, ...],
        target: str,
        ok: bool,
        floor: float | None = None,
        pipe: float | None = None,
    ) -> None:
        value = _get(r, *keys)
        rows.append(
            (
                name,
                _num(value),
                _num(floor),
                _ratio(value, floor),
                _num(pipe),
                _ratio(floor, pipe),
                *((_num(_get(before, *keys)),) if before is not None else ()),
                target,
                "meets" if ok else "MISSES",
            )
        )

    if "s3_api" in r:
        _s3_rows(r, add)
    if "latency" not in r:  # --s3-only
        return _render(rows)
    lat, flat, plat = r["latency"], r["floor_latency"], r["pipe_floor_latency"]
    add(
        "latency p50 ms",
        ("latency", "p50"),
        "<= 2x floor",
        lat["p50"] <= 2 * flat["p50"],
        flat["p50"],
        plat["p50"],
    )
    add("latency p99 ms", ("latency", "p99"), "< 5 ms", lat["p99"] < 5, flat["p99"], plat["p99"])
    for shape in ("flat", "nested"):
        b, fb, pb = r[f"burst_{shape}"], r[f"floor_burst_{shape}"], r[f"pipe_floor_burst_{shape}"]
        was = _get(before, f"burst_{shape}", "events_per_s")
        add(
            f"burst {shape} events/s",
            (f"burst_{shape}", "events_per_s"),
            ">= 50% floor" + (", >= before" if was is not None else ""),
            b["events_per_s"] >= 0.5 * fb["events_per_s"]
            and b["lost"] == 0
            and (was is None or b["events_per_s"] >= was),
            fb["events_per_s"],
            pb["events_per_s"],
        )
        add(
            f"burst {shape} p99 ms",
            (f"burst_{shape}", "latency_ms", "p99"),
            "-",
            True,
            fb["latency_ms"]["p99"],
            pb["latency_ms"]["p99"],
        )
    cold = r["cold_start"]["close_to_handler_ms"]
    add(
        "cold start p50 ms",
        ("cold_start", "close_to_handler_ms", "p50"),
        "< 40 ms",
        cold["p50"] < 40,
    )
    add("init duration p50 ms", ("cold_start", "init_duration_ms", "p50"), "-", True)
    add(
        "alias repoint p50 ms",
        ("alias_repoint_ms", "p50"),
        "< 100 ms",
        r["alias_repoint_ms"]["max"] < 100,
    )
    st = r["startup"]
    add(
        f"start-up, {st['objects']} objects, s",
        ("startup", "first_scan_done_s"),
        "< 5 s",
        st["first_scan_done_s"] < 5,
    )
    add(f"catch-up, {st['changed']} changed, s", ("startup", "catch_up_all_handled_s"), "-", True)
    v = r["validate_rules"]
    add(
        f"validate {v['rules']:,} rules, config_parse.parse, s",
        ("validate_rules", "parse_s"),
        "< 2 s",
        v["parse_s"] < 2,
    )
    add(
        f"validate {v['rules']:,} rules, read config.yaml, s",
        ("validate_rules", "read_s"),
        "-",
        True,
    )
    add(
        "simulator peak RSS MB",
        ("simulator_peak_rss_mb",),
        "< 100 MB",
        r["simulator_peak_rss_mb"] < 100,
    )
    add("idle warm environment RSS MB", ("idle_worker_rss_mb",), "-", True)
    add("I/O-bound 50 ms, c=8, events/s", ("io_bound_50ms_c8", "events_per_s"), "~160/s", True)
    add("CPU-bound 10 ms, c=2, events/s", ("cpu_bound_10ms_c2", "events_per_s"), "~160/s", True)
    for label in r.get("growth_2000_files", {}):
        add(
            f"growth: {label}, events/s",
            ("growth_2000_files", label, "events_per_s"),
            "linear",
            True,
        )
    return _render(rows)


def _s3_rows(r: dict[str, Any], add: Any) -> None:
    req, floor = r["s3_api"]["request_ms"], r["s3_floor_put"]["request_ms"]
    add(
        "S3 PutObject 1 KiB request p50 ms",
        ("s3_api", "request_ms", "p50"),
        "< 5 ms, <= 2x floor",
        req["p50"] < 5 and req["p50"] <= 2 * floor["p50"],
        floor["p50"],
    )
    add(
        "S3 PutObject 1 KiB request p99 ms",
        ("s3_api", "request_ms", "p99"),
        "-",
        True,
        floor["p99"],
    )
    add(
        "S3 PutObject 1 KiB puts/s (one client)",
        ("s3_api", "request_ms", "puts_per_s"),
        "-",
        True,
        floor["puts_per_s"],
    )
    for name in ("p50", "p99"):
        add(
            f"S3 PutObject (one per 20 ms) -> handler entry {name} ms",
            ("s3_api", "put_to_handler_ms", name),
            "-",
            True,
        )
    add(
        "S3 GetObject 1 MiB MB/s",
        ("s3_api", "get_1mib_mb_per_s"),
        "> 200 MB/s",
        r["s3_api"]["get_1mib_mb_per_s"] > 200,
        r["s3_floor_put"].get("get_1mib_mb_per_s"),
    )


def _render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a few minutes)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "latest.json"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="an earlier results file (e.g. the previous commit's): its simulator figures "
        "become a column, and burst throughput must not be below them",
    )
    parser.add_argument(
        "--s3-only", action="store_true", help="only the S3 API's PutObject and GetObject workloads"
    )
    args = parser.parse_args()
    before = json.loads(args.before.read_text()) if args.before else None
    if args.s3_only:
        t0 = time.monotonic()
        results = {"quick": args.quick, "machine": platform.platform(), **run_s3(args.quick)}
        results["elapsed_s"] = round(time.monotonic() - t0, 1)
    else:
        results = run(args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results, before))
    print(f"\nfull results: {args.out} ({results['elapsed_s']} s)")


if __name__ == "__main__":
    main()
