"""Which notification configurations of a bucket an object change matches (reference §2.2)."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.config import Bucket, Notification
from simulator.s3_events import encode_key

# Every event type S3 accepts in a notification configuration (reference §1.5).
EVENT_TYPES = frozenset({
    "s3:ReducedRedundancyLostObject",
    "s3:ObjectCreated:*", "s3:ObjectCreated:Put", "s3:ObjectCreated:Post", "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*", "s3:ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated",
    "s3:ObjectRestore:*", "s3:ObjectRestore:Post", "s3:ObjectRestore:Completed",
    "s3:ObjectRestore:Delete",
    "s3:Replication:*", "s3:Replication:OperationFailedReplication",
    "s3:Replication:OperationNotTracked", "s3:Replication:OperationMissedThreshold",
    "s3:Replication:OperationReplicatedAfterThreshold",
    "s3:LifecycleExpiration:*", "s3:LifecycleExpiration:Delete",
    "s3:LifecycleExpiration:DeleteMarkerCreated", "s3:LifecycleTransition",
    "s3:IntelligentTiering",
    "s3:ObjectTagging:*", "s3:ObjectTagging:Put", "s3:ObjectTagging:Delete",
    "s3:ObjectAcl:Put",
})


@dataclass(frozen=True)
class Verdict:
    """Why one configuration does or does not match one change (for `s3sim explain`)."""

    notification: Notification
    event_ok: bool
    prefix_ok: bool
    suffix_ok: bool

    @property
    def matched(self) -> bool:
        return self.event_ok and self.prefix_ok and self.suffix_ok


def event_matches(spec: str, event_name: str) -> bool:
    """`spec` is a configured type (`s3:ObjectCreated:*`), `event_name` a record's (`ObjectCreated:Put`)."""
    full = f"s3:{event_name}"
    if spec == full:
        return True
    return spec.endswith(":*") and full.startswith(spec[:-1])


def events_intersect(a: str, b: str) -> bool:
    """Whether two configured event types can both match some event (wildcards expanded)."""
    if a == b:
        return True
    family_a = a[:-1] if a.endswith(":*") else None
    family_b = b[:-1] if b.endswith(":*") else None
    return bool((family_a and b.startswith(family_a)) or (family_b and a.startswith(family_b)))


def explain(bucket: Bucket, key: str, event_name: str) -> list[Verdict]:
    encoded = encode_key(key)  # filters compare against the encoded key (reference §2.2)
    return [
        Verdict(
            notification=n,
            event_ok=any(event_matches(spec, event_name) for spec in n.events),
            prefix_ok=encoded.startswith(n.prefix),
            suffix_ok=encoded.endswith(n.suffix),
        )
        for n in bucket.notifications
    ]


def match(bucket: Bucket, key: str, event_name: str) -> list[Notification]:
    """The configurations that fire; AWS's overlap rule makes this at most one.

    The same test as `explain`, without building a verdict per rule (this runs per event).
    """
    encoded = encode_key(key)
    return [n for n in bucket.notifications
            if encoded.startswith(n.prefix) and encoded.endswith(n.suffix)
            and any(event_matches(spec, event_name) for spec in n.events)]
