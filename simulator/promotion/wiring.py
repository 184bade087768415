"""How the composition root connects the shifter to the simulator's parts: alias edits go
through config.yaml (recorded in the alias history, then applied at once), hooks run through
the invoker like any invocation, and every resolved invocation's outcome reaches the shifter."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import structlog

from simulator.core.arn import FunctionArn
from simulator.lambdas.invoker import Invocation, Invoker
from simulator.promotion.shifter import Shifter
from simulator.store import alias_history
from simulator.store.config_source import ConfigSource
from simulator.store.journal import Journal
from simulator.store.versions import VersionStore
from simulator.store.workspace import Workspace

log = structlog.get_logger("s3sim")
LAMBDA_API = "lambda api"


def shifter(
    ws: Workspace, journal: Journal, store: VersionStore, source: ConfigSource, invoker: Invoker
) -> Shifter:
    def edit_alias(
        function: str, alias: str, version: str, weights: dict[str, float], cause: str, detail: str
    ) -> None:
        alias_history.set_alias(
            journal,
            ws.config,
            ws.state / "config-edit.lock",
            store,
            function,
            alias,
            (version, weights),
            cause,
            detail,
        )
        source.reload()  # now, not when the watcher reports the write: the split is exact

    def invoke_hook(name: str, event: dict[str, Any]) -> tuple[bool, str]:
        config = source.current
        arn = FunctionArn.parse(name if name.startswith("arn:") else str(config.function_arn(name)))
        inv = invoker.invoke(config, arn, event, str(uuid.uuid4()), hook=event)
        if inv.result.ok:
            return True, ""
        payload = inv.result.payload
        message = payload.get("errorMessage", "") if isinstance(payload, dict) else payload
        return False, f"{inv.result.error_type}: {message}"

    return Shifter(
        journal, lambda: source.current, edit_alias, invoke_hook, report_folder=ws.state / "shifts"
    )


def observer(target: Shifter) -> Callable[[Invocation], None]:
    def observe(inv: Invocation) -> None:
        try:
            target.observe(
                inv.function, inv.alias, inv.version, inv.result.ok, inv.result.error_type
            )
        except Exception:  # an invocation's result must not be lost to the bookkeeping
            log.exception("shift.observe_failed", function=inv.function, version=inv.version)

    return observe


def api_alias_edit(
    ws: Workspace,
    journal: Journal,
    store: VersionStore,
    function: str,
    alias: str,
    version: str,
    weights: dict[int, float],
) -> None:
    """The Lambda API's alias writes, recorded with their cause."""
    alias_history.ensure_schema(journal)
    alias_history.set_alias(
        journal,
        ws.config,
        ws.state / "config-edit.lock",
        store,
        function,
        alias,
        (version, {str(k): w for k, w in weights.items()}),
        LAMBDA_API,
    )
