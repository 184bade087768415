"""The batch of object changes that becomes one journal transaction.

Owned by the intake thread. Changes are staged with their new index entry; `commit` writes
the object index, the accepted deliveries (one per matching notification) and the sequencer
in one transaction, then hands the deliveries to the scheduler. An overlay answers index
lookups for what is staged but not yet committed.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from simulator.core import routing, s3_events
from simulator.core.config import Config
from simulator.core.s3_events import Identity, ObjectChange
from simulator.store.journal import IndexEntry, Journal, NewDelivery

log = structlog.get_logger("s3sim")


@dataclass(frozen=True)
class Staged:
    change: ObjectChange
    entry: IndexEntry | None  # new index entry; None = removed
    fire: bool = True
    index: bool = True  # False: the change leaves the object index alone (tags)


class Stager:
    def __init__(
        self,
        journal: Journal,
        config: Callable[[], Config],
        submit: Callable[[list[tuple[int, str]]], None],
    ) -> None:
        self._journal, self._config, self._submit = journal, config, submit
        self._batch: list[Staged] = []
        self._overlay: dict[tuple[str, str], IndexEntry | None] = {}
        self._sequencer = int(journal.get_meta("sequencer") or 0)
        self.baseline_pending = False  # the first scan is recorded with the batch it makes
        self.requests_done: list[int] = []
        self.replays: list[tuple[int, NewDelivery]] = []

    def __len__(self) -> int:
        return len(self._batch)

    def discard(self) -> None:
        """Forget what is staged (after a failed commit; a rescan finds it again)."""
        self._batch.clear()
        self._overlay.clear()
        self.replays.clear()
        self.requests_done.clear()

    def stage(
        self, change: ObjectChange, entry: IndexEntry | None, fire: bool = True, index: bool = True
    ) -> None:
        if index:
            self._overlay[(change.bucket, change.key)] = entry
        self._batch.append(Staged(change, entry, fire, index))

    def indexed(self, bucket: str, key: str) -> IndexEntry | None:
        """The index entry as it will be once the batch commits."""
        if (bucket, key) in self._overlay:
            return self._overlay[(bucket, key)]
        return self._journal.lookup(bucket, key)

    # -- commit ------------------------------------------------------------------------------
    def commit(self) -> None:
        if not (self._batch or self.baseline_pending or self.requests_done or self.replays):
            return
        config, batch = self._config(), self._batch
        self._batch, self._overlay = [], {}
        accepted: list[tuple[int, str]] = []
        logs: list[tuple[ObjectChange, list[tuple[int, str, str]]]] = []
        with self._journal.transaction() as db:
            for staged in batch:
                change = self._sequenced(staged.change)
                if staged.index:
                    if staged.entry is None:
                        Journal.delete_object(db, change.bucket, change.key)
                    else:
                        Journal.put_object(db, change.bucket, change.key, staged.entry)
                if staged.fire:
                    matched = self._accept(db, config, change)
                    accepted += [(i, fn) for i, fn, _ in matched]
                    logs.append((change, matched))
            Journal.set_meta(db, "sequencer", str(self._sequencer))
            for replay_of, new in self.replays:
                accepted.append((Journal.insert(db, new, replay_of), new.function))
                # Requests queued by an older s3sim did not mark the dead letter: do it here.
                Journal.mark_replayed(db, replay_of, new.request_id)
            for request_id in self.requests_done:
                Journal.finish_request(db, request_id)
            if self.baseline_pending:
                Journal.set_meta(db, "baseline", "1")
        self.replays, self.requests_done = [], []
        self.baseline_pending = False
        for change, matched in logs:
            _log_change(change, matched)
        if accepted:
            self._submit(accepted)

    def _sequenced(self, change: ObjectChange) -> ObjectChange:
        # Monotonic across restarts: never below the last value stored in the journal.
        self._sequencer = max(self._sequencer + 1, time.time_ns())
        return ObjectChange(
            change.bucket,
            change.key,
            change.kind,
            change.size,
            change.etag,
            s3_events.format_sequencer(self._sequencer),
            time.time_ns() // 10**6,
            change.origin,
        )

    def _accept(
        self, db: sqlite3.Connection, config: Config, change: ObjectChange
    ) -> list[tuple[int, str, str]]:
        bucket = config.buckets.get(change.bucket)
        if bucket is None:
            return []
        accepted = []
        for notification in routing.match(bucket, change.key, change.event_name):
            event = build_event(config, change, notification.id)
            arn = notification.function_arn
            delivery_id = Journal.insert(
                db,
                NewDelivery(
                    str(uuid.uuid4()),
                    str(arn),
                    arn.function,
                    change.bucket,
                    change.key,
                    event,
                    change.time_ms / 1000,
                    lineage=change.origin.lineage if change.origin is not None else "",
                ),
            )
            accepted.append((delivery_id, arn.function, str(arn)))
        return accepted


def build_event(config: Config, change: ObjectChange, configuration_id: str) -> dict[str, Any]:
    """The S3 event for one change, with the identity and ids the config gives."""
    settings = config.settings
    identity = Identity(
        config.region,
        settings.principal_id,
        settings.owner_id,
        settings.source_ip,
        settings.event_version,
    )
    return s3_events.build(change, configuration_id, identity, _s3_request_id(), _host_id())


def _log_change(change: ObjectChange, matched: list[tuple[int, str, str]]) -> None:
    name = {"put": "s3.object_created", "tagging": "s3.object_tagged"}.get(
        change.kind, "s3.object_removed"
    )
    fields: dict[str, object] = {
        "bucket": change.bucket,
        "key": change.key,
        "sequencer": change.sequencer,
    }
    if change.kind == "put":
        fields.update(size=change.size, etag=change.etag)
    elif change.kind == "tagging":
        fields.update(event_name=change.event_name, etag=change.etag)
    log.info(name, **fields)
    for delivery_id, function, target in matched:
        log.info(
            "trigger.matched",
            bucket=change.bucket,
            key=change.key,
            target=target,
            function=function,
            delivery_id=delivery_id,
        )


def _s3_request_id() -> str:
    return secrets.token_hex(8).upper()  # 16 chars of [0-9A-F], like x-amz-request-id


def _host_id() -> str:
    return secrets.token_urlsafe(48)[:64]
