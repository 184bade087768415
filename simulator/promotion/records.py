"""Deployments and what they saw, kept in the journal: they survive a restart, and the CLI
(`s3sim shift`, `--stop`, `status`, `shift report`) reads and requests through the same rows.

A deployment row is written by `s3sim shift` (or a publish with a declared preference) as
`Requested`; the running simulator's shifter takes it up, and writes each state it reaches.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from simulator.core.deployments import Condition, Deployment, DeploymentType
from simulator.store.journal import Journal

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    alias TEXT NOT NULL,
    state TEXT NOT NULL,              -- Requested | InProgress | Succeeded | RolledBack
    body TEXT NOT NULL,               -- the Deployment, as JSON
    stop_requested TEXT,              -- why `s3sim shift --stop` asked to stop
    created_s REAL NOT NULL,
    updated_s REAL NOT NULL,
    last_seen_s REAL                  -- the shifter's last look: the downtime on a restart
)""",
    """CREATE TABLE IF NOT EXISTS deployment_samples (
    deployment_id TEXT NOT NULL,
    at_s REAL NOT NULL,
    version TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error_type TEXT
)""",
    "CREATE INDEX IF NOT EXISTS deployment_samples_by_id ON deployment_samples(deployment_id)",
)
OPEN_STATES = ("Requested", "InProgress")


@dataclass(frozen=True)
class Row:
    deployment: Deployment
    state: str
    stop_requested: str | None
    created_s: float
    updated_s: float
    last_seen_s: float | None


def ensure_schema(journal: Journal) -> None:
    with journal.transaction() as db:
        for statement in _SCHEMA:
            db.execute(statement)


def to_json(d: Deployment) -> str:
    body = asdict(d)
    body["type"] = d.type.name
    return json.dumps(body, sort_keys=True)


def from_json(text: str) -> Deployment:
    body: dict[str, Any] = json.loads(text)
    body["type"] = DeploymentType.parse(body["type"])
    body["rollback"] = tuple(Condition(**c) for c in body["rollback"])
    return Deployment(**body)


def insert(journal: Journal, d: Deployment, state: str = "Requested") -> None:
    now = time.time()
    with journal.transaction() as db:
        open_ = db.execute(
            "SELECT id FROM deployments WHERE function = ? AND alias = ? AND state IN (?, ?)",
            (d.function, d.alias, *OPEN_STATES),
        ).fetchone()
        if open_ is not None:
            from simulator.errors import SimulatorError

            raise SimulatorError(
                f"{d.function}:{d.alias} is already being shifted by deployment {open_[0]}; "
                f"wait for it, or stop it with `s3sim shift {d.function} {d.alias} --stop`"
            )
        db.execute(
            "INSERT INTO deployments(id, function, alias, state, body, created_s, updated_s) "
            "VALUES(?, ?, ?, ?, ?, ?, ?)",
            (d.id, d.function, d.alias, state, to_json(d), now, now),
        )


def save(journal: Journal, d: Deployment, seen_s: float | None = None) -> None:
    state = d.status
    with journal.transaction() as db:
        db.execute(
            "UPDATE deployments SET state = ?, body = ?, updated_s = ?, "
            "last_seen_s = coalesce(?, last_seen_s) WHERE id = ?",
            (state, to_json(d), time.time(), seen_s, d.id),
        )


def seen(journal: Journal, ids: list[str], at_s: float) -> None:
    with journal.transaction() as db:
        db.executemany(
            "UPDATE deployments SET last_seen_s = ? WHERE id = ?", [(at_s, i) for i in ids]
        )


def request_stop(journal: Journal, function: str, alias: str, reason: str) -> str | None:
    """Mark the alias's open deployment to be stopped; its id, or None when none is open."""
    with journal.transaction() as db:
        row = db.execute(
            "SELECT id FROM deployments WHERE function = ? AND alias = ? AND state IN (?, ?)",
            (function, alias, *OPEN_STATES),
        ).fetchone()
        if row is None:
            return None
        db.execute("UPDATE deployments SET stop_requested = ? WHERE id = ?", (reason, row[0]))
        return str(row[0])


def load(journal: Journal, states: tuple[str, ...] = OPEN_STATES) -> list[Row]:
    marks = ",".join("?" * len(states))
    rows = journal.rows(
        f"SELECT body, state, stop_requested, created_s, updated_s, last_seen_s "
        f"FROM deployments WHERE state IN ({marks}) ORDER BY created_s",
        states,
    )
    return [Row(from_json(b), s, r, c, u, ls) for b, s, r, c, u, ls in rows]


def latest(journal: Journal, function: str | None = None, alias: str | None = None) -> Row | None:
    rows = journal.rows(
        "SELECT body, state, stop_requested, created_s, updated_s, last_seen_s "
        "FROM deployments WHERE (? IS NULL OR function = ?) AND (? IS NULL OR alias = ?) "
        "ORDER BY created_s DESC LIMIT 1",
        (function, function, alias, alias),
    )
    return Row(from_json(rows[0][0]), *rows[0][1:]) if rows else None


def by_id(journal: Journal, deployment_id: str) -> Row | None:
    rows = journal.rows(
        "SELECT body, state, stop_requested, created_s, updated_s, last_seen_s "
        "FROM deployments WHERE id = ?",
        (deployment_id,),
    )
    return Row(from_json(rows[0][0]), *rows[0][1:]) if rows else None


def add_sample(
    journal: Journal, deployment_id: str, at_s: float, version: str, ok: bool, error: str | None
) -> None:
    with journal.transaction() as db:
        db.execute(
            "INSERT INTO deployment_samples(deployment_id, at_s, version, ok, error_type) "
            "VALUES(?, ?, ?, ?, ?)",
            (deployment_id, at_s, version, int(ok), error),
        )


def samples(journal: Journal, deployment_id: str) -> list[tuple[float, str, bool, str | None]]:
    rows = journal.rows(
        "SELECT at_s, version, ok, error_type FROM deployment_samples "
        "WHERE deployment_id = ? ORDER BY at_s",
        (deployment_id,),
    )
    return [(float(a), str(v), bool(o), e) for a, v, o, e in rows]


def shifted(d: Deployment, downtime_s: float) -> Deployment:
    """The deployment resumed after the simulator was down for `downtime_s`: its schedule
    moves on by the time it was watched, not by the time it was not (see the README)."""
    if d.traffic_start_s is None or downtime_s <= 0:
        return d
    return replace(d, traffic_start_s=d.traffic_start_s + downtime_s)
