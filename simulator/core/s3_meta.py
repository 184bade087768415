"""What S3 keeps with an object besides its bytes, and the rules on it. Pure.

The stored headers (Content-Type and the other representation headers, `x-amz-meta-*`),
the tag set, the checksums and the ETag S3 reported for the write (a multipart upload's
`md5-of-part-md5s-N` is no MD5 of the file); the tagging documents and their limits; the
conditional headers of GetObject/HeadObject/CopyObject and their precedence; the
`response-*` overrides of GetObject.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import quote
from xml.sax.saxutils import escape

from simulator.core.s3_api import NS, S3Error

# The representation headers S3 stores with an object and answers on Get/Head (PutObject's
# `ContentType`, `ContentEncoding`, ... members), in the order S3 lists them.
STORED = (
    "Cache-Control",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Type",
    "Expires",
)
DEFAULT_TYPE = "binary/octet-stream"  # what S3 answers for an object stored without one
META_PREFIX = "x-amz-meta-"
MAX_USER_METADATA = 2048  # bytes of x-amz-meta-* names and values, as S3 counts them
MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
_TAG_CHARS = "_.:/=+-@ "  # besides letters and digits (S3's tag restrictions)

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ObjectMeta:
    """One object's stored attributes. `etag` is S3's, without quotes ("" = the MD5 of the
    file, computed when asked); `parts` the sizes of a multipart upload's parts."""

    etag: str = ""
    headers: Pairs = ()
    user: Pairs = ()  # x-amz-meta-* names without the prefix, lower-case
    tags: Pairs = ()
    checksums: Pairs = ()  # ("x-amz-checksum-crc32", base64 value)
    parts: tuple[int, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(
            {
                "etag": self.etag,
                "headers": self.headers,
                "user": self.user,
                "tags": self.tags,
                "checksums": self.checksums,
                "parts": self.parts,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ObjectMeta:
        data = json.loads(text)

        def pairs(name: str) -> Pairs:
            return tuple((str(k), str(v)) for k, v in data.get(name, ()))

        return cls(
            str(data.get("etag", "")),
            pairs("headers"),
            pairs("user"),
            pairs("tags"),
            pairs("checksums"),
            tuple(int(n) for n in data.get("parts", ())),
        )

    def with_tags(self, tags: Pairs) -> ObjectMeta:
        return replace(self, tags=tags)


def from_request(headers: Mapping[str, str]) -> tuple[Pairs, Pairs]:
    """(stored headers, user metadata) of a PutObject, CreateMultipartUpload or a CopyObject
    with `x-amz-metadata-directive: REPLACE`. `aws-chunked` is the upload's transfer coding,
    not the object's: S3 keeps the rest of Content-Encoding."""
    stored = []
    for name in STORED:
        value = headers.get(name)
        if name == "Content-Encoding" and value is not None:
            codings = [c.strip() for c in value.split(",") if c.strip().lower() != "aws-chunked"]
            value = ",".join(codings) or None
        if value is not None:
            stored.append((name, value))
    user = sorted(
        (k.lower().removeprefix(META_PREFIX), v)
        for k, v in headers.items()
        if k.lower().startswith(META_PREFIX)
    )
    if sum(len(k) + len(v.encode()) for k, v in user) > MAX_USER_METADATA:
        raise S3Error(
            "MetadataTooLarge",
            400,
            "Your metadata headers exceed the maximum allowed metadata size.",
        )
    return tuple(stored), tuple(user)


def response_headers(meta: ObjectMeta, checksums: bool) -> dict[str, str]:
    """The stored headers as Get/Head answer them (Content-Type defaulted, x-amz-meta-*,
    x-amz-tagging-count when tagged, checksums with `x-amz-checksum-mode: ENABLED`)."""
    out = {"Content-Type": DEFAULT_TYPE, **dict(meta.headers)}
    for name, value in meta.user:
        out[META_PREFIX + name] = value
    if meta.tags:
        out["x-amz-tagging-count"] = str(len(meta.tags))
    if checksums and meta.checksums:
        out.update(dict(meta.checksums))
        out["x-amz-checksum-type"] = "FULL_OBJECT"
    return out


OVERRIDES = {
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
    "response-content-language": "Content-Language",
    "response-content-type": "Content-Type",
    "response-expires": "Expires",
}


def overrides(query: Mapping[str, str]) -> dict[str, str]:
    """GetObject's `response-*` parameters: headers of this response only."""
    return {header: query[param] for param, header in OVERRIDES.items() if param in query}


# -- tags -------------------------------------------------------------------------------------
def _invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", 400, message)


def _allowed(text: str) -> bool:
    return all(c.isalnum() or c in _TAG_CHARS for c in text)


def _utf16_units(text: str) -> int:
    """S3 counts a tag's characters in UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def validate_tags(tags: Sequence[tuple[str, str]]) -> Pairs:
    """The tag set, checked with S3's limits and messages, sorted by key."""
    if len(tags) > MAX_TAGS:
        raise S3Error("BadRequest", 400, "Object tags cannot be greater than 10")
    seen = set()
    for key, value in tags:
        if key in seen:
            raise _invalid_tag("Cannot provide multiple Tags with the same key")
        seen.add(key)
        if _utf16_units(key) > MAX_TAG_KEY:
            raise _invalid_tag("The TagKey you have provided is too long, max 128")
        if _utf16_units(value) > MAX_TAG_VALUE:
            raise _invalid_tag("The TagValue you have provided is too long, max 256")
        if not key or not _allowed(key):
            raise _invalid_tag("The TagKey you have provided is invalid")
        if not _allowed(value):
            raise _invalid_tag("The TagValue you have provided is invalid")
        if key.lower().startswith("aws:"):
            raise _invalid_tag("Your TagKey cannot be prefixed with aws:")
    return tuple(sorted(tags))


def parse_tagging_header(text: str) -> Pairs:
    """`x-amz-tagging: k1=v1&k2=v2` (URL query encoding; a key without `=` has the empty
    value)."""
    from urllib.parse import unquote_plus

    pairs = []
    for item in filter(None, text.split("&")):
        if item.count("=") > 1:
            raise S3Error(
                "InvalidArgument",
                400,
                "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL "
                "query parameters without tag name duplicates.",
            )
        key, _, value = item.partition("=")
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return validate_tags(pairs)


def parse_tagging_xml(body: bytes) -> Pairs:
    """PutObjectTagging's `<Tagging><TagSet><Tag><Key/><Value/></Tag>...` (namespace or
    not); MalformedXML when it is not that document."""
    import xml.etree.ElementTree as ET

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    try:
        root = ET.fromstring(body)  # expands no external entities (ElementTree never does)
        if local(root.tag) != "Tagging":
            raise ValueError("the root is not Tagging")
        sets = [n for n in root if local(n.tag) == "TagSet"]
        if len(sets) != 1:
            raise ValueError("one TagSet")
        tags = []
        for tag in sets[0]:
            fields = {local(c.tag): (c.text or "") for c in tag}
            if local(tag.tag) != "Tag" or "Key" not in fields or "Value" not in fields:
                raise ValueError("a Tag holds a Key and a Value")
            tags.append((fields["Key"], fields["Value"]))
    except (ET.ParseError, ValueError):
        raise S3Error(
            "MalformedXML",
            400,
            "The XML you provided was not well-formed or did not validate against our "
            "published schema",
        ) from None
    return validate_tags(tags)


def tagging_xml(tags: Pairs) -> bytes:
    items = "".join(f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in tags)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Tagging xmlns="{NS}">'
        f"<TagSet>{items}</TagSet></Tagging>"
    ).encode()


def tagging_header(tags: Pairs) -> str:
    """The tag set as `x-amz-tagging` carries it."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags)


# -- conditions -------------------------------------------------------------------------------
NOT_MODIFIED = 304
PRECONDITION_FAILED = S3Error(
    "PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold"
)


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {t.strip().removeprefix("W/").strip('"') for t in header.split(",")}
    return "*" in wanted or etag in wanted


def _date(header: str | None) -> dt.datetime | None:
    """An HTTP date; None when absent or not a date (S3 then ignores the condition)."""
    if header is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(header).astimezone(dt.UTC)
    except (TypeError, ValueError):
        return None


def evaluate(headers: Mapping[str, str], etag: str, mtime_ns: int, prefix: str = "") -> int | None:
    """GetObject/HeadObject's conditions, in RFC 9110's order, which S3 follows: If-Match
    (when it holds, If-Unmodified-Since is not consulted), If-Unmodified-Since, If-None-Match
    (when present, If-Modified-Since is not consulted), If-Modified-Since. Raises 412
    PreconditionFailed; returns NOT_MODIFIED (304) or None. With `prefix`
    ("x-amz-copy-source-") CopyObject's source conditions, where every failure is a 412."""
    modified = dt.datetime.fromtimestamp(mtime_ns // 1_000_000_000, dt.UTC)
    given = {k.lower(): v for k, v in headers.items()}  # field names are case-insensitive
    if_match = given.get(prefix + "if-match")
    if if_match is not None:
        if not _etag_matches(if_match, etag):
            raise PRECONDITION_FAILED
    else:
        since = _date(given.get(prefix + "if-unmodified-since"))
        if since is not None and modified > since:
            raise PRECONDITION_FAILED
    if_none_match = given.get(prefix + "if-none-match")
    if if_none_match is not None:
        failed = _etag_matches(if_none_match, etag)
    else:
        since = _date(given.get(prefix + "if-modified-since"))
        failed = since is not None and modified <= since
    if failed and prefix:
        raise PRECONDITION_FAILED
    return NOT_MODIFIED if failed else None


# -- checksums --------------------------------------------------------------------------------
CHECKSUM_LENGTHS = {  # bytes of each algorithm's digest: a value of another length is invalid
    "x-amz-checksum-crc32": 4,
    "x-amz-checksum-crc32c": 4,
    "x-amz-checksum-crc64nvme": 8,
    "x-amz-checksum-sha1": 20,
    "x-amz-checksum-sha256": 32,
    "x-amz-checksum-sha512": 64,
    "x-amz-checksum-xxhash64": 8,
    "x-amz-checksum-xxhash3": 8,
    "x-amz-checksum-xxhash128": 16,
}


def checksum_problem(name: str, value: str, trailing: bool = False) -> S3Error | None:
    """A checksum header (or trailer) whose value is not the base64 of a digest of its
    algorithm's size: S3's InvalidRequest."""
    import base64
    import binascii

    try:
        ok = len(base64.b64decode(value, validate=True)) == CHECKSUM_LENGTHS.get(name, -1)
    except (binascii.Error, ValueError):
        ok = False
    if ok:
        return None
    where = "trailing header" if trailing else "header"
    return S3Error("InvalidRequest", 400, f"Value for {name} {where} is invalid.")


def part_range(meta: ObjectMeta, number_text: str, size: int) -> tuple[int, int] | None:
    """GetObject's `partNumber`: the (first, last) bytes of that part of a multipart upload;
    None for part 1 of an object uploaded in one piece (the whole object)."""
    try:
        number = int(number_text)
    except ValueError:
        number = 0
    if not 1 <= number <= 10000:
        raise S3Error("InvalidArgument", 400, "Part number must be an integer between 1 and 10000")
    if not meta.parts and number == 1:
        return None
    if number > len(meta.parts):
        raise S3Error("InvalidPartNumber", 416, "The requested partnumber is not satisfiable")
    first = sum(meta.parts[: number - 1])
    return first, min(size, first + meta.parts[number - 1]) - 1


def copied(headers: Mapping[str, str], source: ObjectMeta, same: bool) -> ObjectMeta:
    """CopyObject's attributes: the source's (`x-amz-metadata-directive` / `-tagging-directive`
    COPY, the default) or the request's (REPLACE). Copying an object onto itself must change
    something, as in S3."""
    directives = []
    for name in ("x-amz-metadata-directive", "x-amz-tagging-directive"):
        value = headers.get(name, "COPY").upper()
        if value not in ("COPY", "REPLACE"):
            what = "metadata" if "metadata" in name else "tagging"
            raise S3Error("InvalidArgument", 400, f"Unknown {what} directive.")
        directives.append(value == "REPLACE")
    replace_meta, replace_tags = directives
    if same and not replace_meta:
        raise S3Error(
            "InvalidRequest",
            400,
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location "
            "or encryption attributes.",
        )
    stored, user = from_request(headers) if replace_meta else (source.headers, source.user)
    tags = parse_tagging_header(headers.get("x-amz-tagging", "")) if replace_tags else source.tags
    return ObjectMeta(headers=stored, user=user, tags=tags)
