"""Multipart uploads' listings and UploadPartCopy's range, as S3 sends them. Pure.

ListParts (`ListPartsResult`), ListMultipartUploads (`ListMultipartUploadsResult`, uploads
sorted by key and then by upload id, which begins with the initiation time; with prefix,
delimiter, key-marker and upload-id-marker, max-uploads) and `CopyPartResult`, in the element
order of the examples in S3's API reference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

from simulator.core.s3_api import NS, S3Error, iso

MAX_PARTS = 1000
MAX_UPLOADS = 1000
OWNER = "<ID>s3sim</ID><DisplayName>s3sim</DisplayName>"
_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


@dataclass(frozen=True)
class Part:
    number: int
    etag: str  # MD5 hex, without quotes
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Upload:
    key: str
    upload_id: str
    initiated_ns: int


@dataclass(frozen=True)
class UploadsPage:
    uploads: tuple[Upload, ...]
    prefixes: tuple[str, ...]
    truncated: bool


def count(query_value: str | None, name: str, default: int) -> int:
    """max-parts / max-uploads: a non-negative integer, capped at S3's 1,000."""
    try:
        value = int(query_value) if query_value is not None else default
    except ValueError:
        value = -1
    if value < 0:
        raise S3Error(
            "InvalidArgument", 400, f"Provided {name} not an integer or within integer range"
        )
    return min(value, default)


def list_parts_xml(
    bucket: str, key: str, upload_id: str, parts: Sequence[Part], marker: int, max_parts: int
) -> bytes:
    """One ListParts page: the parts numbered above `marker`, at most `max_parts`."""
    after = sorted((p for p in parts if p.number > marker), key=lambda p: p.number)
    shown, truncated = after[:max_parts], len(after) > max_parts
    next_marker = shown[-1].number if shown else 0
    items = "".join(
        f"<Part><PartNumber>{p.number}</PartNumber><LastModified>{iso(p.mtime_ns)}"
        f"</LastModified><ETag>&quot;{p.etag}&quot;</ETag><Size>{p.size}</Size></Part>"
        for p in shown
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult xmlns="{NS}">'
        f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
        f"<UploadId>{upload_id}</UploadId><Initiator>{OWNER}</Initiator><Owner>{OWNER}</Owner>"
        f"<StorageClass>STANDARD</StorageClass><PartNumberMarker>{marker}</PartNumberMarker>"
        f"<NextPartNumberMarker>{next_marker}</NextPartNumberMarker>"
        f"<MaxParts>{max_parts}</MaxParts>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{items}"
        "</ListPartsResult>"
    ).encode()


def uploads_page(
    uploads: Sequence[Upload],
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    upload_id_marker: str = "",
    max_uploads: int = MAX_UPLOADS,
) -> UploadsPage:
    """The uploads after the markers (sorted by key, then initiation), keys under a common
    prefix folded into it; prefixes count towards max-uploads, as keys do in a listing. The
    upload-id-marker counts only with a key-marker (as S3 documents)."""
    # a key's uploads in the order they were initiated (their ids begin with the time in ns)
    ordered = sorted(uploads, key=lambda u: (_bytes(u.key), u.upload_id))
    found: list[Upload] = []
    prefixes: list[str] = []
    past_id_marker = False  # among the uploads of the key-marker's key
    for upload in ordered:
        if not upload.key.startswith(prefix) or _bytes(upload.key) < _bytes(key_marker):
            continue
        if key_marker and upload.key == key_marker:
            if not (upload_id_marker and past_id_marker):
                past_id_marker = past_id_marker or upload.upload_id == upload_id_marker
                continue
        common = _common_prefix(upload.key, prefix, delimiter)
        if common is not None and (common == key_marker or (prefixes and prefixes[-1] == common)):
            continue
        if len(found) + len(prefixes) >= max_uploads:
            return UploadsPage(tuple(found), tuple(prefixes), True)
        if common is not None:
            prefixes.append(common)
        else:
            found.append(upload)
    return UploadsPage(tuple(found), tuple(prefixes), False)


def _bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")  # S3 sorts keys in UTF-8 binary order


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    cut = key.find(delimiter, len(prefix))
    return key[: cut + len(delimiter)] if cut >= 0 else None


def list_uploads_xml(
    bucket: str,
    page: UploadsPage,
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
    encode: bool = False,
) -> bytes:
    """ListMultipartUploadsResult; with encoding-type=url, keys, prefixes, the delimiter and
    the key markers percent-encoded (as S3 documents) and EncodingType given."""

    def shown(text: str) -> str:
        return escape(quote(text, safe="/") if encode else text)

    last_key = last_id = ""
    if page.uploads:
        last_key, last_id = page.uploads[-1].key, page.uploads[-1].upload_id
    if page.prefixes and page.prefixes[-1] > last_key:
        last_key, last_id = page.prefixes[-1], ""
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="{NS}">',
        f"<Bucket>{escape(bucket)}</Bucket><KeyMarker>{shown(key_marker)}</KeyMarker>",
        f"<UploadIdMarker>{escape(upload_id_marker)}</UploadIdMarker>",
        f"<NextKeyMarker>{shown(last_key)}</NextKeyMarker><Prefix>{shown(prefix)}</Prefix>",
    ]
    if delimiter:
        parts.append(f"<Delimiter>{shown(delimiter)}</Delimiter>")
    parts.append(f"<NextUploadIdMarker>{last_id}</NextUploadIdMarker>")
    parts.append(f"<MaxUploads>{max_uploads}</MaxUploads>")
    parts.append(f"<IsTruncated>{'true' if page.truncated else 'false'}</IsTruncated>")
    for u in page.uploads:
        parts.append(
            f"<Upload><Key>{shown(u.key)}</Key><UploadId>{u.upload_id}</UploadId>"
            f"<Initiator>{OWNER}</Initiator><Owner>{OWNER}</Owner>"
            f"<StorageClass>STANDARD</StorageClass><Initiated>{iso(u.initiated_ns)}</Initiated>"
            "</Upload>"
        )
    for p in page.prefixes:
        parts.append(f"<CommonPrefixes><Prefix>{shown(p)}</Prefix></CommonPrefixes>")
    if encode:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append("</ListMultipartUploadsResult>")
    return "".join(parts).encode()


def copy_range(header: str | None, size: int) -> tuple[int, int]:
    """x-amz-copy-source-range -> (first, last) inclusive; the whole source without one.
    Unlike a GET's Range, a malformed or unsatisfiable one is an error."""
    if header is None:
        return 0, size - 1
    found = _RANGE.fullmatch(header.strip())
    if found is None:
        raise S3Error(
            "InvalidArgument",
            400,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy",
            arguments=(("ArgumentName", "x-amz-copy-source-range"), ("ArgumentValue", header)),
        )
    first, last = int(found.group(1)), int(found.group(2))
    if first > last or last >= size:
        message = f"Range specified is not valid for source object of size: {size}"
        raise S3Error("InvalidArgument", 400, message)
    return first, last


def copy_part_xml(etag: str, mtime_ns: int) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CopyPartResult xmlns="{NS}">'
        f"<LastModified>{iso(mtime_ns)}</LastModified><ETag>&quot;{etag}&quot;</ETag>"
        "</CopyPartResult>"
    ).encode()
