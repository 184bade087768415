"""The promotion commands: `promote`, `rollback`, `alias history`, `shift` (request, stop,
report) and the deployments part of `status`. Functions of the workspace returning text.

They work with or without a running simulator: alias edits are config.yaml edits (which a
running simulator applies), a shift is a row in the journal that the running simulator
takes up (or the next `s3sim run` does).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from simulator.core import deployments
from simulator.core.arn import LATEST
from simulator.core.config import Config
from simulator.core.config_parse import hook_function
from simulator.core.deployments import Condition, Deployment, DeploymentType
from simulator.errors import ResourceNotFound, SimulatorError, UsageError
from simulator.promotion import records
from simulator.promotion.shifter import new_deployment_id
from simulator.store import alias_history, config_source
from simulator.store.journal import Journal
from simulator.store.versions import VersionStore
from simulator.store.workspace import Workspace

PROMOTE, ROLLBACK, PUBLISH = "promote", "rollback", "publish --alias"
_CONDITION = re.compile(
    r"(error_rate|errors|timeouts|throttles)>=([0-9.]+%?)(?:/([0-9.]+)m?)?(?:,min=([0-9]+))?"
)


@contextmanager
def _workspace(ws_root: Path) -> Iterator[tuple[Workspace, Journal, VersionStore, Config]]:
    """The workspace, its journal (with the history tables) and its config; hand edits not
    yet in the alias history are recorded first, so `last change` means the file's."""
    ws = Workspace(ws_root)
    journal = Journal(ws.journal)
    try:
        store = VersionStore(ws.versions, journal)
        config = config_source.read(ws.config, store, check_versions=False)
        alias_history.ensure_schema(journal)
        records.ensure_schema(journal)
        alias_history.reconcile(journal, config)
        yield ws, journal, store, config
    finally:
        journal.close()


def _function(config: Config, function: str) -> None:
    if function not in config.functions:
        raise ResourceNotFound(f"Function not found: {config.function_arn(function)}")


def _alias(config: Config, function: str, alias: str) -> alias_history.Routing:
    _function(config, function)
    routing = alias_history.routing_of(config, function, alias)
    if routing[0] is None:
        raise ResourceNotFound(f"Alias not found: {config.function_arn(function, alias)}")
    return routing


def _no_open_shift(journal: Journal, function: str, alias: str) -> None:
    row = records.latest(journal, function, alias)
    if row is not None and row.state in records.OPEN_STATES:
        raise SimulatorError(
            f"{function}:{alias} is being shifted by deployment {row.deployment.id}; stop it "
            f"first with `s3sim shift {function} {alias} --stop`"
        )


def edit(
    ws: Workspace,
    journal: Journal,
    store: VersionStore,
    function: str,
    alias: str,
    new: alias_history.Routing,
    cause: str,
    detail: str = "",
) -> str:
    """One recorded alias edit; returns the diff line, as `config.reloaded` writes it."""
    version, weights = new
    assert version is not None
    old, _ = alias_history.set_alias(
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
    return f"functions.{function}.aliases.{alias}: {routing_text(old)} -> {routing_text(new)}"


def routing_text(routing: alias_history.Routing) -> str:
    version, weights = routing
    if version is None:
        return "(none)"
    return version + "".join(f" + {v} at {w:g}" for v, w in weights.items())


# -- promote / rollback / history ---------------------------------------------------------------
def promote(ws_root: Path, function: str, source: str, target: str) -> str:
    """Point `target` at the version (and routing) `source` points at now."""
    with _workspace(ws_root) as (ws, journal, store, config):
        new = _alias(config, function, source)
        _function(config, function)
        _no_open_shift(journal, function, target)
        return edit(ws, journal, store, function, target, new, PROMOTE, f"from {source}")


def rollback(ws_root: Path, function: str, alias: str) -> str:
    """Return the alias to what it was before its last change."""
    with _workspace(ws_root) as (ws, journal, store, config):
        _alias(config, function, alias)
        _no_open_shift(journal, function, alias)
        last = alias_history.last(journal, function, alias)
        if last is None or last.old[0] is None:
            raise SimulatorError(
                f"{function}:{alias} has no earlier version to return to (see `s3sim alias "
                f"history {function} {alias}`)"
            )
        detail = f"undoes change {last.id} ({last.cause})"
        return edit(ws, journal, store, function, alias, last.old, ROLLBACK, detail)


def history(ws_root: Path, function: str, alias: str | None) -> str:
    with _workspace(ws_root) as (_, journal, _store, config):
        _function(config, function)
        found = alias_history.changes(journal, function, alias)
    if not found:
        return "no alias changes recorded"
    rows = [("TIME", "ALIAS", "OLD", "NEW", "CAUSE", "DETAIL")]
    rows += [
        (
            _stamp(c.at_s),
            c.alias,
            routing_text(c.old),
            routing_text(c.new),
            c.cause,
            c.detail,
        )
        for c in found
    ]
    return table(rows)


def _stamp(at_s: float) -> str:
    return dt.datetime.fromtimestamp(at_s, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


# -- shift --------------------------------------------------------------------------------------
def parse_condition(text: str) -> Condition:
    """`error_rate>=20%`, `error_rate>=0.2/2` (over 2 minutes), `error_rate>=20%,min=5` (judged
    once 5 invocations were seen; 10 by default), `errors>=3`, `timeouts>=1`."""
    found = _CONDITION.fullmatch(text.replace(" ", ""))
    if found is None:
        raise UsageError(
            f"--rollback-if takes METRIC>=THRESHOLD[/WINDOW_MINUTES][,min=N] with METRIC one of "
            f"error_rate, errors, timeouts, throttles (e.g. error_rate>=20%/1), got {text!r}"
        )
    metric, threshold, window, least = found[1], found[2], found[3], found[4]
    value = float(threshold.rstrip("%")) / (100 if threshold.endswith("%") else 1)
    return Condition(
        metric,  # type: ignore[arg-type]
        value,
        float(window) if window else 1.0,
        int(least) if least else deployments.MIN_INVOCATIONS,
    )


def shift(
    ws_root: Path,
    function: str,
    alias: str,
    to: str,
    type_name: str | None = None,
    pre_traffic: str | None = None,
    post_traffic: str | None = None,
    conditions: Sequence[str] = (),
) -> str:
    """A shift as asked; what is not given comes from the alias's declared deployment
    preference (config.yaml), else AllAtOnce without hooks or conditions."""
    rollback_if = tuple(parse_condition(c) for c in conditions)
    with _workspace(ws_root) as (ws, journal, store, config):
        _alias(config, function, alias)
        pref = config.functions[function].aliases[alias].deployment
        kind = _kind(type_name) if type_name else pref.type if pref else _kind("AllAtOnce")
        d = request(
            journal,
            store,
            config,
            function,
            alias,
            to,
            kind,
            pre_traffic or (pref.pre_traffic if pref else None),
            post_traffic or (pref.post_traffic if pref else None),
            rollback_if or (pref.rollback if pref else ()),
        )
        return announce(ws, d)


def _kind(name: str) -> DeploymentType:
    try:
        return DeploymentType.parse(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def announce(ws: Workspace, d: Deployment) -> str:
    running = (ws.state / "endpoints.json").exists()
    when = (
        "the running simulator starts it now"
        if running
        else "it starts when the simulator runs (`s3sim run`)"
    )
    return (
        f"deployment {d.id}: {d.function}:{d.alias} {d.old} -> {d.new}, {d.type.name} "
        f"({_steps(d.type)}); {when}"
    )


def move_alias(
    ws: Workspace,
    journal: Journal,
    store: VersionStore,
    config: Config,
    function: str,
    alias: str,
    version: str,
    cause: str,
) -> tuple[str, Deployment | None]:
    """Move an alias to a new version the way its config asks: through a deployment when it
    declares a deployment preference (and moves from one published version to another),
    else with the one-line edit. Returns the text to show and the deployment, if any."""
    current = alias_history.routing_of(config, function, alias)[0]
    pref = config.functions[function].aliases[alias].deployment if current else None
    if pref is None or current in (None, LATEST, version) or version == LATEST:
        return edit(ws, journal, store, function, alias, (version, {}), cause), None
    d = request(
        journal, store, config, function, alias, version, pref.type, pref.pre_traffic,
        pref.post_traffic, pref.rollback, cause,
    )  # fmt: skip
    return announce(ws, d), d


def publish_alias(ws_root: Path, function: str, alias: str, version: str) -> str:
    """`s3sim publish FUNCTION --alias ALIAS`: the new version goes to the alias."""
    with _workspace(ws_root) as (ws, journal, store, config):
        _alias(config, function, alias)
        return move_alias(ws, journal, store, config, function, alias, version, PUBLISH)[0]


def request(
    journal: Journal,
    store: VersionStore,
    config: Config,
    function: str,
    alias: str,
    to: str,
    kind: DeploymentType,
    pre_traffic: str | None,
    post_traffic: str | None,
    rollback_if: tuple[Condition, ...],
    origin: str = "shift",
) -> Deployment:
    """Check and record a requested deployment (taken up by the running simulator)."""
    old = _alias(config, function, alias)[0]
    assert old is not None
    if to == LATEST or not to.isdigit() or int(to) not in store.published().get(function, ()):
        raise ResourceNotFound(f"Function not found: {config.function_arn(function, to)}")
    if old == LATEST:
        raise SimulatorError(
            f"{function}:{alias} points to $LATEST: a traffic shift needs a published "
            f"version on both sides (AWS refuses $LATEST in a weighted alias)"
        )
    if str(int(to)) == old:
        raise SimulatorError(f"{function}:{alias} already points to version {old}")
    for hook in (pre_traffic, post_traffic):
        if hook is not None and hook_function(hook) not in config.functions:
            raise ResourceNotFound(
                f"Function not found: {config.function_arn(hook_function(hook))}"
            )
    d = Deployment(
        id=new_deployment_id(),
        function=function,
        alias=alias,
        old=old,
        new=str(int(to)),
        type=kind,
        time_scale=config.settings.time_scale,
        pre_traffic=pre_traffic,
        post_traffic=post_traffic,
        rollback=rollback_if,
        origin=origin,
    )
    records.insert(journal, d)
    return d


def _steps(kind: DeploymentType) -> str:
    return ", ".join(f"{s.weight:.0%} at {s.at_min:g} min" for s in kind.steps())


def stop(ws_root: Path, function: str, alias: str) -> str:
    with _workspace(ws_root) as (_, journal, _store, _config):
        found = records.request_stop(journal, function, alias, "s3sim shift --stop")
    if found is None:
        raise SimulatorError(f"no deployment of {function}:{alias} is in progress")
    return f"deployment {found}: stop requested; the alias returns to its old version"


def status_lines(journal: Journal) -> list[str]:
    """The deployments part of `s3sim status` (in progress, and the last one of each alias)."""
    records.ensure_schema(journal)
    rows = records.load(journal)
    if not rows:
        return ["deployments: none in progress"]
    lines = ["deployments in progress:"]
    for row in rows:
        d = row.deployment
        # As the shifter last saw it: a stopped simulator's shift is paused (see the README).
        version, weights = deployments.alias_target(d, row.last_seen_s or time.time())
        lines.append(
            f"  {d.id} {d.function}:{d.alias} {d.old} -> {d.new} {d.type.name} "
            f"{row.state} phase {d.phase}, split {version}"
            + "".join(f" + {v} at {w:.0%}" for v, w in weights.items())
        )
    return lines


def table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
