"""The S3 API's multipart extras (see `api.py`): ListParts, ListMultipartUploads and
UploadPartCopy, over the upload folders in `.s3sim/uploads/<upload id>/` (a `target` file
holding `bucket/key`, whose mtime is the initiation time, and one `NNNNN-<md5>` file per part).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from simulator.core import s3_multipart
from simulator.core.s3_api import S3Error

_CHUNK = 1 << 20
_PART = re.compile(r"(\d{5})-([0-9a-f]{32})")


def new_upload_id() -> str:
    """32 hex digits: the creation time in ns, then random ones. Ids sort as the uploads were
    initiated (ListMultipartUploads lists a key's uploads in that order; file times are too
    coarse to tell two quick ones apart)."""
    return f"{time.time_ns():016x}{secrets.token_hex(8)}"


def list_uploads(uploads_dir: Path, bucket: str, query: dict[str, str]) -> web.Response:
    max_uploads = s3_multipart.count(
        query.get("max-uploads"), "max-uploads", s3_multipart.MAX_UPLOADS
    )
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    key_marker, id_marker = query.get("key-marker", ""), query.get("upload-id-marker", "")
    page = s3_multipart.uploads_page(
        _uploads(uploads_dir, bucket), prefix, delimiter, key_marker, id_marker, max_uploads
    )
    encode = query.get("encoding-type") == "url"
    body = s3_multipart.list_uploads_xml(
        bucket, page, prefix, delimiter, key_marker, id_marker, max_uploads, encode
    )
    return web.Response(body=body, content_type="application/xml")


def _uploads(uploads_dir: Path, bucket: str) -> list[s3_multipart.Upload]:
    found = []
    for entry in os.scandir(uploads_dir) if uploads_dir.is_dir() else ():
        try:
            target = Path(entry.path, "target")
            owner, _, key = target.read_text().partition("/")
            initiated_ns = target.stat().st_mtime_ns
        except OSError:
            continue  # completed or aborted meanwhile
        if owner == bucket:
            found.append(s3_multipart.Upload(key, entry.name, initiated_ns))
    return found


def list_parts(
    parts_dir: Path, bucket: str, key: str, upload_id: str, query: dict[str, str]
) -> web.Response:
    max_parts = s3_multipart.count(query.get("max-parts"), "max-parts", s3_multipart.MAX_PARTS)
    try:
        marker = int(query.get("part-number-marker", "0"))
    except ValueError:
        marker = -1
    if marker < 0:
        raise S3Error(
            "InvalidArgument",
            400,
            "Provided part-number-marker not an integer or within integer range",
        )
    body = s3_multipart.list_parts_xml(bucket, key, upload_id, _parts(parts_dir), marker, max_parts)
    return web.Response(body=body, content_type="application/xml")


def _parts(parts_dir: Path) -> list[s3_multipart.Part]:
    parts = []
    for entry in os.scandir(parts_dir):
        found = _PART.fullmatch(entry.name)
        if found is None:
            continue  # `target`, or a part still being received
        try:
            st = entry.stat()
        except OSError:
            continue  # replaced by the same part uploaded again
        parts.append(s3_multipart.Part(int(found[1]), found[2], st.st_size, st.st_mtime_ns))
    return parts


def part_number(query: dict[str, str]) -> int:
    try:
        number = int(query["partNumber"])
    except ValueError:
        number = 0
    if not 1 <= number <= 10000:
        raise S3Error("InvalidArgument", 400, "Part number must be an integer between 1 and 10000")
    return number


def upload_part_copy(
    parts_dir: Path, number: int, source: Path, source_key: str, range_header: str | None
) -> web.Response:
    """UploadPartCopy: the source's bytes (or x-amz-copy-source-range of them) become part
    `number`, replacing an earlier upload of that part."""
    try:
        f = open(source, "rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise S3Error("NoSuchKey", 404, "The specified key does not exist.", source_key) from None
    tmp = parts_dir / f".part-{number}-{uuid.uuid4().hex}.tmp"
    try:
        with f, open(tmp, "wb") as out:
            size = os.fstat(f.fileno()).st_size
            first, last = s3_multipart.copy_range(range_header, size)
            md5 = _copy(f, out, first, last - first + 1)
        name = f"{number:05d}-{md5}"
        os.replace(tmp, parts_dir / name)
    finally:
        tmp.unlink(missing_ok=True)
    for old in parts_dir.glob(f"{number:05d}-*"):
        if old.name != name:
            old.unlink(missing_ok=True)
    body = s3_multipart.copy_part_xml(md5, (parts_dir / name).stat().st_mtime_ns)
    return web.Response(body=body, content_type="application/xml")


def _copy(f: BinaryIO, out: BinaryIO, first: int, length: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    f.seek(first)
    while length > 0 and (chunk := f.read(min(_CHUNK, length))):
        digest.update(chunk)
        out.write(chunk)
        length -= len(chunk)
    return digest.hexdigest()
