"""How the composition root connects the shifter to the simulator's parts: alias edits go
through config.yaml (recorded in the alias history, then applied at once), hooks run through
the invoker like any invocation, and every resolved invocation's outcome reaches the shifter."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import structlog

from simulator.core.arn import FunctionArn
from simulator.core.config import Config
from simulator.lambdas.invoker import Invocation, Invoker
from simulator.promotion import actions, records
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
        actions.edit(ws, journal, store, function, alias, (version, weights), cause, detail)
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


def _release(journal: Journal, function: str, alias: str, version: str) -> bool:
    """An UpdateAlias is a release (it goes through the alias's deployment preference) when it
    moves the alias to a version published since the alias last changed: PublishVersion
    followed by UpdateAlias. Pointing it back at an older version stays a direct edit."""
    if not version.isdigit():
        return False
    seal = journal.version_seal(function, int(version))
    last = alias_history.last(journal, function, alias)
    return seal is not None and (last is None or seal.first_seen_s > last.at_s)


def api_alias_edit(
    ws: Workspace,
    journal: Journal,
    store: VersionStore,
    config: Config,
    function: str,
    alias: str,
    version: str,
    weights: dict[int, float],
) -> None:
    """The Lambda API's alias writes, recorded with their cause. An UpdateAlias that moves an
    alias with a declared deployment preference to a new version (no routing given) starts
    that deployment, as SAM's AutoPublishAlias does through CodeDeploy."""
    alias_history.ensure_schema(journal)
    records.ensure_schema(journal)
    fn = config.functions.get(function)
    if (
        not weights
        and fn is not None
        and alias in fn.aliases
        and _release(journal, fn.name, alias, version)
    ):
        d = actions.move_alias(ws, journal, store, config, function, alias, version, LAMBDA_API)[1]
        if d is not None:
            log.info("shift.requested", deployment_id=d.id, function=function, alias=alias)
        return
    actions.edit(
        ws,
        journal,
        store,
        function,
        alias,
        (version, {str(k): w for k, w in weights.items()}),
        LAMBDA_API,
    )
