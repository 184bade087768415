"""GetObjectTagging, PutObjectTagging and DeleteObjectTagging (`?tagging` on an object).

The tag set is part of the object's stored attributes (`metadata.MetadataStore`); tagging a
file that was dropped by hand gives it a row with S3's defaults and those tags. The file is
not touched, so the watcher sees nothing: the `ObjectTagging:Put` / `:Delete` event S3 sends
is handed to the intake as a notice (`ApiWrites.notify`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from simulator.core import s3_api, s3_meta
from simulator.core.s3_events import ObjectChange, Origin
from simulator.core.s3_meta import ObjectMeta
from simulator.s3.api_writes import ApiWrites, Ids
from simulator.s3.metadata import MetadataStore


def _stat(path: Path, key: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise s3_api.no_such_key(key) from None
    if not stat.S_ISREG(st.st_mode):
        raise s3_api.no_such_key(key)
    return st


class Tagging:
    """`etag_of` gives the MD5 of a file that has no stored ETag; `verify_body` checks a
    body against its Content-MD5 / x-amz-checksum-* headers (S3's BadDigest)."""

    def __init__(
        self,
        store: MetadataStore,
        writes: ApiWrites,
        etag_of: Callable[[Path, os.stat_result], str],
        verify_body: Callable[[web.BaseRequest, str, bytes], None],
    ) -> None:
        self._store, self._writes = store, writes
        self._etag_of, self._verify_body = etag_of, verify_body

    async def handle(
        self,
        request: web.BaseRequest,
        bucket: str,
        key: str,
        path: Path,
        ids: Ids,
    ) -> web.Response:
        st = _stat(path, key)
        if request.method == "GET":
            meta = self._store.get(bucket, key, st) or ObjectMeta()
            body = s3_meta.tagging_xml(meta.tags)
            return web.Response(body=body, content_type="application/xml")
        if request.method == "PUT":
            tags = s3_meta.parse_tagging_xml(await self._body(request, key))
            event, status = "ObjectTagging:Put", 200
        elif request.method == "DELETE":
            tags, event, status = (), "ObjectTagging:Delete", 204
        else:
            raise s3_api.S3Error("MethodNotAllowed", 405, "The specified method is not allowed.")
        st = _stat(path, key)  # the file as it is now (the body was read meanwhile)
        meta = self._store.get(bucket, key, st) or ObjectMeta()
        self._store.put(bucket, key, st, meta.with_tags(tags))
        etag = meta.etag or self._etag_of(path, st)
        origin = Origin(event, *ids, etag=etag)
        self._writes.notify(ObjectChange(bucket, key, "tagging", st.st_size, etag, origin=origin))
        return web.Response(status=status)

    async def _body(self, request: web.BaseRequest, key: str) -> bytes:
        """PutObjectTagging's body, which S3 takes only with an integrity header
        (botocore's model marks the operation `requestChecksumRequired`)."""
        names = {name.lower() for name in request.headers}
        if "content-md5" not in names and not any(
            n.startswith("x-amz-checksum-") or n == "x-amz-trailer" for n in names
        ):
            raise s3_api.S3Error(
                "InvalidRequest", 400, "Missing required header for this request: Content-MD5"
            )
        body = await request.read()
        self._verify_body(request, key, body)
        return body
