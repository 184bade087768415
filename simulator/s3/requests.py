"""What the CLI asks a running simulator to do through the journal's requests table (the
runtime's main loop reads it; the intake thread carries it out, staging its changes)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import structlog

from simulator.core.s3_events import ObjectChange
from simulator.logs import Progress
from simulator.s3 import objects
from simulator.s3.metadata import MetadataStore
from simulator.s3.staging import Stager
from simulator.store.journal import (
    DEAD_LETTER_STATES,
    Delivery,
    IndexEntry,
    Journal,
    NewDelivery,
)

log = structlog.get_logger("s3sim")


def carry_out(
    journal: Journal,
    stager: Stager,
    buckets_dir: str,
    ignore: tuple[str, ...],
    request_id: int,
    kind: str,
    body: dict[str, Any],
) -> None:
    if kind == "replay":
        replay(journal, stager, body.get("ids", []), body.get("request_ids", {}))
    elif kind == "refire":
        refire(
            stager, buckets_dir, ignore, str(body.get("bucket", "")), str(body.get("prefix", ""))
        )
    stager.requests_done.append(request_id)


def replay(journal: Journal, stager: Stager, ids: list[int], request_ids: dict[str, str]) -> None:
    """Dead letters again, through the current alias mapping, with new request ids (the ones
    `s3sim replay` chose and recorded when it marked them replayed)."""
    # Queueing is quick; the progress of a long replay is that of its invocations
    # (`cli_requests.ReplayWatch` on the supervisor, ending with `replay.finished`).
    for dead in journal.load_many(ids):
        _replay_one(stager, dead, request_ids)


def _replay_one(stager: Stager, dead: Delivery, request_ids: dict[str, str]) -> None:
    if dead.state in DEAD_LETTER_STATES:
        request_id = request_ids.get(str(dead.id)) or str(uuid.uuid4())
        new = NewDelivery(
            request_id, dead.target, dead.function, dead.bucket, dead.key, dead.payload, time.time()
        )
        stager.replays.append((dead.id, new))
        log.info(
            "event.replayed",
            delivery_id=dead.id,
            request_id=new.request_id,
            replay_of=dead.request_id,
            function=dead.function,
            bucket=dead.bucket,
            key=dead.key,
        )


def refire(
    stager: Stager, buckets_dir: str, ignore: tuple[str, ...], bucket: str, prefix: str
) -> None:
    """Events for objects that already exist, as if each had just been written, with the
    ETag S3 reports for each (a multipart upload's, where the S3 API stored one)."""
    started = time.monotonic()
    progress = Progress(f"re-firing s3://{bucket}/{prefix}*")
    stored = MetadataStore(Path(buckets_dir).parent / ".s3sim" / "metadata.sqlite3")
    try:
        for path, key in objects.in_bucket(buckets_dir, bucket, ignore, prefix):
            try:
                size, mtime_ns, md5 = objects.read(path, buckets_dir)
                meta = stored.get(bucket, key, os.stat(path))
            except (objects.Vanished, FileNotFoundError):
                continue
            etag = meta.etag if meta is not None and meta.etag else md5
            change = ObjectChange(bucket, key, "put", size, etag)
            stager.stage(change, IndexEntry(size, mtime_ns, md5))
            progress.advance()
    finally:
        progress.close()
        stored.close()
    log.info(
        "bucket.refired",
        bucket=bucket,
        prefix=prefix,
        objects=progress.count,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )
