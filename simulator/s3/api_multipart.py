"""The S3 API's multipart uploads (see `api.py`): Create, UploadPart, UploadPartCopy, Complete,
Abort, ListParts and ListMultipartUploads, over the upload folders in
`.s3sim/uploads/<upload id>/` (a `target` file holding `bucket/key`, whose mtime is the
initiation time, a `meta.json` with the attributes the object gets at Complete, and one
`NNNNN-<md5>` file per part).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from simulator.core import s3_api, s3_meta, s3_multipart
from simulator.core.s3_api import S3Error
from simulator.core.s3_meta import ObjectMeta
from simulator.s3 import api_digests
from simulator.s3.api_digests import CHUNK
from simulator.s3.api_object_writes import ObjectWrites
from simulator.s3.api_writes import Ids

_PART = re.compile(r"(\d{5})-([0-9a-f]{32})")
_UPLOAD_META = "meta.json"  # in an upload's folder: the attributes CreateMultipartUpload got


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
    while length > 0 and (chunk := f.read(min(CHUNK, length))):
        digest.update(chunk)
        out.write(chunk)
        length -= len(chunk)
    return digest.hexdigest()


class Multipart:
    """CreateMultipartUpload, UploadPart, CompleteMultipartUpload and AbortMultipartUpload;
    a part's body is received, and the finished object placed, as `objects` does a PutObject's.
    Used on the server's event loop only."""

    def __init__(self, uploads_dir: Path, objects: ObjectWrites) -> None:
        self._uploads = uploads_dir
        self._objects = objects

    def upload_dir(self, upload_id: str, bucket: str, key: str) -> Path:
        """Parts live under the state folder, outside the bucket: nothing fires before
        Complete."""
        folder = self._uploads / upload_id
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id) or not folder.is_dir():
            raise S3Error(
                "NoSuchUpload",
                404,
                "The specified upload does not exist. The upload ID may be invalid, or the "
                "upload may have been aborted or completed.",
                upload_id,
            )
        if (folder / "target").read_text() != f"{bucket}/{key}":
            raise S3Error("NoSuchUpload", 404, "The specified upload does not exist.", upload_id)
        return folder

    def create(self, request: web.BaseRequest, bucket: str, key: str) -> web.Response:
        """The upload's folder, its target and the attributes the object gets at Complete."""
        stored, user = s3_meta.from_request(request.headers)
        tags = s3_meta.parse_tagging_header(request.headers.get("x-amz-tagging", ""))
        upload_id = new_upload_id()
        folder = self._uploads / upload_id
        folder.mkdir(parents=True)
        (folder / _UPLOAD_META).write_text(
            ObjectMeta(headers=stored, user=user, tags=tags).to_json()
        )
        (folder / "target").write_text(f"{bucket}/{key}")
        body = s3_api.initiate_xml(bucket, key, upload_id)
        return web.Response(body=body, content_type="application/xml")

    async def upload_part(
        self, request: web.BaseRequest, bucket: str, key: str, query: dict[str, str]
    ) -> web.Response:
        folder = self.upload_dir(query["uploadId"], bucket, key)
        number = part_number(query)
        tmp = folder / f".part-{number}-{uuid.uuid4().hex}.tmp"
        try:
            md5, checksums = await self._objects.receive(request, key, tmp)
            os.replace(tmp, folder / f"{number:05d}-{md5.hexdigest()}")
        finally:
            tmp.unlink(missing_ok=True)
        for old in folder.glob(f"{number:05d}-*"):
            if old.name != f"{number:05d}-{md5.hexdigest()}":
                old.unlink(missing_ok=True)  # a part uploaded again replaces the earlier one
        return web.Response(headers=api_digests.headers(md5.hexdigest(), checksums))

    async def complete(
        self,
        request: web.BaseRequest,
        folder: Path,
        bucket: str,
        key: str,
        upload_id: str,
        ids: Ids,
    ) -> web.Response:
        parts_dir = self.upload_dir(upload_id, bucket, key)
        try:
            listed = s3_api.parse_complete(await request.read())
        except ValueError as exc:
            message = f"The XML you provided was not well-formed: {exc}"
            raise S3Error("MalformedXML", 400, message) from None
        pending = parts_dir / _UPLOAD_META
        meta = ObjectMeta.from_json(pending.read_text()) if pending.exists() else ObjectMeta()
        files = []
        for number, etag in listed:
            part = parts_dir / f"{number:05d}-{etag}"
            if not part.is_file():
                raise S3Error(
                    "InvalidPart",
                    400,
                    "One or more of the specified parts could not be found. The part may not "
                    "have been uploaded, or the specified entity tag may not match the part's "
                    "entity tag.",
                    key,
                )
            files.append(part)
        tmp = folder / f".s3sim-complete-{uuid.uuid4().hex}.tmp"
        digests, whole = hashlib.md5(usedforsecurity=False), hashlib.md5(usedforsecurity=False)
        try:
            with open(tmp, "wb") as out:
                for part, (_, etag) in zip(files, listed, strict=True):
                    digests.update(bytes.fromhex(etag))
                    with open(part, "rb") as f:
                        while data := f.read(CHUNK):
                            whole.update(data)
                            out.write(data)
            etag = f"{digests.hexdigest()}-{len(listed)}"
            sizes = tuple(part.stat().st_size for part in files)
            meta = replace(meta, etag=etag, parts=sizes)
            event = "ObjectCreated:CompleteMultipartUpload"
            self._objects.place(
                bucket, key, tmp, folder / key, meta, event, ids, md5=whole.hexdigest()
            )
        finally:
            tmp.unlink(missing_ok=True)
        shutil.rmtree(parts_dir, ignore_errors=True)
        body = s3_api.complete_xml(bucket, key, etag)
        return web.Response(body=body, content_type="application/xml")

    def abort(self, bucket: str, key: str, upload_id: str) -> web.Response:
        shutil.rmtree(self.upload_dir(upload_id, bucket, key), ignore_errors=True)
        return web.Response(status=204)
