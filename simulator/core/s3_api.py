"""The S3 REST API's vocabulary: XML bodies, errors, listing pages, key checks. Pure.

The shapes follow S3's API reference (ListAllMyBucketsResult, ListBucketResult for
ListObjectsV2, Error); the shell (`simulator/s3/api.py`) only moves bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.core.config import Notification
from xml.sax.saxutils import escape

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEYS = 1000


@dataclass(frozen=True)
class S3Error(Exception):
    """An error S3 would answer: its code, HTTP status and message."""

    code: str
    status: int
    message: str
    resource: str = ""
    arguments: tuple[tuple[str, str], ...] = ()  # (element, text): ArgumentName, ArgumentValue


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("NoSuchBucket", 404, "The specified bucket does not exist", bucket)


def no_such_key(key: str) -> S3Error:
    return S3Error("NoSuchKey", 404, "The specified key does not exist.", key)


def key_problem(key: str) -> S3Error | None:
    """Keys a folder tree cannot hold as they are, or that would leave the bucket folder, are
    refused (not stored in another form): the file is the object, under the same name."""
    parts = key.split("/")
    if not key or len(key.encode("utf-8", "surrogatepass")) > 1024:
        return S3Error("KeyTooLongError", 400, "Your key is too long", key)
    if key.startswith("/") or "\0" in key or "\\" in key or any(p in (".", "..") for p in parts):
        return S3Error(
            "InvalidArgument", 400, "s3sim stores objects as files: this key cannot be one", key
        )
    if key.endswith("/") or "" in parts:
        return S3Error(
            "InvalidArgument",
            400,
            "s3sim stores objects as files: a key ending in '/' or holding '//' (a folder "
            "marker) cannot be one",
            key,
        )
    return None


def error_xml(error: S3Error, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{error.code}</Code><Message>{escape(error.message)}</Message>"
        + "".join(f"<{name}>{escape(text)}</{name}>" for name, text in error.arguments)
        + f"<Resource>{_xml_text(error.resource)}</Resource><RequestId>{request_id}</RequestId>"
        "</Error>"
    ).encode()


_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """Text for an XML element; characters XML 1.0 cannot hold (a NUL in a refused key)
    percent-encoded, so the error stays readable by every client."""
    return escape(_NOT_XML.sub(lambda m: f"%{ord(m.group()):02X}", text))


def iso(mtime_ns: int) -> str:
    """LastModified in S3's XML form (UTC, milliseconds, Z)."""
    stamp = dt.datetime.fromtimestamp(mtime_ns / 1e9, dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date(mtime_ns: int) -> str:
    stamp = dt.datetime.fromtimestamp(mtime_ns // 1_000_000_000, dt.UTC)
    return stamp.strftime("%a, %d %b %Y %H:%M:%S GMT")


def location_xml(constraint: str) -> bytes:
    """GetBucketLocation: empty for us-east-1, as S3 answers."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="{NS}">'
        f"{escape(constraint)}</LocationConstraint>"
    ).encode()


def buckets_xml(buckets: Sequence[tuple[str, int]], owner: str) -> bytes:
    """ListAllMyBucketsResult: (name, creation time in ns) per bucket."""
    items = "".join(
        f"<Bucket><Name>{escape(name)}</Name><CreationDate>{iso(created)}</CreationDate></Bucket>"
        for name, created in buckets
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="{NS}">'
        f"<Owner><ID>{owner}</ID><DisplayName>s3sim</DisplayName></Owner>"
        f"<Buckets>{items}</Buckets></ListAllMyBucketsResult>"
    ).encode()


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    mtime_ns: int
    etag: str  # MD5 hex, without quotes


@dataclass(frozen=True)
class Page:
    contents: tuple[Entry, ...]
    prefixes: tuple[str, ...]
    truncated: bool
    next_token: str | None


def page(
    entries: Sequence[Entry],
    prefix: str = "",
    delimiter: str = "",
    max_keys: int = MAX_KEYS,
    start_after: str = "",
    token: str | None = None,
) -> Page:
    """One ListObjectsV2 page over `entries` (sorted by key, as S3 lists UTF-8 binary order).

    Common prefixes count towards max-keys, as in S3; the continuation token is opaque to
    clients (here: the last key or prefix returned, base64)."""
    after = max(start_after, decode_token(token) if token else "")
    if max_keys == 0:
        return Page((), (), False, None)
    contents: list[Entry] = []
    prefixes: list[str] = []
    last = ""
    for entry in entries:
        key = entry.key
        if not key.startswith(prefix) or key <= after:
            continue
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if prefixes and prefixes[-1] == common:
                    continue
                if len(contents) + len(prefixes) >= max_keys:
                    return Page(tuple(contents), tuple(prefixes), True, encode_token(last))
                prefixes.append(common)
                last = common + "\U0010ffff"  # skip the rest of this prefix next time
                continue
        if len(contents) + len(prefixes) >= max_keys:
            return Page(tuple(contents), tuple(prefixes), True, encode_token(last))
        contents.append(entry)
        last = key
    return Page(tuple(contents), tuple(prefixes), False, None)


def encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode("utf-8", "surrogatepass")).decode()


def decode_token(token: str) -> str:
    try:
        raw = base64.b64decode(token.encode(), altchars=b"-_", validate=True)
        last = raw.decode("utf-8", "surrogatepass")
        if not last or encode_token(last) != token:
            raise ValueError("not one of ours")
        return last
    except (ValueError, UnicodeDecodeError):
        raise S3Error(
            "InvalidArgument", 400, "The continuation token provided is incorrect"
        ) from None


def list_v2_xml(
    bucket: str,
    result: Page,
    prefix: str,
    delimiter: str,
    max_keys: int,
    encode: bool,
    start_after: str,
    token: str | None,
) -> bytes:
    """ListBucketResult for ListObjectsV2 (encoding-type=url percent-encodes keys)."""
    shown = _shown(encode)
    after = []
    if token:
        after.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    if result.next_token:
        after.append(f"<NextContinuationToken>{result.next_token}</NextContinuationToken>")
    if start_after:
        after.append(f"<StartAfter>{shown(start_after)}</StartAfter>")
    count = len(result.contents) + len(result.prefixes)
    head = [f"<KeyCount>{count}</KeyCount><MaxKeys>{max_keys}</MaxKeys>"]
    return _listing(bucket, result, prefix, delimiter, encode, head, after)


def initiate_xml(bucket: str, key: str, upload_id: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult xmlns="{NS}">'
        f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
        f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>"
    ).encode()


def complete_xml(bucket: str, key: str, etag: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult xmlns="{NS}">'
        f"<Location>/{escape(bucket)}/{escape(key)}</Location><Bucket>{escape(bucket)}</Bucket>"
        f"<Key>{escape(key)}</Key><ETag>&quot;{etag}&quot;</ETag>"
        "</CompleteMultipartUploadResult>"
    ).encode()


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """CompleteMultipartUpload's body: (part number, ETag hex) in order; ValueError if the
    XML is not well formed or the parts are not in ascending order."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)  # expands no external entities (ElementTree never does)
    except ET.ParseError as exc:
        raise ValueError(str(exc)) from None
    parts = []
    for part in root.iter():
        if part.tag.rsplit("}", 1)[-1] != "Part":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in part}
        try:
            number = int(fields.get("PartNumber", ""))
        except ValueError:
            raise ValueError("a Part without a PartNumber") from None
        etag = fields.get("ETag", "").strip().strip('"')
        if not re.fullmatch(r"[0-9a-f]{32}", etag):
            raise ValueError(f"part {number}: bad ETag {etag!r}")
        parts.append((number, etag))
    if not parts or [n for n, _ in parts] != sorted({n for n, _ in parts}):
        raise ValueError("parts must be listed once each, in ascending order")
    return parts


def list_v1_xml(
    bucket: str,
    result: Page,
    prefix: str,
    delimiter: str,
    max_keys: int,
    encode: bool,
    marker: str,
) -> bytes:
    """ListBucketResult for ListObjects (v1): Marker, and NextMarker when a delimiter is
    given (without one, clients continue from the last key)."""
    shown = _shown(encode)
    after = []
    if result.truncated and delimiter:
        last = max([e.key for e in result.contents] + list(result.prefixes))
        after.append(f"<NextMarker>{shown(last)}</NextMarker>")
    head = [f"<Marker>{shown(marker)}</Marker><MaxKeys>{max_keys}</MaxKeys>"]
    return _listing(bucket, result, prefix, delimiter, encode, head, after)


def _shown(encode: bool) -> Callable[[str], str]:
    """Keys and prefixes as XML text, percent-encoded with encoding-type=url."""
    from urllib.parse import quote

    def shown(text: str) -> str:
        return escape(quote(text, safe="/") if encode else text)

    return shown


def _listing(
    bucket: str,
    result: Page,
    prefix: str,
    delimiter: str,
    encode: bool,
    head: list[str],
    after: list[str],
) -> bytes:
    """The ListBucketResult both ListObjects versions share, around their own fields."""
    shown = _shown(encode)
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{NS}">',
        f"<Name>{escape(bucket)}</Name><Prefix>{shown(prefix)}</Prefix>",
        *head,
    ]
    if delimiter:
        parts.append(f"<Delimiter>{shown(delimiter)}</Delimiter>")
    if encode:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(f"<IsTruncated>{'true' if result.truncated else 'false'}</IsTruncated>")
    parts += after
    for e in result.contents:
        parts.append(
            f"<Contents><Key>{shown(e.key)}</Key><LastModified>{iso(e.mtime_ns)}</LastModified>"
            f"<ETag>&quot;{e.etag}&quot;</ETag><Size>{e.size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
        )
    for p in result.prefixes:
        parts.append(f"<CommonPrefixes><Prefix>{shown(p)}</Prefix></CommonPrefixes>")
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


def copy_xml(etag: str, mtime_ns: int) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult xmlns="{NS}">'
        f"<LastModified>{iso(mtime_ns)}</LastModified><ETag>&quot;{etag}&quot;</ETag>"
        "</CopyObjectResult>"
    ).encode()


def parse_delete(body: bytes) -> tuple[bool, list[str]]:
    """DeleteObjects' body: (quiet, keys); ValueError if malformed or over 1,000 keys."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)  # expands no external entities (ElementTree never does)
    except ET.ParseError as exc:
        raise ValueError(str(exc)) from None
    quiet, keys = False, []
    for node in root:
        tag = node.tag.rsplit("}", 1)[-1]
        if tag == "Quiet":
            quiet = (node.text or "").strip().lower() == "true"
        elif tag == "Object":
            key = next((c.text for c in node if c.tag.rsplit("}", 1)[-1] == "Key"), None)
            if key is None:
                raise ValueError("an Object without a Key")
            keys.append(key)
    if not keys or len(keys) > 1000:
        raise ValueError("1 to 1,000 objects per request")
    return quiet, keys


def delete_result_xml(deleted: Sequence[str], errors: Sequence[tuple[str, str, str]]) -> bytes:
    items = [f"<Deleted><Key>{escape(key)}</Key></Deleted>" for key in deleted]
    items += [
        f"<Error><Key>{escape(key)}</Key><Code>{code}</Code><Message>{escape(message)}</Message>"
        "</Error>"
        for key, code, message in errors
    ]
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="{NS}">'
        + "".join(items)
        + "</DeleteResult>"
    ).encode()


def notification_xml(notifications: Sequence[Notification]) -> bytes:
    """GetBucketNotificationConfiguration: the bucket's Lambda rules from config.yaml, in
    S3's shape (CloudFunctionConfiguration, Filter/S3Key/FilterRule)."""
    items = []
    for n in notifications:
        events = "".join(f"<Event>{escape(e)}</Event>" for e in n.events)
        rules = "".join(
            f"<FilterRule><Name>{name}</Name><Value>{escape(value)}</Value></FilterRule>"
            for name, value in (("Prefix", n.prefix), ("Suffix", n.suffix))
            if value
        )
        filter_xml = f"<Filter><S3Key>{rules}</S3Key></Filter>" if rules else ""
        items.append(
            f"<CloudFunctionConfiguration><Id>{escape(n.id)}</Id>{filter_xml}"
            f"<CloudFunction>{escape(str(n.function_arn))}</CloudFunction>{events}"
            "</CloudFunctionConfiguration>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<NotificationConfiguration xmlns="{NS}">'
        + "".join(items)
        + "</NotificationConfiguration>"
    ).encode()


WHOLE = (-1, -1)  # byte_range: the Range header is ignored, the whole object is sent


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-`, `bytes=-n` -> (first, last) inclusive; WHOLE when S3 ignores
    the header (another unit, several ranges, a malformed one); None if unsatisfiable."""
    unit, sep, spec = header.strip().partition("=")
    if unit.strip() != "bytes" or not sep or "," in spec:
        return WHOLE
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash or not (first_text or last_text):
        return WHOLE
    if not all(t.isdigit() for t in (first_text, last_text) if t):
        return WHOLE
    if not first_text:
        length = int(last_text)
        return (max(0, size - length), size - 1) if length > 0 and size > 0 else None
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and first > last:
        return WHOLE  # RFC 9110: an invalid range is ignored
    if first >= size:
        return None
    return first, min(last, size - 1)
