"""Parsing of the `simulator:` section of config.yaml (the simulator's own settings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.core.config import Settings
from simulator.core.config_reader import Reader


def parse(r: Reader, raw: Mapping[str, Any]) -> Settings:
    d = Settings()
    known = set(Settings.__dataclass_fields__)
    r.known(raw, known, "simulator")
    scale = float(r.typed(raw.get("time_scale"), float, "simulator.time_scale", d.time_scale))
    if not 0 < scale <= 1:
        r.fail("simulator.time_scale", f"must be in (0, 1], got {scale}")
    catch_up = r.typed(raw.get("catch_up"), str, "simulator.catch_up", d.catch_up)
    if catch_up not in ("fire", "record"):
        r.fail("simulator.catch_up", f"must be 'fire' or 'record', got {catch_up!r}")
    ignore = r.strings(raw.get("ignore"), "simulator.ignore", list(d.ignore))
    watcher = r.typed(raw.get("watcher"), str, "simulator.watcher", d.watcher)
    if watcher not in ("native", "polling"):
        r.fail("simulator.watcher", f"must be 'native' or 'polling', got {watcher!r}")
    throttle = r.typed(raw.get("throttle"), str, "simulator.throttle", d.throttle)
    if throttle not in ("wait", "backoff"):
        r.fail("simulator.throttle", f"must be 'wait' or 'backoff', got {throttle!r}")
    duplicate = float(
        r.typed(
            raw.get("duplicate_fraction"),
            float,
            "simulator.duplicate_fraction",
            d.duplicate_fraction,
        )
    )
    if not 0 <= duplicate <= 1:
        r.fail("simulator.duplicate_fraction", f"must be in [0, 1], got {duplicate}")
    return Settings(
        throttle="backoff" if throttle == "backoff" else "wait",
        keep_alive_s=r.ranged(
            raw.get("keep_alive_s"),
            "simulator.keep_alive_s",
            "keep_alive_s",
            1,
            86400,
            d.keep_alive_s,
        ),
        force_cold_start=r.typed(
            raw.get("force_cold_start"), bool, "simulator.force_cold_start", d.force_cold_start
        ),
        duplicate_fraction=duplicate,
        lambda_api_port=r.ranged(
            raw.get("lambda_api_port"), "simulator.lambda_api_port", "lambda_api_port", 0, 65535, 0
        ),
        s3_api_port=r.ranged(
            raw.get("s3_api_port"), "simulator.s3_api_port", "s3_api_port", 0, 65535, 0
        ),
        spare_runtimes=r.ranged(
            raw.get("spare_runtimes"),
            "simulator.spare_runtimes",
            "spare_runtimes",
            0,
            16,
            d.spare_runtimes,
        ),
        reorder_window_ms=r.ranged(
            raw.get("reorder_window_ms"),
            "simulator.reorder_window_ms",
            "reorder_window_ms",
            0,
            600000,
            d.reorder_window_ms,
        ),
        time_scale=scale,
        concurrency=r.ranged(
            raw.get("concurrency"), "simulator.concurrency", "concurrency", 1, 64, d.concurrency
        ),
        catch_up="record" if catch_up == "record" else "fire",
        ignore=tuple(ignore),
        settle_ms=r.ranged(
            raw.get("settle_ms"), "simulator.settle_ms", "settle_ms", 10, 10000, d.settle_ms
        ),
        watcher="polling" if watcher == "polling" else "native",
        polling_interval_ms=r.ranged(
            raw.get("polling_interval_ms"),
            "simulator.polling_interval_ms",
            "polling_interval_ms",
            50,
            60000,
            d.polling_interval_ms,
        ),
        seed=None
        if raw.get("seed") is None
        else r.typed(raw.get("seed"), int, "simulator.seed", 0),
        log_limit_bytes=r.ranged(
            raw.get("log_limit_bytes"),
            "simulator.log_limit_bytes",
            "log_limit_bytes",
            1024,
            64 * 1024 * 1024,
            d.log_limit_bytes,
        ),
        log_rotate_bytes=r.ranged(
            raw.get("log_rotate_bytes"),
            "simulator.log_rotate_bytes",
            "log_rotate_bytes",
            4096,
            1024 * 1024 * 1024,
            d.log_rotate_bytes,
        ),
        log_keep=r.ranged(
            raw.get("log_keep"), "simulator.log_keep", "log_keep", 1, 100, d.log_keep
        ),
        principal_id=r.typed(
            raw.get("principal_id"), str, "simulator.principal_id", d.principal_id
        ),
        owner_id=r.typed(raw.get("owner_id"), str, "simulator.owner_id", d.owner_id),
        source_ip=r.typed(raw.get("source_ip"), str, "simulator.source_ip", d.source_ip),
        event_version=r.typed(
            raw.get("event_version"), str, "simulator.event_version", d.event_version
        ),
    )
