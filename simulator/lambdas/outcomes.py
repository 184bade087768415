"""Final outcomes of asynchronous invocations: dead letters and destination records."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from simulator.core import destinations, lambda_errors, lineage
from simulator.core.arn import FunctionArn
from simulator.core.config import AsyncConfig, Destination
from simulator.errors import ArnError
from simulator.lambdas.invoker import Invocation
from simulator.store import files
from simulator.store.journal import Delivery, NewDelivery

log = structlog.get_logger("s3sim")


class Outcomes:
    """Used by the scheduler thread only."""

    def __init__(self, buckets_dir: Path, clock: Callable[[], float]) -> None:
        self._buckets_dir, self._clock = buckets_dir, clock
        self.dead_lettered = 0
        self._pending: list[tuple[str, str, dict[str, Any]]] = []

    def log(self, level: str, event: str, **fields: Any) -> None:
        """Held until `flush`: a line saying an outcome happened follows its commit."""
        self._pending.append((level, event, fields))

    def take_lines(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The lines held so far, to be emitted once their outcomes are committed."""
        pending, self._pending = self._pending, []
        return pending

    @staticmethod
    def emit(lines: list[tuple[str, str, dict[str, Any]]]) -> None:
        for level, event, fields in lines:
            getattr(log, level)(event, **fields)

    def succeeded(
        self,
        cfg: AsyncConfig,
        d: Delivery,
        inv: Invocation,
        attempts: int,
        follow_ups: list[NewDelivery],
    ) -> None:
        if cfg.on_success is not None:
            body = self._record(d, inv, "Success", attempts, inv.result.payload)
            self._send(cfg.on_success, d, body, follow_ups)

    def dead(
        self,
        cfg: AsyncConfig | None,
        d: Delivery,
        inv: Invocation,
        condition: str,
        attempts: int,
        follow_ups: list[NewDelivery],
    ) -> None:
        self.dead_lettered += 1
        self.log(
            "error",
            "event.dead_lettered",
            request_id=d.request_id,
            function=d.function,
            condition=condition,
            attempts=attempts,
            bucket=d.bucket,
            key=d.key,
            error_type=inv.result.error_type,
            delivery_id=d.id,
        )
        if cfg is not None and cfg.on_failure is not None:
            status = 429 if inv.result.error_type == lambda_errors.THROTTLED else 200
            body = self._record(d, inv, condition, attempts, inv.result.payload, status)
            self._send(cfg.on_failure, d, body, follow_ups)

    def _record(
        self,
        d: Delivery,
        inv: Invocation,
        condition: str,
        attempts: int,
        payload: Any,
        status: int = 200,
    ) -> dict[str, Any]:
        return destinations.record(
            request_id=d.request_id,
            function_arn=destinations.qualified_arn(d.target),
            condition=condition,
            attempts=attempts,
            event=d.payload,
            executed_version=inv.version,
            response_payload=payload,
            time_ms=int(self._clock() * 1000),
            status_code=status,
        )

    def _send(
        self, dest: Destination, d: Delivery, body: dict[str, Any], follow_ups: list[NewDelivery]
    ) -> None:
        if dest.kind == "bucket":
            key = destinations.bucket_key(d.function, d.request_id, int(self._clock() * 1000))
            try:
                write_object(self._buckets_dir / dest.target, key, body)
            except OSError as exc:
                self.log(
                    "error",
                    "destination.failed",
                    request_id=d.request_id,
                    bucket=dest.target,
                    key=key,
                    error=str(exc),
                )
                return
            self.log(
                "info",
                "destination.written",
                request_id=d.request_id,
                function=d.function,
                bucket=dest.target,
                key=key,
                condition=body["requestContext"]["condition"],
            )
            return
        try:
            target = FunctionArn.parse(dest.target)
        except ArnError:
            return
        # The destination's invocation continues the chain of the one that produced it.
        chain = lineage.step(d.lineage, str(FunctionArn.parse(d.target).unqualified)).lineage
        follow_ups.append(
            NewDelivery(
                str(uuid.uuid4()),
                str(target),
                target.function,
                "",
                "",
                body,
                self._clock(),
                lineage=chain,
            )
        )
        self.log(
            "info",
            "destination.invoked",
            request_id=d.request_id,
            function=d.function,
            target=str(target),
            condition=body["requestContext"]["condition"],
        )


def write_object(bucket_dir: Path, key: str, body: Any) -> Path:
    """Write a JSON object atomically (temp dotfile + rename), so the watcher sees it whole."""
    path = bucket_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(path, json.dumps(body, indent=2) + "\n")
    return path
