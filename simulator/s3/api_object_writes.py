"""The S3 API's object writes (see `api.py`): PutObject, CopyObject, DeleteObject and
DeleteObjects, and the body of a write (PutObject's, UploadPart's) received into a temporary
file and verified. A finished write is renamed into place whole, told to the intake first
(`ApiWrites.expect`), so the watcher's event for it carries the request's ids.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from simulator.core import aws_chunked, s3_api, s3_meta
from simulator.core.s3_api import S3Error
from simulator.core.s3_events import Origin
from simulator.core.s3_meta import ObjectMeta
from simulator.s3 import api_auth, api_digests
from simulator.s3.api_digests import CHUNK, DEFAULT_CHECKSUM, ETags
from simulator.s3.api_paths import copy_source, inside, remove_empty_parents
from simulator.s3.api_writes import ApiWrites, Ids
from simulator.s3.metadata import MetadataStore
from simulator.serving import Credentials

MAX_PUT = 5 * 1024**3  # S3's limit for a single PutObject


class ObjectWrites:
    """Used on the server's event loop only."""

    def __init__(
        self,
        buckets_dir: Path,
        credentials: Credentials,
        meta: MetadataStore,
        etags: ETags,
        writes: ApiWrites,
    ) -> None:
        self._buckets = buckets_dir
        self._credentials = credentials
        self._meta = meta
        self._etags = etags
        self._writes = writes

    async def put(
        self,
        request: web.BaseRequest,
        bucket: str,
        path: Path,
        key: str,
        ids: Ids,
    ) -> web.Response:
        folder = self._buckets / bucket
        exclusive = request.headers.get("If-None-Match") == "*"
        if_match = request.headers.get("If-Match")
        if exclusive and path.exists():
            raise S3Error(
                "PreconditionFailed",
                412,
                "At least one of the pre-conditions you specified did not hold",
                key,
            )
        if if_match is not None:
            self._check_if_match(bucket, key, path, if_match)  # before reading the body
        stored, user = s3_meta.from_request(request.headers)
        tags = s3_meta.parse_tagging_header(request.headers.get("x-amz-tagging", ""))
        tmp = folder / f".s3sim-put-{uuid.uuid4().hex}.tmp"  # a dotfile: never an object
        try:
            md5, checksums = await self.receive(request, key, tmp, default_checksum=True)
            if if_match is not None:
                # Again, with no await before the rename: no other request runs in between.
                self._check_if_match(bucket, key, path, if_match)
            meta = ObjectMeta(md5.hexdigest(), stored, user, tags, api_digests.encoded(checksums))
            self.place(bucket, key, tmp, path, meta, "ObjectCreated:Put", ids, exclusive)
        finally:
            tmp.unlink(missing_ok=True)
        return web.Response(headers=api_digests.headers(md5.hexdigest(), checksums))

    def copy(
        self, request: web.BaseRequest, bucket: str, path: Path, key: str, ids: Ids
    ) -> web.Response:
        """CopyObject: the source (`/bucket/key`, URL-encoded) copied to a temporary file in
        the target bucket and renamed into place, with the source's attributes or the
        request's (the metadata and tagging directives); fires ObjectCreated:Copy."""
        src_folder, src_key = copy_source(self._buckets, request.headers)
        src_bucket = src_folder.name
        src = inside(src_folder, src_key)  # a link in the source bucket may not lead out
        if not src.is_file():
            raise s3_api.no_such_key(src_key)
        src_st = os.stat(src)
        src_meta = self._meta.get(src_bucket, src_key, src_st) or ObjectMeta()
        src_etag = src_meta.etag or self._etags.of_path(src, src_st)
        s3_meta.evaluate(request.headers, src_etag, src_st.st_mtime_ns, "x-amz-copy-source-")
        meta = s3_meta.copied(
            request.headers, src_meta, same=(src_bucket, src_key) == (bucket, key)
        )
        names = [n for n, _ in src_meta.checksums] or [
            n for n in [DEFAULT_CHECKSUM] if api_digests.supported(n)
        ]
        algorithm = request.headers.get("x-amz-checksum-algorithm")
        if algorithm:
            names = [f"x-amz-checksum-{algorithm.lower()}"]
        tmp = self._buckets / bucket / f".s3sim-copy-{uuid.uuid4().hex}.tmp"
        try:
            shutil.copyfile(src, tmp)
            st = tmp.stat()
            checksums = {name: api_digests.checksum(name) for name in names}
            with open(tmp, "rb") as f:
                etag = self._etags.of_file(f, st)
                f.seek(0)
                while data := f.read(CHUNK):
                    for checksum in checksums.values():
                        checksum.update(data)
            meta = replace(meta, etag=etag, checksums=api_digests.encoded(checksums), parts=())
            self.place(bucket, key, tmp, path, meta, "ObjectCreated:Copy", ids)
        finally:
            tmp.unlink(missing_ok=True)
        body = s3_api.copy_xml(etag, st.st_mtime_ns)
        return web.Response(body=body, content_type="application/xml")

    def delete(self, bucket: str, path: Path, key: str, ids: Ids) -> web.Response:
        if path.is_file():
            self._writes.expect(bucket, key, "", Origin("ObjectRemoved:Delete", *ids))
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()
        self._meta.delete(bucket, key)
        remove_empty_parents(self._buckets / bucket, path)
        return web.Response(status=204)

    async def delete_many(
        self, request: web.BaseRequest, bucket: str, folder: Path, ids: Ids
    ) -> web.Response:
        """DeleteObjects: each key deleted (and its event fired) or its error listed."""
        try:
            quiet, keys = s3_api.parse_delete(await request.read())
        except ValueError as exc:
            message = f"The XML you provided was not well-formed: {exc}"
            raise S3Error("MalformedXML", 400, message) from None
        deleted, errors = [], []
        for key in keys:
            try:
                problem = s3_api.key_problem(key)
                if problem is not None:
                    raise problem
                path = inside(folder, key)  # a link in the bucket may not lead out
            except S3Error as refused:
                errors.append((key, refused.code, refused.message))
                continue
            self.delete(bucket, path, key, ids)
            deleted.append(key)
        body = s3_api.delete_result_xml([] if quiet else deleted, errors)
        return web.Response(body=body, content_type="application/xml")

    def place(
        self,
        bucket: str,
        key: str,
        tmp: Path,
        path: Path,
        meta: ObjectMeta,
        event: str,
        ids: Ids,
        exclusive: bool = False,
        md5: str = "",
    ) -> None:
        """A finished upload into place with its attributes, told to the intake first (the
        event carries the ETag S3 reports; `md5` is the file's when that ETag is another)."""
        st = os.stat(tmp)  # a rename keeps it: the row describes this very file
        self._writes.expect(bucket, key, md5 or meta.etag, Origin(event, *ids, etag=meta.etag))
        _place(tmp, path, key, exclusive=exclusive)
        self._meta.put(bucket, key, st, meta)

    async def receive(
        self, request: web.BaseRequest, key: str, tmp: Path, default_checksum: bool = False
    ) -> tuple[Any, dict[str, Any]]:
        """The request body into `tmp` (aws-chunked decoded, chunk signatures checked),
        verified against Content-MD5, x-amz-content-sha256 and any x-amz-checksum-* (header
        or trailer); (md5, checksums). With `default_checksum`, a body that names no
        checksum gets S3's default one (CRC64NVME)."""
        content_sha = request.headers.get("x-amz-content-sha256", api_auth.UNSIGNED)
        decoder = api_auth.decoder(request, content_sha, self._credentials)
        md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        checksums = api_digests.checksums(request.headers)
        if default_checksum and not checksums and api_digests.supported(DEFAULT_CHECKSUM):
            checksums[DEFAULT_CHECKSUM] = api_digests.checksum(DEFAULT_CHECKSUM)
        size = 0
        try:
            with open(tmp, "wb") as f:
                async for chunk in request.content.iter_chunked(CHUNK):
                    data = decoder.feed(chunk) if decoder is not None else chunk
                    size += len(data)
                    if size > MAX_PUT:
                        raise S3Error(
                            "EntityTooLarge",
                            400,
                            "Your proposed upload exceeds the maximum allowed size",
                            key,
                        )
                    md5.update(data)
                    if decoder is None:
                        sha.update(data)
                    for checksum in checksums.values():
                        checksum.update(data)
                    f.write(data)
        except aws_chunked.MalformedChunks as exc:
            raise S3Error(
                "InvalidRequest", 400, f"Malformed aws-chunked body: {exc}", key
            ) from None
        except aws_chunked.BadChunkSignature:
            raise api_auth.ERRORS["signature"] from None
        if decoder is not None:
            if not decoder.done:
                raise S3Error("IncompleteBody", 400, "The request body ended early.", key)
            announced = request.headers.get("x-amz-trailer", "").strip().lower()
            if announced and announced not in decoder.trailers:
                raise S3Error(
                    "InvalidRequest", 400, f"The announced trailer {announced} is missing.", key
                )
            declared = request.headers.get("x-amz-decoded-content-length")
            if declared is not None and declared != str(size):
                raise S3Error(
                    "IncompleteBody",
                    400,
                    "You did not provide the number of bytes specified by the "
                    "x-amz-decoded-content-length header.",
                    key,
                )
            if any(name.startswith("x-amz-checksum-") for name in decoder.trailers):
                checksums.pop(DEFAULT_CHECKSUM, None)  # the client's own, named at the end
            for name in decoder.trailers:
                if name.startswith("x-amz-checksum-") and name not in checksums:
                    checksums[name] = api_digests.checksum(name)
                    # a trailer names its algorithm only at the end: hash the file again
                    with open(tmp, "rb") as f:
                        while data := f.read(CHUNK):
                            checksums[name].update(data)
        trailers = decoder.trailers if decoder else {}
        for name, value in {**api_digests.checksum_headers(request.headers), **trailers}.items():
            problem = s3_meta.checksum_problem(name, value, trailing=name in trailers)
            if problem is not None:
                raise problem
        expected = {**api_digests.checksum_headers(request.headers), **trailers}
        api_digests.verify(request, key, md5, sha, content_sha, checksums, expected)
        return md5, checksums

    def _current_etag(self, bucket: str, key: str, path: Path) -> str | None:
        """The ETag S3 would report for the object there now; None if there is none."""
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                meta = self._meta.get(bucket, key, st)
                return meta.etag if meta is not None and meta.etag else self._etags.of_file(f, st)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def _check_if_match(self, bucket: str, key: str, path: Path, if_match: str) -> None:
        """PutObject's If-Match: 404 when there is no object, 412 when its ETag differs."""
        current = self._current_etag(bucket, key, path)
        if current is None:
            raise s3_api.no_such_key(key)
        s3_meta.evaluate({"If-Match": if_match}, current, 0)  # raises 412


def _place(tmp: Path, path: Path, key: str, exclusive: bool = False) -> None:
    """Rename a finished upload into place (the watcher sees one whole file appear); with
    `exclusive` (If-None-Match: *) only if no object is there, atomically (a hard link)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise S3Error(
                    "PreconditionFailed",
                    412,
                    "At least one of the pre-conditions you specified did not hold",
                    key,
                ) from None
        else:
            os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise S3Error(
                "InvalidArgument",
                400,
                "s3sim stores objects as files: a segment of this key is longer than a file "
                "name may be",
                key,
            ) from None
        if not isinstance(exc, (NotADirectoryError, IsADirectoryError, FileExistsError)):
            raise
        raise S3Error(
            "InvalidArgument",
            400,
            "s3sim stores objects as files: this key clashes with a folder or a file of "
            "another key (both 'a' and 'a/b')",
            key,
        ) from None
