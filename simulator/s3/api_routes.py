"""The S3 REST API's request handling (see `api.py`): addressing, SigV4, the operations.

Imported by the server's thread when it starts serving, so importing aiohttp (about 0.3 s)
stays off the simulator's start-up path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import structlog
from aiohttp import web

from simulator.core import aws_chunked, keys, lineage, s3_api, s3_meta
from simulator.core.config import Config
from simulator.core.s3_api import S3Error
from simulator.core.s3_events import Origin
from simulator.core.s3_meta import ObjectMeta
from simulator.s3 import api_multipart, api_tagging
from simulator.s3.api_buckets import Buckets
from simulator.s3.api_writes import ApiWrites, Ids
from simulator.s3.metadata import MetadataStore, identity
from simulator.serving import Credentials, SigV4Problem, chunk_signing, verify_sigv4

log = structlog.get_logger("s3sim")
_CHUNK = 1 << 20
_AUTH_ERRORS = {
    "missing": S3Error("AccessDenied", 403, "Access Denied (requests must be signed: SigV4)"),
    "key": S3Error(
        "InvalidAccessKeyId",
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "token": S3Error("InvalidToken", 400, "The provided token is malformed or otherwise invalid."),
    "expired": S3Error("AccessDenied", 403, "Request has expired"),
    "skewed": S3Error(
        "RequestTimeTooSkewed",
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "region": S3Error(
        "AuthorizationHeaderMalformed",
        400,
        "The authorization header is malformed; the region in the credential scope is "
        "wrong for this endpoint.",
    ),
    "signature": S3Error(
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
}
_STREAMING = "STREAMING-"
_UNSIGNED = "UNSIGNED-PAYLOAD"
_SIGNED_STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"  # and its -TRAILER variant
_STREAMING_KINDS = {
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    _SIGNED_STREAMING,
    _SIGNED_STREAMING + "-TRAILER",
}
_DEFAULT_CHECKSUM = "x-amz-checksum-crc64nvme"  # what S3 computes when a write names none
MAX_PUT = 5 * 1024**3  # S3's limit for a single PutObject


class Routes:
    """Used on the server's event loop only."""

    def __init__(
        self,
        buckets_dir: Path,
        credentials: Credentials,
        config: Callable[[], Config],
        writes: ApiWrites,
    ) -> None:
        self._buckets = buckets_dir
        self._writes = writes
        self._credentials = credentials
        self._config = config
        self._etags: dict[tuple[int, int, int, int, int], str] = {}  # identity -> MD5
        self._uploads = buckets_dir.parent / ".s3sim" / "uploads"  # multipart parts
        self._meta = MetadataStore(buckets_dir.parent / ".s3sim" / "metadata.sqlite3")
        self._tagging = api_tagging.Tagging(self._meta, writes, self._file_etag, self._verify_body)
        self._bucket_ops = Buckets(buckets_dir, config)

    def close(self) -> None:
        self._meta.close()

    # -- dispatch --------------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = secrets.token_hex(8).upper()
        id2 = base64.b64encode(secrets.token_bytes(48)).decode()
        try:
            bucket, key = self._address(request)
            self._authenticate(request)
            await _continue(request)
            ids = (
                request_id,
                id2,
                request.remote or "127.0.0.1",
                # A handler's SDK sends its invocation's trace header: the write's chain.
                lineage.from_trace_header(request.headers.get("X-Amzn-Trace-Id")),
            )
            response = await self._route(request, bucket, key, ids)
        except S3Error as error:
            status = error.status
            body = b"" if request.method == "HEAD" else s3_api.error_xml(error, request_id)
            response = web.Response(status=status, body=body, content_type="application/xml")
        except Exception:  # a bug must answer 500, never kill the server
            log.exception("s3_api.error", method=request.method, path=request.path)
            internal = S3Error("InternalError", 500, "We encountered an internal error.")
            body = s3_api.error_xml(internal, request_id)
            response = web.Response(status=500, body=body, content_type="application/xml")
        await _discard_body(request, response)
        response.headers["x-amz-request-id"] = request_id
        response.headers["x-amz-id-2"] = id2
        response.headers["Server"] = "AmazonS3"
        return response

    def _address(self, request: web.BaseRequest) -> tuple[str, str]:
        """(bucket, key) from a path-style or virtual-host-style (`<bucket>.localhost`) URL."""
        path = unquote(request.raw_path.split("?", 1)[0])
        host = request.headers.get("Host", "").split(":")[0]
        if host.endswith(".localhost"):
            return host.removesuffix(".localhost"), path.lstrip("/")
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key

    async def _route(
        self, request: web.BaseRequest, bucket: str, key: str, ids: Ids
    ) -> web.StreamResponse:
        method, query = request.method, _operation_query(request.query_string)
        if not bucket:
            if method == "GET":
                return self._list_buckets()
            raise S3Error("MethodNotAllowed", 405, "The specified method is not allowed.")
        if not key and method == "PUT" and not query:
            return await self._bucket_ops.create(request, bucket)
        folder = self._bucket(bucket)
        if not key:
            if method in ("DELETE", "PUT") or "uploads" in query:
                return await self._bucket_write(request, method, query, bucket, folder)
            if method == "HEAD":
                return web.Response(headers={"x-amz-bucket-region": self._config().region})
            if method == "GET" and "location" in query:
                region = self._config().region
                text = "" if region == "us-east-1" else region
                body = s3_api.location_xml(text)
                return web.Response(body=body, content_type="application/xml")
            if method == "GET" and query.get("list-type") == "2":
                return self._list_v2(bucket, folder, query)
            if method == "GET" and "notification" in query:
                body = s3_api.notification_xml(self._bucket_ops.notifications(bucket))
                return web.Response(body=body, content_type="application/xml")
            if method == "POST" and "delete" in query:
                return await self._delete_many(request, bucket, folder, ids)
            if method == "GET" and not query.keys() - {
                "prefix",
                "delimiter",
                "marker",
                "max-keys",
                "encoding-type",
            }:
                return self._list_v1(bucket, folder, query)
            raise S3Error("NotImplemented", 501, "This operation is not implemented by s3sim.")
        problem = s3_api.key_problem(key)
        if problem is not None:
            raise problem
        path = _inside(folder, key)
        if "uploadId" in query or (method == "POST" and "uploads" in query):
            return await self._multipart(request, method, query, folder, bucket, key, ids)
        if "tagging" in query and set(query) <= {"tagging", "versionId"} and method != "HEAD":
            return await self._tagging.handle(request, bucket, key, path, ids)
        if method in ("GET", "HEAD"):
            if set(query) - _GET_PARAMS:  # ?acl, ?attributes, ...
                raise S3Error("NotImplemented", 501, "This operation is not implemented by s3sim.")
            return await self._get(request, path, bucket, key, query, head=method == "HEAD")
        if method == "PUT" and "x-amz-copy-source" in request.headers and not query:
            return self._copy(request, bucket, path, key, ids)
        if method == "PUT" and "x-amz-copy-source" not in request.headers and not query:
            return await self._put(request, bucket, path, key, ids)
        if method == "DELETE" and not query:
            return self._delete(bucket, path, key, ids)
        raise S3Error("NotImplemented", 501, "This operation is not implemented by s3sim.")

    async def _bucket_write(
        self,
        request: web.BaseRequest,
        method: str,
        query: dict[str, str],
        bucket: str,
        folder: Path,
    ) -> web.StreamResponse:
        """DeleteBucket, PutBucketNotificationConfiguration, ListMultipartUploads."""
        if method == "DELETE" and not query:
            return await self._bucket_ops.delete(bucket, folder)
        if method == "PUT" and set(query) == {"notification"}:
            return await self._bucket_ops.put_notification(request, bucket)
        if method == "GET" and "uploads" in query:
            return api_multipart.list_uploads(self._uploads, bucket, query)
        raise S3Error("NotImplemented", 501, "This operation is not implemented by s3sim.")

    async def _multipart(
        self,
        request: web.BaseRequest,
        method: str,
        query: dict[str, str],
        folder: Path,
        bucket: str,
        key: str,
        ids: Ids,
    ) -> web.StreamResponse:
        if method == "POST" and "uploads" in query:
            return self._create_upload(request, bucket, key)
        if method == "GET" and "uploadId" in query:
            parts_dir = self._upload_dir(query["uploadId"], bucket, key)
            return api_multipart.list_parts(parts_dir, bucket, key, query["uploadId"], query)
        if method == "PUT" and "partNumber" in query and "x-amz-copy-source" in request.headers:
            return self._upload_part_copy(request, bucket, key, query)
        if method == "PUT" and "partNumber" in query:
            return await self._upload_part(request, bucket, key, query)
        if method == "POST":
            upload_id = query["uploadId"]
            return await self._complete_upload(request, folder, bucket, key, upload_id, ids)
        if method == "DELETE":
            return self._abort_upload(bucket, key, query["uploadId"])
        raise S3Error("NotImplemented", 501, "This operation is not implemented by s3sim.")

    def _upload_part_copy(
        self, request: web.BaseRequest, bucket: str, key: str, query: dict[str, str]
    ) -> web.Response:
        parts_dir = self._upload_dir(query["uploadId"], bucket, key)
        number = api_multipart.part_number(query)
        src_folder, src_key = self._copy_source(request)
        source = _inside(src_folder, src_key)
        range_header = request.headers.get("x-amz-copy-source-range")
        return api_multipart.upload_part_copy(parts_dir, number, source, src_key, range_header)

    def _copy_source(self, request: web.BaseRequest) -> tuple[Path, str]:
        """x-amz-copy-source (`/bucket/key`, URL-encoded) -> (bucket folder, key)."""
        source = unquote(request.headers["x-amz-copy-source"].split("?", 1)[0]).lstrip("/")
        src_bucket, _, src_key = source.partition("/")
        problem = s3_api.key_problem(src_key)
        if problem is not None:
            raise problem
        return self._bucket(src_bucket), src_key

    def _bucket(self, bucket: str) -> Path:
        folder = self._buckets / bucket
        if bucket.startswith(".") or "/" in bucket or not folder.is_dir() or folder.is_symlink():
            raise s3_api.no_such_bucket(bucket)
        return folder

    # -- authentication --------------------------------------------------------------------
    def _authenticate(self, request: web.BaseRequest) -> None:
        try:
            verify_sigv4(
                request.method,
                request.raw_path,
                request.headers,
                self._credentials,
                s3=True,
                region=self._config().region,
            )
        except SigV4Problem as problem:
            raise _AUTH_ERRORS[problem.kind] from None

    # -- operations ------------------------------------------------------------------------
    def _list_buckets(self) -> web.Response:
        found = []
        if self._buckets.is_dir():
            for entry in sorted(os.scandir(self._buckets), key=lambda e: e.name):
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                    found.append((entry.name, entry.stat().st_mtime_ns))
        body = s3_api.buckets_xml(found, "s3sim")
        return web.Response(body=body, content_type="application/xml")

    def _list_v2(self, bucket: str, folder: Path, query: dict[str, str]) -> web.Response:
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

    def _list_v1(self, bucket: str, folder: Path, query: dict[str, str]) -> web.Response:
        max_keys = _max_keys(query)
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        marker = query.get("marker", "")
        result = s3_api.page(self._entries(folder, prefix), prefix, delimiter, max_keys, marker)
        encode = query.get("encoding-type") == "url"
        body = s3_api.list_v1_xml(bucket, result, prefix, delimiter, max_keys, encode, marker)
        return web.Response(body=body, content_type="application/xml")

    def _copy(
        self, request: web.BaseRequest, bucket: str, path: Path, key: str, ids: Ids
    ) -> web.Response:
        """CopyObject: the source (`/bucket/key`, URL-encoded) copied to a temporary file in
        the target bucket and renamed into place, with the source's attributes or the
        request's (the metadata and tagging directives); fires ObjectCreated:Copy."""
        src_folder, src_key = self._copy_source(request)
        src_bucket = src_folder.name
        src = _inside(src_folder, src_key)  # a link in the source bucket may not lead out
        if not src.is_file():
            raise s3_api.no_such_key(src_key)
        src_st = os.stat(src)
        src_meta = self._meta.get(src_bucket, src_key, src_st) or ObjectMeta()
        src_etag = src_meta.etag or self._etag(str(src), src_st)
        s3_meta.evaluate(request.headers, src_etag, src_st.st_mtime_ns, "x-amz-copy-source-")
        meta = s3_meta.copied(
            request.headers, src_meta, same=(src_bucket, src_key) == (bucket, key)
        )
        names = [n for n, _ in src_meta.checksums] or [
            n for n in [_DEFAULT_CHECKSUM] if _supported(n)
        ]
        algorithm = request.headers.get("x-amz-checksum-algorithm")
        if algorithm:
            names = [f"x-amz-checksum-{algorithm.lower()}"]
        tmp = self._buckets / bucket / f".s3sim-copy-{uuid.uuid4().hex}.tmp"
        try:
            shutil.copyfile(src, tmp)
            st = tmp.stat()
            checksums = {name: _checksum(name) for name in names}
            with open(tmp, "rb") as f:
                etag = self._etag_of(f, st)
                f.seek(0)
                while data := f.read(_CHUNK):
                    for checksum in checksums.values():
                        checksum.update(data)
            meta = replace(meta, etag=etag, checksums=_encoded(checksums), parts=())
            self._write(bucket, key, tmp, path, meta, "ObjectCreated:Copy", ids)
        finally:
            tmp.unlink(missing_ok=True)
        body = s3_api.copy_xml(etag, st.st_mtime_ns)
        return web.Response(body=body, content_type="application/xml")

    async def _delete_many(
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
                path = _inside(folder, key)  # a link in the bucket may not lead out
            except S3Error as refused:
                errors.append((key, refused.code, refused.message))
                continue
            self._delete(bucket, path, key, ids)
            deleted.append(key)
        body = s3_api.delete_result_xml([] if quiet else deleted, errors)
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
                if keys.problem(key) is not None or not _is_inside(root, path):
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
                    etag = self._etag(path, st)
                entries.append(s3_api.Entry(key, st.st_size, st.st_mtime_ns, etag))
        entries.sort(key=lambda e: e.key.encode("utf-8", "surrogatepass"))
        return entries

    def _file_etag(self, path: Path, st: os.stat_result) -> str:
        return self._etag(str(path), st)

    def _etag(self, path: str, st: os.stat_result) -> str:
        with open(path, "rb") as f:
            return self._etag_of(f, st)

    def _etag_of(self, f: Any, st: os.stat_result) -> str:
        """The MD5 of an open file, cached by what identifies its content (inode, size,
        mtime and ctime: a same-size replace keeping the mtime still changes the ctime)."""
        seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        etag = self._etags.get(seen)
        if etag is None:
            digest = hashlib.md5(usedforsecurity=False)
            f.seek(0)
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
            etag = self._etags[seen] = digest.hexdigest()
        return etag

    async def _get(
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
            etag = meta.etag or self._etag_of(f, st)
            validators = {"ETag": f'"{etag}"', "Last-Modified": s3_api.http_date(st.st_mtime_ns)}
            if s3_meta.evaluate(request.headers, etag, st.st_mtime_ns) == s3_meta.NOT_MODIFIED:
                return web.Response(status=304, headers=validators)
            mode = request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
            headers = {**validators, "Accept-Ranges": "bytes"}
            headers.update(s3_meta.response_headers(meta, checksums=mode))
            first, last, status = self._span(request, meta, key, query, st.st_size)
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

    @staticmethod
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

    def _current_etag(self, bucket: str, key: str, path: Path) -> str | None:
        """The ETag S3 would report for the object there now; None if there is none."""
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    return None
                meta = self._meta.get(bucket, key, st)
                return meta.etag if meta is not None and meta.etag else self._etag_of(f, st)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def _check_if_match(self, bucket: str, key: str, path: Path, if_match: str) -> None:
        """PutObject's If-Match: 404 when there is no object, 412 when its ETag differs."""
        current = self._current_etag(bucket, key, path)
        if current is None:
            raise s3_api.no_such_key(key)
        s3_meta.evaluate({"If-Match": if_match}, current, 0)  # raises 412

    async def _put(
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
            md5, checksums = await self._receive(request, key, tmp, default_checksum=True)
            if if_match is not None:
                # Again, with no await before the rename: no other request runs in between.
                self._check_if_match(bucket, key, path, if_match)
            meta = ObjectMeta(md5.hexdigest(), stored, user, tags, _encoded(checksums))
            self._write(bucket, key, tmp, path, meta, "ObjectCreated:Put", ids, exclusive)
        finally:
            tmp.unlink(missing_ok=True)
        return web.Response(headers=_digest_headers(md5.hexdigest(), checksums))

    def _write(
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

    async def _receive(
        self, request: web.BaseRequest, key: str, tmp: Path, default_checksum: bool = False
    ) -> tuple[Any, dict[str, Any]]:
        """The request body into `tmp` (aws-chunked decoded, chunk signatures checked),
        verified against Content-MD5, x-amz-content-sha256 and any x-amz-checksum-* (header
        or trailer); (md5, checksums). With `default_checksum`, a body that names no
        checksum gets S3's default one (CRC64NVME)."""
        content_sha = request.headers.get("x-amz-content-sha256", _UNSIGNED)
        decoder = self._decoder(request, content_sha)
        md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        checksums = _checksums(request.headers)
        if default_checksum and not checksums and _supported(_DEFAULT_CHECKSUM):
            checksums[_DEFAULT_CHECKSUM] = _checksum(_DEFAULT_CHECKSUM)
        size = 0
        try:
            with open(tmp, "wb") as f:
                async for chunk in request.content.iter_chunked(_CHUNK):
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
            raise _AUTH_ERRORS["signature"] from None
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
                checksums.pop(_DEFAULT_CHECKSUM, None)  # the client's own, named at the end
            for name in decoder.trailers:
                if name.startswith("x-amz-checksum-") and name not in checksums:
                    checksums[name] = _checksum(name)
                    # a trailer names its algorithm only at the end: hash the file again
                    with open(tmp, "rb") as f:
                        while data := f.read(_CHUNK):
                            checksums[name].update(data)
        trailers = decoder.trailers if decoder else {}
        for name, value in {**_checksum_headers(request.headers), **trailers}.items():
            problem = s3_meta.checksum_problem(name, value, trailing=name in trailers)
            if problem is not None:
                raise problem
        expected = {**_checksum_headers(request.headers), **trailers}
        self._verify(request, key, md5, sha, content_sha, checksums, expected)
        return md5, checksums

    def _decoder(self, request: web.BaseRequest, content_sha: str) -> aws_chunked.Decoder | None:
        """The aws-chunked decoder a body needs (none for a plain one); the signed variants
        check each chunk's signature, chained from the request's own."""
        encoding = request.headers.get("Content-Encoding", "")
        if not content_sha.startswith(_STREAMING) and "aws-chunked" not in encoding:
            return None
        if content_sha.startswith(_STREAMING) and content_sha not in _STREAMING_KINDS:
            raise S3Error(
                "NotImplemented", 501, f"s3sim does not verify {content_sha} uploads (SigV4a)."
            )
        if not content_sha.startswith(_SIGNED_STREAMING):
            return aws_chunked.Decoder()
        try:
            seed, timestamp, scope, sign = chunk_signing(request.headers, self._credentials)
        except SigV4Problem as problem:
            raise _AUTH_ERRORS[problem.kind] from None
        chain = aws_chunked.SignatureChain(seed, timestamp, scope, sign)
        return aws_chunked.Decoder(chain, signed_trailer=content_sha.endswith("-TRAILER"))

    # -- multipart uploads -----------------------------------------------------------------
    def _upload_dir(self, upload_id: str, bucket: str, key: str) -> Path:
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

    def _create_upload(self, request: web.BaseRequest, bucket: str, key: str) -> web.Response:
        """The upload's folder, its target and the attributes the object gets at Complete."""
        stored, user = s3_meta.from_request(request.headers)
        tags = s3_meta.parse_tagging_header(request.headers.get("x-amz-tagging", ""))
        upload_id = api_multipart.new_upload_id()
        folder = self._uploads / upload_id
        folder.mkdir(parents=True)
        (folder / _UPLOAD_META).write_text(
            ObjectMeta(headers=stored, user=user, tags=tags).to_json()
        )
        (folder / "target").write_text(f"{bucket}/{key}")
        body = s3_api.initiate_xml(bucket, key, upload_id)
        return web.Response(body=body, content_type="application/xml")

    async def _upload_part(
        self, request: web.BaseRequest, bucket: str, key: str, query: dict[str, str]
    ) -> web.Response:
        folder = self._upload_dir(query["uploadId"], bucket, key)
        try:
            number = int(query["partNumber"])
        except ValueError:
            number = 0
        if not 1 <= number <= 10000:
            raise S3Error(
                "InvalidArgument", 400, "Part number must be an integer between 1 and 10000"
            )
        tmp = folder / f".part-{number}-{uuid.uuid4().hex}.tmp"
        try:
            md5, checksums = await self._receive(request, key, tmp)
            os.replace(tmp, folder / f"{number:05d}-{md5.hexdigest()}")
        finally:
            tmp.unlink(missing_ok=True)
        for old in folder.glob(f"{number:05d}-*"):
            if old.name != f"{number:05d}-{md5.hexdigest()}":
                old.unlink(missing_ok=True)  # a part uploaded again replaces the earlier one
        return web.Response(headers=_digest_headers(md5.hexdigest(), checksums))

    async def _complete_upload(
        self,
        request: web.BaseRequest,
        folder: Path,
        bucket: str,
        key: str,
        upload_id: str,
        ids: Ids,
    ) -> web.Response:
        parts_dir = self._upload_dir(upload_id, bucket, key)
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
                        while data := f.read(_CHUNK):
                            whole.update(data)
                            out.write(data)
            etag = f"{digests.hexdigest()}-{len(listed)}"
            sizes = tuple(part.stat().st_size for part in files)
            meta = replace(meta, etag=etag, parts=sizes)
            event = "ObjectCreated:CompleteMultipartUpload"
            self._write(bucket, key, tmp, folder / key, meta, event, ids, md5=whole.hexdigest())
        finally:
            tmp.unlink(missing_ok=True)
        shutil.rmtree(parts_dir, ignore_errors=True)
        body = s3_api.complete_xml(bucket, key, etag)
        return web.Response(body=body, content_type="application/xml")

    def _abort_upload(self, bucket: str, key: str, upload_id: str) -> web.Response:
        shutil.rmtree(self._upload_dir(upload_id, bucket, key), ignore_errors=True)
        return web.Response(status=204)

    def _verify_body(self, request: web.BaseRequest, key: str, body: bytes) -> None:
        """A small body read whole (a document), against the digests its headers give."""
        md5, sha = hashlib.md5(body, usedforsecurity=False), hashlib.sha256(body)
        checksums = _checksums(request.headers)
        for checksum in checksums.values():
            checksum.update(body)
        content_sha = request.headers.get("x-amz-content-sha256", _UNSIGNED)
        expected = _checksum_headers(request.headers)
        self._verify(request, key, md5, sha, content_sha, checksums, expected)

    @staticmethod
    def _verify(
        request: web.BaseRequest,
        key: str,
        md5: Any,
        sha: Any,
        content_sha: str,
        checksums: dict[str, Any],
        expected: dict[str, str],
    ) -> None:
        content_md5 = request.headers.get("Content-MD5")
        if content_md5 is not None and content_md5 != base64.b64encode(md5.digest()).decode():
            raise S3Error(
                "BadDigest",
                400,
                "The Content-MD5 you specified did not match what we received.",
                key,
            )
        if not content_sha.startswith((_STREAMING, _UNSIGNED)) and content_sha != sha.hexdigest():
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                400,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                key,
            )
        for name, checksum in checksums.items():
            if name in expected and expected[name] != base64.b64encode(checksum.digest()).decode():
                algorithm = name.removeprefix("x-amz-checksum-").upper()
                raise S3Error(
                    "BadDigest",
                    400,
                    f"The {algorithm} you specified did not match the calculated checksum.",
                    key,
                )

    def _delete(self, bucket: str, path: Path, key: str, ids: Ids) -> web.Response:
        if path.is_file():
            self._writes.expect(bucket, key, "", Origin("ObjectRemoved:Delete", *ids))
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()
        self._meta.delete(bucket, key)
        _remove_empty_parents(self._buckets / bucket, path)
        return web.Response(status=204)


_UPLOAD_META = "meta.json"  # in an upload's folder: the attributes CreateMultipartUpload got
_PRESIGN_PARAMS = {"AWSAccessKeyId", "Signature", "Expires", "x-amz-security-token", "x-id"}
_GET_PARAMS = {"versionId", "partNumber"} | {
    f"response-{name}"
    for name in (
        "content-type",
        "content-language",
        "expires",
        "cache-control",
        "content-disposition",
        "content-encoding",
    )
}


def _inside(folder: Path, key: str) -> Path:
    """The key's path, refused if it (or a folder on the way) is a link leaving the bucket."""
    path = folder / key
    if _has_link(str(folder), key) and not _is_inside(str(folder), str(path)):
        raise S3Error("AccessDenied", 403, "s3sim: this key leads outside its bucket", key)
    return path


def _has_link(folder: str, key: str) -> bool:
    """Whether a component of the key's path is a symlink (or cannot be told): only then is
    the whole path resolved, which costs an lstat per component from the file system's root
    on every request. The bucket folder itself is never a link (`_bucket` refuses it) and the
    key's segments are checked already (no '.', '..', or empty ones)."""
    current = folder
    for segment in key.split("/"):
        current = f"{current}/{segment}"
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return True
        except (FileNotFoundError, NotADirectoryError):
            return False  # nothing below exists yet: nothing can lead out
        except OSError:
            return True
    return False


def _is_inside(root: str, path: str) -> bool:
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)  # missing components are kept as they are
    return real == real_root or real.startswith(real_root + os.sep)


def _remove_empty_parents(folder: Path, path: Path) -> None:
    """S3 has no folders: those a deleted key leaves empty go too (so `a` fits after `a/b`)."""
    parent = path.parent
    while parent != folder and folder in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _operation_query(text: str) -> dict[str, str]:
    """The query without a presigned URL's authentication parameters."""
    return {
        k: v
        for k, v in parse_qsl(text, keep_blank_values=True)
        if k not in _PRESIGN_PARAMS and not k.startswith("X-Amz-")
    }


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


def _digest_headers(md5_hex: str, checksums: dict[str, Any]) -> dict[str, str]:
    headers = {"ETag": f'"{md5_hex}"', **dict(_encoded(checksums))}
    if checksums:
        headers["x-amz-checksum-type"] = "FULL_OBJECT"
    return headers


def _encoded(checksums: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Checksums as S3 stores and answers them: (header name, base64 digest)."""
    return tuple(
        (name, base64.b64encode(checksum.digest()).decode())
        for name, checksum in sorted(checksums.items())
    )


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
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            break
        await response.write(chunk)
        remaining -= len(chunk)


async def _continue(request: web.BaseRequest) -> None:
    """`Expect: 100-continue` (botocore sends it with PutObject and UploadPart bodies) is
    answered once the request is authenticated, as S3 does; unanswered, the client waits a
    second before it sends the body anyway. aiohttp's low-level server leaves this to us."""
    if request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response's own size starts after it


async def _discard_body(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """A request answered before its body was read (an error) must not leave the body on a
    keep-alive connection, where it would read as the next request: read a small one, close
    the connection after a large one."""
    if request.content.at_eof():
        return
    read = 0
    while chunk := await request.content.read(_CHUNK):
        read += len(chunk)
        if read > _CHUNK:
            response.force_close()
            return


_NOT_CHECKSUMS = ("x-amz-checksum-type", "x-amz-checksum-mode", "x-amz-checksum-algorithm")


def _checksum_headers(headers: Any) -> dict[str, str]:
    """The x-amz-checksum-<algorithm> values a request carries (not -type, -mode)."""
    return {
        k.lower(): v
        for k, v in headers.items()
        if k.lower().startswith("x-amz-checksum-") and k.lower() not in _NOT_CHECKSUMS
    }


def _checksums(headers: Any) -> dict[str, Any]:
    """Checksum objects for the checksums a request carries in headers (or announces as a
    trailer), computed with botocore's own implementations."""
    names = set(_checksum_headers(headers))
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    if trailer.startswith("x-amz-checksum-"):
        names.add(trailer)
    return {name: _checksum(name) for name in names}


def _supported(name: str) -> bool:
    """Whether botocore computes this checksum here (CRC32C and CRC64NVME need awscrt)."""
    from botocore import httpchecksum  # type: ignore[import-untyped]

    return name.removeprefix("x-amz-checksum-") in httpchecksum._CHECKSUM_CLS


def _checksum(name: str) -> Any:
    from botocore import httpchecksum

    algorithm = name.removeprefix("x-amz-checksum-")
    cls = httpchecksum._CHECKSUM_CLS.get(algorithm)  # CRC32C, CRC64NVME: with awscrt
    if cls is None:
        raise S3Error(
            "InvalidRequest", 400, f"Checksum algorithm {algorithm.upper()} is not supported here."
        )
    return cls()
