"""Alias history: every change of an alias, with its cause, kept in the journal.

A command notes its change in the journal as *pending* before it replaces config.yaml (from
the edit's `before_replace` step, under the config edit lock) and confirms it once the file
is written, so a running simulator that reloads the file in between finds the change (or the
state before it) explained either way. Whatever the running simulator (or the next start)
finds in config.yaml that the history does not explain was a hand edit.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulator.core.config import Config
from simulator.errors import Problem, SimulatorError
from simulator.store import config_edit
from simulator.store.journal import Journal
from simulator.store.versions import VersionStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alias_changes (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,        -- one per edit: a retried edit replaces its own row
    at_s REAL NOT NULL,
    function TEXT NOT NULL,
    alias TEXT NOT NULL,
    old_version TEXT,                  -- NULL: the alias did not exist
    old_weights TEXT NOT NULL DEFAULT '{}',
    new_version TEXT,                  -- NULL: the alias was removed
    new_weights TEXT NOT NULL DEFAULT '{}',
    cause TEXT NOT NULL,               -- hand edit | alias set | lambda api | promote | ...
    detail TEXT NOT NULL DEFAULT '',
    pending INTEGER NOT NULL DEFAULT 0 -- 1 from a command's note until its file write landed
);
CREATE INDEX IF NOT EXISTS alias_changes_by_alias ON alias_changes(function, alias, id);
"""
HAND_EDIT = "hand edit"
PENDING_S = 60.0
FIRST_SEEN = "first seen"
Routing = tuple[str | None, dict[str, float]]  # (version, weights); version None: no alias


@dataclass(frozen=True)
class Change:
    id: int
    at_s: float
    function: str
    alias: str
    old: Routing
    new: Routing
    cause: str
    detail: str


def ensure_schema(journal: Journal) -> None:
    with journal.transaction() as db:  # executescript would commit the open transaction
        for statement in _statements():
            db.execute(statement)


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


def record(
    journal: Journal,
    function: str,
    alias: str,
    old: Routing,
    new: Routing,
    cause: str,
    detail: str = "",
    token: str | None = None,
    at_s: float | None = None,
    pending: bool = False,
) -> None:
    with journal.transaction() as db:
        db.execute(
            "INSERT INTO alias_changes(token, at_s, function, alias, old_version, old_weights, "
            "new_version, new_weights, cause, detail, pending) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(token) DO UPDATE SET at_s = excluded.at_s, "
            "old_version = excluded.old_version, old_weights = excluded.old_weights, "
            "new_version = excluded.new_version, new_weights = excluded.new_weights",
            (
                token or str(uuid.uuid4()),
                time.time() if at_s is None else at_s,
                function,
                alias,
                old[0],
                json.dumps(old[1], sort_keys=True),
                new[0],
                json.dumps(new[1], sort_keys=True),
                cause,
                detail,
                int(pending),
            ),
        )


def _confirm(journal: Journal, token: str) -> None:
    with journal.transaction() as db:
        db.execute("UPDATE alias_changes SET pending = 0 WHERE token = ?", (token,))


def _pending(journal: Journal, function: str, alias: str) -> list[Routing]:
    """What commands are writing into config.yaml for the alias right now (a note older
    than a minute is a command that died before its write: it explains nothing)."""
    rows = journal.rows(
        "SELECT new_version, new_weights FROM alias_changes WHERE pending = 1 "
        "AND function = ? AND alias = ? AND at_s > ?",
        (function, alias, time.time() - PENDING_S),
    )
    return [(v, json.loads(w)) for v, w in rows]


def _forget(journal: Journal, token: str) -> None:
    with journal.transaction() as db:
        db.execute("DELETE FROM alias_changes WHERE token = ?", (token,))


def changes(journal: Journal, function: str, alias: str | None = None) -> list[Change]:
    rows = journal.rows(
        "SELECT id, at_s, function, alias, old_version, old_weights, new_version, "
        "new_weights, cause, detail FROM alias_changes WHERE pending = 0 AND function = ? "
        "AND (? IS NULL OR alias = ?) ORDER BY id",
        (function, alias, alias),
    )
    return [_change(r) for r in rows]


def _change(row: tuple[Any, ...]) -> Change:
    i, at_s, fn, alias, ov, ow, nv, nw, cause, detail = row
    return Change(
        int(i), float(at_s), fn, alias, (ov, json.loads(ow)), (nv, json.loads(nw)), cause, detail
    )


def last(journal: Journal, function: str, alias: str) -> Change | None:
    found = changes(journal, function, alias)
    return found[-1] if found else None


def routing_of(config: Config, function: str, alias: str) -> Routing:
    fn = config.functions.get(function)
    found = fn.aliases.get(alias) if fn is not None else None
    if found is None:
        return None, {}
    return found.version, {str(v): float(w) for v, w in found.weights.items()}


def known(journal: Journal) -> set[tuple[str, str]]:
    """Every (function, alias) the history has rows for (an alias since removed included)."""
    return {
        (str(f), str(a))
        for f, a in journal.rows("SELECT DISTINCT function, alias FROM alias_changes")
    }


def reconcile(
    journal: Journal, config: Config, seen: set[tuple[str, str]] | None = None
) -> list[Change]:
    """Record what config.yaml holds that the history does not explain, as hand edits (an
    alias first seen when the history is empty for it: `first seen`; one removed: new
    `(none)`). `seen` caches `known(journal)` across calls; it is updated."""
    if seen is None:
        seen = known(journal)
    names = {(f.name, a) for f in config.functions.values() for a in f.aliases} | seen
    recorded: list[Change] = []
    for function, alias in sorted(names):
        now = routing_of(config, function, alias)
        # Pending notes first, then the last settled change: a command's note settles between
        # the two reads at worst, and is then seen as the last change (read the other way
        # round, it would be in neither, and its change taken for a hand edit).
        pending = _pending(journal, function, alias)
        before = last(journal, function, alias)
        old = before.new if before is not None else (None, {})
        if same(old, now) or any(same(p, now) for p in pending):
            continue
        cause = HAND_EDIT if before is not None else FIRST_SEEN
        record(journal, function, alias, old, now, cause, "config.yaml")
        seen.add((function, alias))
        found = last(journal, function, alias)
        if found is not None:
            recorded.append(found)
    return recorded


def same(a: Routing, b: Routing) -> bool:
    return a[0] == b[0] and _weights(a[1]) == _weights(b[1])


def _weights(w: Mapping[str, float]) -> dict[str, float]:
    return {str(k): round(float(v), 6) for k, v in w.items()}


def set_alias(
    journal: Journal,
    config_path: Path,
    lock_path: Path,
    store: VersionStore,
    function: str,
    alias: str,
    new: tuple[str, Mapping[str, float]],
    cause: str,
    detail: str = "",
) -> tuple[Routing, list[Problem]]:
    """`config_edit.set_alias` that records the change (old -> new, cause) in the history
    before the file is replaced. Returns the routing the alias had before, and the problems
    config.yaml still has elsewhere (as `config_edit.set_alias`)."""
    token = str(uuid.uuid4())
    version, weights = new
    seen: list[Routing] = []

    def note() -> None:
        _forget(journal, token)  # a retried edit: its earlier note was of another text
        old = _routing_in_file(config_path, function, alias)
        seen[:] = [old]
        _explain(journal, function, alias, old)
        wanted = (version, {str(k): float(v) for k, v in weights.items()})
        if not same(old, wanted):
            record(journal, function, alias, old, wanted, cause, detail, token, pending=True)

    try:
        problems = config_edit.set_alias(
            config_path,
            lock_path,
            function,
            alias,
            version,
            {int(k): float(v) for k, v in weights.items()},
            store,
            before_replace=note,
        )
    except BaseException:
        _forget(journal, token)
        raise
    _confirm(journal, token)
    return (seen[0] if seen else (None, {})), problems


def _explain(journal: Journal, function: str, alias: str, found: Routing) -> None:
    """What the file holds for the alias, if the history does not say so yet (a hand edit
    nobody has noticed), is recorded before the change that replaces it."""
    before = last(journal, function, alias)
    old = before.new if before is not None else (None, {})
    if not same(old, found):
        cause = HAND_EDIT if before is not None else FIRST_SEEN
        record(journal, function, alias, old, found, cause, "config.yaml")


def _routing_in_file(path: Path, function: str, alias: str) -> Routing:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=config_edit.LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise SimulatorError(f"cannot read {path}: {exc}") from None
    value = config_edit.aliases_in(raw, function).get(alias)
    if value is None:
        return None, {}
    if isinstance(value, Mapping):
        weights = value.get("weights") or {}
        return _version_text(value.get("version")), {str(k): float(v) for k, v in weights.items()}
    return _version_text(value), {}


def _version_text(value: Any) -> str | None:
    return None if value is None else str(value)
