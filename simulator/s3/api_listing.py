"""The S3 API's listings (see `api.py`): ListBuckets, ListObjectsV2 and ListObjects (v1), over
the bucket folders, with the ETags the API stored (a multipart upload's) or the files' MD5.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aiohttp import web

from simulator.core import keys, s3_api
from simulator.core.s3_api import S3Error
from simulator.s3.api_digests import ETags
from simulator.s3.api_paths import is_inside
from simulator.s3.metadata import MetadataStore, identity


class Listing:
    """Used on the server's event loop only."""

    def __init__(self, buckets_dir: Path, meta: MetadataStore, etags: ETags) -> None:
        self._buckets = buckets_dir
        self._meta = meta
        self._etags = etags

    def buckets(self) -> web.Response:
        found = []
        if self._buckets.is_dir():
            for entry in sorted(os.scandir(self._buckets), key=lambda e: e.name):
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                    found.append((entry.name, entry.stat().st_mtime_ns))
        body = s3_api.buckets_xml(found, "s3sim")
        return web.Response(body=body, content_type="application/xml")

    def v2(self, bucket: str, folder: Path, query: dict[str, str]) -> web.Response:
        max_keys = _max_keys(query)
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        start_after, token = query.get("start-after", ""), query.get("continuation-token")
        entries = self._entries(folder, prefix)
        result = s3_api.page(entries, prefix, delimiter, max_keys, start_after, token)
        body = s3_api.list_v2_xml(
            bucket,
            result,
            prefix,
            delimiter,
            max_keys,
            query.get("encoding-type") == "url",
            start_after,
            token,
        )
        return web.Response(body=body, content_type="application/xml")

    def v1(self, bucket: str, folder: Path, query: dict[str, str]) -> web.Response:
        max_keys = _max_keys(query)
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        marker = query.get("marker", "")
        result = s3_api.page(self._entries(folder, prefix), prefix, delimiter, max_keys, marker)
        encode = query.get("encoding-type") == "url"
        body = s3_api.list_v1_xml(bucket, result, prefix, delimiter, max_keys, encode, marker)
        return web.Response(body=body, content_type="application/xml")

    def _entries(self, folder: Path, prefix: str) -> list[s3_api.Entry]:
        entries = []
        root = str(folder)
        stored = self._meta.in_bucket(folder.name)  # multipart ETags
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = os.path.relpath(dirpath, root)
            for name in filenames:
                if name.startswith("."):
                    continue  # temporary and hidden files are never objects
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if not key.startswith(prefix):
                    continue
                path = os.path.join(dirpath, name)
                if keys.problem(key) is not None or not is_inside(root, path):
                    continue  # not UTF-8, too long, or a link leaving the bucket: no object
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue  # a FIFO or a device is never an object (and never opened)
                row = stored.get(key)
                if row is not None and row[0] == identity(st) and row[1].etag:
                    etag = row[1].etag
                else:
                    etag = self._etags.of_path(path, st)
                entries.append(s3_api.Entry(key, st.st_size, st.st_mtime_ns, etag))
        entries.sort(key=lambda e: e.key.encode("utf-8", "surrogatepass"))
        return entries


def _max_keys(query: dict[str, str]) -> int:
    try:
        value = int(query.get("max-keys", s3_api.MAX_KEYS))
    except ValueError:
        value = -1
    if value < 0:
        raise S3Error(
            "InvalidArgument", 400, "Provided max-keys not an integer or within integer range"
        )
    return min(value, s3_api.MAX_KEYS)
