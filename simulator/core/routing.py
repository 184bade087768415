"""Which notification configurations of a bucket an object change matches (reference §2.2)."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.core.config import Bucket, Notification
from simulator.core.s3_events import encode_key


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
    """`spec` is a configured type (`s3:ObjectCreated:*`); `event_name` is a record's
    (`ObjectCreated:Put`)."""
    full = f"s3:{event_name}"
    if spec == full:
        return True
    return spec.endswith(":*") and full.startswith(spec[:-1])


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
    return [
        n
        for n in bucket.notifications
        if encoded.startswith(n.prefix)
        and encoded.endswith(n.suffix)
        and any(event_matches(spec, event_name) for spec in n.events)
    ]
