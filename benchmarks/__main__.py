"""`python -m benchmarks [--quick] [--out FILE]`: the benchmark suite (not a test).

Builds temporary workspaces (on tmpfs where available), runs the real simulator as a user
would (a separate `s3sim run` process, real folders), and measures the same workloads on a
minimal watchdog -> queue -> warm worker pipeline (the floor) in the same run. Prints a table
and writes JSON (default benchmarks/results/latest.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks import scenarios as sc


def run(quick: bool) -> dict[str, Any]:
    n_lat, n_burst = (100, 3000) if quick else (300, 10000)
    results: dict[str, Any] = {"quick": quick, "machine": platform.platform()}
    t0 = time.monotonic()
    results["floor_latency"] = sc.with_floor(sc.latency, n_lat)
    results["latency"], _, idle_worker = sc.with_simulator(sc.latency, n_lat)
    results["idle_worker_rss_mb"] = round(idle_worker, 1)
    results["floor_burst_flat"] = sc.with_floor(sc.burst, n_burst, False)
    results["burst_flat"], peak, _ = sc.with_simulator(sc.burst, n_burst, False)
    results["simulator_peak_rss_mb"] = round(peak, 1)
    results["floor_burst_nested"] = sc.with_floor(sc.burst, n_burst, True)
    results["burst_nested"], _, _ = sc.with_simulator(sc.burst, n_burst, True)
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


def table(r: dict[str, Any]) -> str:
    rows = [("measure", "simulator", "floor", "ratio", "target", "verdict")]

    def add(name: str, value: float, floor: float | None, target: str, ok: bool) -> None:
        ratio = f"{value / floor:.2f}x" if floor else "-"
        rows.append(
            (
                name,
                f"{value:g}",
                f"{floor:g}" if floor else "-",
                ratio,
                target,
                "meets" if ok else "MISSES",
            )
        )

    lat, flat = r["latency"], r["floor_latency"]
    add("latency p50 ms", lat["p50"], flat["p50"], "<= 2x floor", lat["p50"] <= 2 * flat["p50"])
    add("latency p99 ms", lat["p99"], flat["p99"], "< 5 ms", lat["p99"] < 5)
    for shape in ("flat", "nested"):
        b, fb = r[f"burst_{shape}"], r[f"floor_burst_{shape}"]
        add(
            f"burst {shape} events/s",
            b["events_per_s"],
            fb["events_per_s"],
            ">= 50% floor",
            b["events_per_s"] >= 0.5 * fb["events_per_s"] and b["lost"] == 0,
        )
        add(f"burst {shape} p99 ms", b["latency_ms"]["p99"], fb["latency_ms"]["p99"], "-", True)
    cold = r["cold_start"]["close_to_handler_ms"]
    add("cold start p50 ms", cold["p50"], None, "< 40 ms", cold["p50"] < 40)
    add("init duration p50 ms", r["cold_start"]["init_duration_ms"]["p50"], None, "-", True)
    add(
        "alias repoint p50 ms",
        r["alias_repoint_ms"]["p50"],
        None,
        "< 100 ms",
        r["alias_repoint_ms"]["max"] < 100,
    )
    st = r["startup"]
    add(
        f"start-up, {st['objects']} objects, s",
        st["first_scan_done_s"],
        None,
        "< 5 s",
        st["first_scan_done_s"] < 5,
    )
    add(f"catch-up, {st['changed']} changed, s", st["catch_up_all_handled_s"], None, "-", True)
    v = r["validate_rules"]
    add(
        f"validate {v['rules']:,} rules, config_parse.parse, s",
        v["parse_s"],
        None,
        "< 2 s",
        v["parse_s"] < 2,
    )
    add(f"validate {v['rules']:,} rules, read config.yaml, s", v["read_s"], None, "-", True)
    add(
        "simulator peak RSS MB",
        r["simulator_peak_rss_mb"],
        None,
        "< 100 MB",
        r["simulator_peak_rss_mb"] < 100,
    )
    add("idle warm environment RSS MB", r["idle_worker_rss_mb"], None, "-", True)
    add(
        "I/O-bound 50 ms, c=8, events/s",
        r["io_bound_50ms_c8"]["events_per_s"],
        None,
        "~160/s",
        True,
    )
    add(
        "CPU-bound 10 ms, c=2, events/s",
        r["cpu_bound_10ms_c2"]["events_per_s"],
        None,
        "~160/s",
        True,
    )
    for label, g in r.get("growth_2000_files", {}).items():
        add(f"growth: {label}, events/s", g["events_per_s"], None, "linear", True)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (< 2 minutes)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "latest.json"
    )
    args = parser.parse_args()
    results = run(args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nfull results: {args.out} ({results['elapsed_s']} s)")


if __name__ == "__main__":
    main()
