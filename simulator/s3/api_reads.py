"""The S3 API's object reads (see `api.py`): GetObject and HeadObject, with conditions
(If-Match, If-None-Match, If-(Un)Modified-Since), a Range or a partNumber, and the bytes sent
with sendfile(2).
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from pathlib import Path
from typing import Any

from aiohttp import web

from simulator.core import s3_api, s3_meta
from simulator.core.s3_api import S3Error
from simulator.core.s3_meta import ObjectMeta
from simulator.s3.api_digests import CHUNK, ETags
from simulator.s3.metadata import MetadataStore

PARAMS = {"versionId", "partNumber"} | {
    f"response-{name}"
    for name in (
        "content-type",
        "content-language",
        "expires",
        "cache-control",
        "content-disposition",
        "content-encoding",
    )
}  # the query parameters GetObject and HeadObject take


class Reads:
    """Used on the server's event loop only."""

    def __init__(self, meta: MetadataStore, etags: ETags) -> None:
        self._meta = meta
        self._etags = etags

    async def get(
        self,
        request: web.BaseRequest,
        path: Path,
        bucket: str,
        key: str,
        query: dict[str, str],
        head: bool,
    ) -> web.StreamResponse:
        """One open file answers the whole request (its stat, ETag and bytes): a file
        replaced meanwhile is served whole, old or new, never torn."""
        try:
            f = open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise s3_api.no_such_key(key) from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise s3_api.no_such_key(key) from None
            raise
        with f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise s3_api.no_such_key(key)
            meta = self._meta.get(bucket, key, st) or ObjectMeta()
            etag = meta.etag or self._etags.of_file(f, st)
            validators = {"ETag": f'"{etag}"', "Last-Modified": s3_api.http_date(st.st_mtime_ns)}
            if s3_meta.evaluate(request.headers, etag, st.st_mtime_ns) == s3_meta.NOT_MODIFIED:
                return web.Response(status=304, headers=validators)
            mode = request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
            headers = {**validators, "Accept-Ranges": "bytes"}
            headers.update(s3_meta.response_headers(meta, checksums=mode))
            first, last, status = _span(request, meta, key, query, st.st_size)
            if "partNumber" in query and meta.parts:
                headers["x-amz-mp-parts-count"] = str(len(meta.parts))
            if status == 206:
                headers["Content-Range"] = f"bytes {first}-{last}/{st.st_size}"
                for name in [h for h in headers if h.startswith("x-amz-checksum-")]:
                    del headers[name]  # a whole object's checksum, not the range's
            headers.update(s3_meta.overrides(query))
            length = max(0, last - first + 1)
            headers["Content-Length"] = str(length)
            response = web.StreamResponse(status=status, headers=headers)
            if head:
                return response
            await response.prepare(request)
            await _send_file(request, response, f, first, length)
        await response.write_eof()
        return response


def _span(
    request: web.BaseRequest, meta: ObjectMeta, key: str, query: dict[str, str], size: int
) -> tuple[int, int, int]:
    """(first byte, last byte, status) that `partNumber` or a Range header selects."""
    if "partNumber" in query:
        if "Range" in request.headers:
            raise S3Error(
                "InvalidRequest",
                400,
                "Cannot specify both Range header and partNumber query parameter",
            )
        part = s3_meta.part_range(meta, query["partNumber"], size)
        return (0, size - 1, 200) if part is None else (*part, 206)
    if "Range" in request.headers:
        found = s3_api.byte_range(request.headers["Range"], size)
        if found is None:
            raise S3Error("InvalidRange", 416, "The requested range is not satisfiable", key)
        if found != s3_api.WHOLE:
            return found[0], found[1], 206
    return 0, size - 1, 200


async def _send_file(
    request: web.BaseRequest, response: web.StreamResponse, f: Any, first: int, length: int
) -> None:
    """The bytes with sendfile(2) (no copies through Python), after the headers are out; read
    and written in chunks where the transport cannot (as aiohttp's FileResponse does)."""
    transport = request.transport
    if transport is not None and length > 0:
        try:
            # StreamResponse wrote its headers to the transport on prepare; asyncio's
            # sendfile waits for the transport's buffer to drain before it starts
            await asyncio.get_running_loop().sendfile(transport, f, first, length)
            return
        except NotImplementedError:
            pass
    f.seek(first)
    remaining = length
    while remaining > 0:
        chunk = f.read(min(CHUNK, remaining))
        if not chunk:
            break
        await response.write(chunk)
        remaining -= len(chunk)
