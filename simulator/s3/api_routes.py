"""The S3 REST API's request handling (see `api.py`): addressing, SigV4, the dispatch of a
request to its operation. The operations live in modules of their own: `api_buckets` (bucket
writes), `api_listing`, `api_reads` (Get/Head), `api_object_writes` (Put/Copy/Delete),
`api_multipart` and `api_tagging`.

Imported by the server's thread when it starts serving, so importing aiohttp (about 0.3 s)
stays off the simulator's start-up path.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, unquote

import structlog
from aiohttp import web

from simulator.core import lineage, s3_api
from simulator.core.config import Config
from simulator.core.s3_api import S3Error
from simulator.s3 import api_auth, api_digests, api_multipart, api_reads, api_tagging
from simulator.s3.api_buckets import Buckets
from simulator.s3.api_digests import CHUNK, ETags
from simulator.s3.api_listing import Listing
from simulator.s3.api_multipart import Multipart
from simulator.s3.api_object_writes import ObjectWrites
from simulator.s3.api_paths import bucket_folder, copy_source, inside
from simulator.s3.api_reads import Reads
from simulator.s3.api_writes import ApiWrites, Ids
from simulator.s3.metadata import MetadataStore
from simulator.serving import Credentials

log = structlog.get_logger("s3sim")


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
        self._credentials = credentials
        self._config = config
        self._uploads = buckets_dir.parent / ".s3sim" / "uploads"  # multipart parts
        self._meta = MetadataStore(buckets_dir.parent / ".s3sim" / "metadata.sqlite3")
        etags = ETags()
        self._tagging = api_tagging.Tagging(
            self._meta, writes, etags.of_path, api_digests.verify_body
        )
        self._bucket_ops = Buckets(buckets_dir, config)
        self._listing = Listing(buckets_dir, self._meta, etags)
        self._reads = Reads(self._meta, etags)
        self._objects = ObjectWrites(buckets_dir, credentials, self._meta, etags, writes)
        self._multipart_ops = Multipart(self._uploads, self._objects)

    def close(self) -> None:
        self._meta.close()

    # -- dispatch --------------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = secrets.token_hex(8).upper()
        id2 = base64.b64encode(secrets.token_bytes(48)).decode()
        try:
            bucket, key = self._address(request)
            api_auth.authenticate(request, self._credentials, self._config().region)
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
                return self._listing.buckets()
            raise S3Error("MethodNotAllowed", 405, "The specified method is not allowed.")
        if not key and method == "PUT" and not query:
            return await self._bucket_ops.create(request, bucket)
        folder = bucket_folder(self._buckets, bucket)
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
                return self._listing.v2(bucket, folder, query)
            if method == "GET" and "notification" in query:
                body = s3_api.notification_xml(self._bucket_ops.notifications(bucket))
                return web.Response(body=body, content_type="application/xml")
            if method == "POST" and "delete" in query:
                return await self._objects.delete_many(request, bucket, folder, ids)
            if method == "GET" and not query.keys() - {
                "prefix",
                "delimiter",
                "marker",
                "max-keys",
                "encoding-type",
            }:
                return self._listing.v1(bucket, folder, query)
            raise S3Error("NotImplemented", 501, "This operation is not implemented by s3sim.")
        problem = s3_api.key_problem(key)
        if problem is not None:
            raise problem
        path = inside(folder, key)
        if "uploadId" in query or (method == "POST" and "uploads" in query):
            return await self._multipart(request, method, query, folder, bucket, key, ids)
        if "tagging" in query and set(query) <= {"tagging", "versionId"} and method != "HEAD":
            return await self._tagging.handle(request, bucket, key, path, ids)
        if method in ("GET", "HEAD"):
            if set(query) - api_reads.PARAMS:  # ?acl, ?attributes, ...
                raise S3Error("NotImplemented", 501, "This operation is not implemented by s3sim.")
            return await self._reads.get(request, path, bucket, key, query, head=method == "HEAD")
        if method == "PUT" and "x-amz-copy-source" in request.headers and not query:
            return self._objects.copy(request, bucket, path, key, ids)
        if method == "PUT" and "x-amz-copy-source" not in request.headers and not query:
            return await self._objects.put(request, bucket, path, key, ids)
        if method == "DELETE" and not query:
            return self._objects.delete(bucket, path, key, ids)
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
            return self._multipart_ops.create(request, bucket, key)
        if method == "GET" and "uploadId" in query:
            parts_dir = self._multipart_ops.upload_dir(query["uploadId"], bucket, key)
            return api_multipart.list_parts(parts_dir, bucket, key, query["uploadId"], query)
        if method == "PUT" and "partNumber" in query and "x-amz-copy-source" in request.headers:
            return self._upload_part_copy(request, bucket, key, query)
        if method == "PUT" and "partNumber" in query:
            return await self._multipart_ops.upload_part(request, bucket, key, query)
        if method == "POST":
            upload_id = query["uploadId"]
            return await self._multipart_ops.complete(request, folder, bucket, key, upload_id, ids)
        if method == "DELETE":
            return self._multipart_ops.abort(bucket, key, query["uploadId"])
        raise S3Error("NotImplemented", 501, "This operation is not implemented by s3sim.")

    def _upload_part_copy(
        self, request: web.BaseRequest, bucket: str, key: str, query: dict[str, str]
    ) -> web.Response:
        parts_dir = self._multipart_ops.upload_dir(query["uploadId"], bucket, key)
        number = api_multipart.part_number(query)
        src_folder, src_key = copy_source(self._buckets, request.headers)
        source = inside(src_folder, src_key)
        range_header = request.headers.get("x-amz-copy-source-range")
        return api_multipart.upload_part_copy(parts_dir, number, source, src_key, range_header)


_PRESIGN_PARAMS = {"AWSAccessKeyId", "Signature", "Expires", "x-amz-security-token", "x-id"}


def _operation_query(text: str) -> dict[str, str]:
    """The query without a presigned URL's authentication parameters."""
    return {
        k: v
        for k, v in parse_qsl(text, keep_blank_values=True)
        if k not in _PRESIGN_PARAMS and not k.startswith("X-Amz-")
    }


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
    while chunk := await request.content.read(CHUNK):
        read += len(chunk)
        if read > CHUNK:
            response.force_close()
            return
