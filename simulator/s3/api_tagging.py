"""GetObjectTagging, PutObjectTagging and DeleteObjectTagging (`?tagging` on an object).

The tag set is part of the object's stored attributes (`metadata.MetadataStore`); tagging a
file that was dropped by hand gives it a row with S3's defaults and those tags. The file is
not touched, so no object event fires.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aiohttp import web

from simulator.core import s3_api, s3_meta
from simulator.core.s3_meta import ObjectMeta
from simulator.s3.metadata import MetadataStore


def _stat(path: Path, key: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise s3_api.no_such_key(key) from None
    if not stat.S_ISREG(st.st_mode):
        raise s3_api.no_such_key(key)
    return st


async def handle(
    request: web.BaseRequest, store: MetadataStore, bucket: str, key: str, path: Path
) -> web.Response:
    st = _stat(path, key)
    meta = store.get(bucket, key, st) or ObjectMeta()
    if request.method == "GET":
        body = s3_meta.tagging_xml(meta.tags)
        return web.Response(body=body, content_type="application/xml")
    if request.method == "PUT":
        tags = s3_meta.parse_tagging_xml(await request.read())
        store.put(bucket, key, _stat(path, key), meta.with_tags(tags))
        return web.Response()
    if request.method == "DELETE":
        if meta.tags:
            store.put(bucket, key, st, meta.with_tags(()))
        return web.Response(status=204)
    raise s3_api.S3Error("MethodNotAllowed", 405, "The specified method is not allowed.")
