"""Build S3 event notification records exactly as S3 sends them to Lambda (reference §1)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote_plus

EVENT_VERSION = "2.1"  # what real AWS sent in 2025 for ObjectCreated/ObjectRemoved (reference §1.3)
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
TAGGING_EVENT_VERSION = "2.3"  # what AWS sent for ObjectTagging:* (reference §1.3)

ChangeKind = Literal["put", "delete", "tagging"]  # tagging: the S3 API changed an object's tags


@dataclass(frozen=True)
class Origin:
    """The S3 API request that made a change (None for a file written by hand): its event
    name, ids and client address go into the event, as S3 reports them."""

    event_name: str  # ObjectCreated:Put | ... | ObjectRemoved:Delete | ObjectTagging:Put
    request_id: str
    host_id: str
    source_ip: str
    lineage: str = ""  # the invocation chain the write belongs to (X-Amzn-Trace-Id's Lineage)
    etag: str = ""  # the ETag S3 reports (a multipart upload's is not the file's MD5)


@dataclass(frozen=True)
class ObjectChange:
    """One settled change of one object: what the watcher hands to the dispatcher."""

    bucket: str
    key: str
    kind: ChangeKind
    size: int = 0
    etag: str = ""
    sequencer: str = ""
    time_ms: int = 0  # epoch milliseconds at which the change was observed
    origin: Origin | None = None

    @property
    def event_name(self) -> str:
        if self.origin is not None:
            return self.origin.event_name
        return "ObjectCreated:Put" if self.kind == "put" else "ObjectRemoved:Delete"


@dataclass(frozen=True)
class Identity:
    """Who S3 says made the request, and who owns the bucket (values are configurable)."""

    region: str
    principal_id: str = "AWS:AIDAS3SIMLOCALUSER"
    owner_id: str = "A3S3SIMLOCALOWNER"
    source_ip: str = "127.0.0.1"
    event_version: str = EVENT_VERSION


def encode_key(key: str) -> str:
    """S3's event key encoding: form-URL-encoding of the UTF-8 key, `/` kept, space -> `+`."""
    return quote_plus(key, safe="/")


def format_time(time_ms: int) -> str:
    """ISO-8601 UTC with milliseconds and `Z`: `2025-01-21T23:21:10.123Z`."""
    seconds, millis = divmod(time_ms, 1000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def format_sequencer(value: int) -> str:
    """Upper-case hex, zero padded to S3's usual 18 characters (`0055AED6DCD90281E5`)."""
    return f"{value:018X}"


def build(
    change: ObjectChange, configuration_id: str, identity: Identity, request_id: str, host_id: str
) -> dict[str, Any]:
    """One `{"Records": [record]}` message, fields in the order real AWS emits them."""
    return {
        "Records": [
            {
                "eventVersion": (
                    TAGGING_EVENT_VERSION if change.kind == "tagging" else identity.event_version
                ),
                "eventSource": "aws:s3",
                "awsRegion": identity.region,
                "eventTime": format_time(change.time_ms),
                "eventName": change.event_name,
                "userIdentity": {"principalId": identity.principal_id},
                "requestParameters": {"sourceIPAddress": _source_ip(change, identity)},
                "responseElements": _response_elements(change, request_id, host_id),
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": configuration_id,
                    "bucket": {
                        "name": change.bucket,
                        "ownerIdentity": {"principalId": identity.owner_id},
                        "arn": f"arn:aws:s3:::{change.bucket}",
                    },
                    "object": _object(change),
                },
            }
        ]
    }


def _source_ip(change: ObjectChange, identity: Identity) -> str:
    return change.origin.source_ip if change.origin is not None else identity.source_ip


def _response_elements(change: ObjectChange, request_id: str, host_id: str) -> dict[str, str]:
    """The ids of the request that made the change: the API's own response headers."""
    if change.origin is not None:
        request_id, host_id = change.origin.request_id, change.origin.host_id
    return {"x-amz-request-id": request_id, "x-amz-id-2": host_id}


def _object(change: ObjectChange) -> dict[str, Any]:
    # Deletes in unversioned buckets carry only key and sequencer (reference §1.4); versionId is
    # omitted because simulated buckets are unversioned.
    if change.kind == "delete":
        return {"key": encode_key(change.key), "sequencer": change.sequencer}
    if change.kind == "tagging":  # no size and no sequencer (reference §1.4)
        return {"key": encode_key(change.key), "eTag": change.etag}
    return {
        "key": encode_key(change.key),
        "size": change.size,
        "eTag": change.etag,
        "sequencer": change.sequencer,
    }


# Every event type S3 accepts in a notification configuration (reference §1.5).
EVENT_TYPES = frozenset(
    {
        "s3:ReducedRedundancyLostObject",
        "s3:ObjectCreated:*",
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
        "s3:ObjectRemoved:*",
        "s3:ObjectRemoved:Delete",
        "s3:ObjectRemoved:DeleteMarkerCreated",
        "s3:ObjectRestore:*",
        "s3:ObjectRestore:Post",
        "s3:ObjectRestore:Completed",
        "s3:ObjectRestore:Delete",
        "s3:Replication:*",
        "s3:Replication:OperationFailedReplication",
        "s3:Replication:OperationNotTracked",
        "s3:Replication:OperationMissedThreshold",
        "s3:Replication:OperationReplicatedAfterThreshold",
        "s3:LifecycleExpiration:*",
        "s3:LifecycleExpiration:Delete",
        "s3:LifecycleExpiration:DeleteMarkerCreated",
        "s3:LifecycleTransition",
        "s3:IntelligentTiering",
        "s3:ObjectTagging:*",
        "s3:ObjectTagging:Put",
        "s3:ObjectTagging:Delete",
        "s3:ObjectAcl:Put",
    }
)


def events_intersect(a: str, b: str) -> bool:
    """Whether two configured event types can both match some event (wildcards expanded)."""
    if a == b:
        return True
    family_a = a[:-1] if a.endswith(":*") else None
    family_b = b[:-1] if b.endswith(":*") else None
    return bool((family_a and b.startswith(family_a)) or (family_b and a.startswith(family_b)))
