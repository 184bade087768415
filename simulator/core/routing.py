"""Which notification configurations of a bucket an object change matches (reference §2.2)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

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


def near_miss(key: str, value: str, kind: Literal["prefix", "suffix"]) -> str | None:
    """Why a prefix or suffix rule that fails for `key` would match but for case or
    encoding: S3 compares filters case-sensitively, with the URL-encoded key (None: no such
    near miss)."""
    encoded = encode_key(key)

    def fits(k: str, v: str) -> bool:
        return k.startswith(v) if kind == "prefix" else k.endswith(v)

    if fits(encoded, value):
        return None
    part = encoded[: len(value)] if kind == "prefix" else encoded[len(encoded) - len(value) :]
    if fits(encoded.casefold(), value.casefold()):
        return (
            f"differs only in case: the key has {part!r}, the rule {value!r}; "
            f"S3 compares {kind}es case-sensitively"
        )
    if fits(key, value) or fits(key.casefold(), value.casefold()):
        case = "" if fits(key, value) else " (and in case)"
        return (
            f"differs only in encoding{case}: S3 compares {kind}es with the URL-encoded key "
            f"{encoded!r}; write the {kind} as {encode_key(value)!r}"
        )
    nfc, nfd = unicodedata.normalize("NFC", key), unicodedata.normalize("NFD", key)
    for form, text in (("NFC", nfc), ("NFD", nfd)):
        if text != key and fits(encode_key(text), value):
            return (
                f"differs only in Unicode normalization: the key's accented letters are "
                f"{'decomposed (NFD)' if form == 'NFC' else 'composed (NFC)'}, the rule's are "
                f"{'composed' if form == 'NFC' else 'decomposed'}; S3 compares the bytes"
            )
    return None
