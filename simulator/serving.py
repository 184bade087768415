"""HTTP endpoints on loopback, shared by the S3 API and the Lambda API: an aiohttp low-level
server on an event loop of its own thread, and Signature Version 4 checked with botocore.

aiohttp because it is well kept, parses HTTP in C (llhttp), streams request and response
bodies and handles keep-alive and chunked transfer; its low-level server skips the router.
The socket is bound at `start` (the address is known at once; a request made meanwhile waits
in the listen backlog) and serving starts on the thread, so importing aiohttp (about 0.3 s)
stays off the simulator's start-up path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

import structlog

log = structlog.get_logger("s3sim")
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request,\s*SignedHeaders=(?P<signed>[^,]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
Handler = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


class LoopServer:
    """Owns its thread and event loop; `start` returns the endpoint's URL."""

    def __init__(
        self, name: str, make_handler: Callable[[], Handler], host: str, port: int
    ) -> None:
        self._name, self._make_handler = name, make_handler
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"s3sim-{name}")
        self._server: asyncio.AbstractServer | None = None
        self._web: Any = None  # aiohttp's low-level server: closes open connections at stop
        self._serving = threading.Event()  # set once serving (or failed to)
        self.url = ""

    def start(self) -> str:
        sock = socket.create_server((self._host, self._port))
        self.url = f"http://{self._host}:{sock.getsockname()[1]}"
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop)
        return self.url

    async def _serve(self, sock: socket.socket) -> None:
        from aiohttp import web

        try:
            # Bodies as sent: an object uploaded with Content-Encoding: gzip is stored
            # gzipped (S3 keeps the encoding as an attribute), never inflated on the way in.
            self._web = web.Server(self._make_handler(), auto_decompress=False)
            self._server = await self._loop.create_server(self._web, sock=sock)
        except Exception:
            sock.close()
            log.exception(f"{self._name}.failed", url=self.url)
        finally:
            self._serving.set()

    def wait_serving(self, timeout_s: float = 30.0) -> None:
        """Until the server answers (its library is imported): `simulator.ready` waits, so
        the endpoints it names answer at once and the import competes with nothing after."""
        self._serving.wait(timeout_s)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            if self._web is not None:
                with contextlib.suppress(Exception):
                    await self._web.shutdown(2.0)  # keep-alive connections, their tasks
            if self._server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.wait_closed(), 5)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _check_identity(access_key: str, token: str | None, credentials: Credentials) -> None:
    """The workspace's access key, and its session token when the request carries one (all
    three ways of signing name them)."""
    if access_key != credentials.access_key:
        raise SigV4Problem("key")
    if credentials.session_token is not None and token not in (None, credentials.session_token):
        raise SigV4Problem("token")


MAX_SKEW_S = 15 * 60  # AWS refuses requests signed further from its clock than this


def _check_skew(stamp: str) -> None:
    import datetime as dt

    try:
        signed_at = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise SigV4Problem("signature") from None
    if abs((dt.datetime.now(dt.UTC) - signed_at).total_seconds()) > MAX_SKEW_S:
        raise SigV4Problem("skewed")


class SigV4Problem(Exception):
    """Why a request is not signed with the workspace's credentials: `missing`, `key`,
    `token` or `signature` (each API answers it with its own error)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def verify_sigv4(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    s3: bool,
    body: bytes = b"",
    region: str | None = None,
) -> None:
    """The Authorization header's signature, recomputed with botocore's own signer from the
    headers it names (and, without an x-amz-content-sha256 header, from `body`, as services
    other than S3 sign it); raises SigV4Problem."""
    from botocore.auth import S3SigV4Auth, SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import (  # type: ignore[import-untyped]
        Credentials as BotoCredentials,
    )

    path, _, query_string = raw_path.partition("?")
    query = dict(parse_qsl(query_string, keep_blank_values=True))
    if s3 and query.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256":
        _verify_presigned(method, path, query, headers, credentials)
        return
    if s3 and "Signature" in query and "AWSAccessKeyId" in query:
        _verify_presigned_v2(method, path, query, headers, credentials)
        return
    match = _AUTH.fullmatch(headers.get("Authorization", "").strip())
    if match is None:
        raise SigV4Problem("missing")
    _check_identity(match["akid"], headers.get("x-amz-security-token"), credentials)
    if region is not None and match["region"] != region:
        raise SigV4Problem("region")  # a client configured for another region: fails in AWS
    _check_skew(headers.get("x-amz-date", ""))
    signed = {name: headers.get(name, "") for name in match["signed"].split(";")}
    url = f"http://{headers.get('Host', '')}{raw_path}"
    request = AWSRequest(method=method, url=url, headers=signed, data=body)
    request.context["timestamp"] = headers.get("x-amz-date", "")
    signer = (S3SigV4Auth if s3 else SigV4Auth)(
        BotoCredentials(credentials.access_key, credentials.secret_key, credentials.session_token),
        match["service"],
        match["region"],
    )
    _check_signature(signer, request, match["signature"])


def _verify_presigned(
    method: str,
    path: str,
    query: dict[str, str],
    headers: Mapping[str, str],
    credentials: Credentials,
) -> None:
    """A presigned URL (query-string SigV4, as boto3's generate_presigned_url makes): the
    signature over the query without X-Amz-Signature, and its expiry."""
    import datetime as dt

    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    akid, _, scope = query.get("X-Amz-Credential", "").partition("/")
    parts = scope.split("/")
    if len(parts) != 4:
        raise SigV4Problem("key")
    _check_identity(akid, query.get("X-Amz-Security-Token"), credentials)
    stamp = query.get("X-Amz-Date", "")
    try:
        signed_at = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        expires = int(query.get("X-Amz-Expires", "0"))
    except ValueError:
        raise SigV4Problem("signature") from None
    if dt.datetime.now(dt.UTC) > signed_at + dt.timedelta(seconds=expires):
        raise SigV4Problem("expired")
    signature = query.get("X-Amz-Signature", "")
    rest = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in query.items()
        if k != "X-Amz-Signature"
    )
    names = query.get("X-Amz-SignedHeaders", "host").split(";")
    url = f"http://{headers.get('Host', '')}{path}?{rest}"
    request = AWSRequest(method=method, url=url, headers={n: headers.get(n, "") for n in names})
    request.context["timestamp"] = stamp
    signer = S3SigV4QueryAuth(
        BotoCredentials(credentials.access_key, credentials.secret_key, credentials.session_token),
        parts[2],
        parts[1],
        expires=expires,
    )
    _check_signature(signer, request, signature)


def _check_signature(signer: Any, request: Any, given: str) -> None:
    """The signature botocore's signer computes for `request`, compared in constant time."""
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, given):
        raise SigV4Problem("signature")


def _verify_presigned_v2(
    method: str,
    path: str,
    query: dict[str, str],
    headers: Mapping[str, str],
    credentials: Credentials,
) -> None:
    """A Signature Version 2 presigned URL (AWSAccessKeyId, Expires, Signature), which boto3
    makes by default for a custom endpoint; the string to sign is botocore's own."""
    import time
    from urllib.parse import urlsplit

    from botocore.auth import HmacV1Auth
    from botocore.compat import HTTPHeaders  # type: ignore[import-untyped]
    from botocore.credentials import Credentials as BotoCredentials

    class ExpiresAuth(HmacV1Auth):  # type: ignore[misc]
        """botocore's SigV2 signer, with the URL's Expires where it would put the date."""

        def _get_date(self) -> str:
            return str(expires)

    _check_identity(query.get("AWSAccessKeyId", ""), query.get("x-amz-security-token"), credentials)
    try:
        expires = int(query.get("Expires", ""))
    except ValueError:
        raise SigV4Problem("signature") from None
    if time.time() > expires:
        raise SigV4Problem("expired")
    signed = HTTPHeaders()
    signed["Date"] = str(expires)  # for query strings, Expires stands where Date would
    for name, value in query.items():
        if name.lower().startswith("x-amz-"):
            signed[name.lower()] = value
    for name in ("Content-Type", "Content-MD5"):
        if headers.get(name):
            signed[name] = headers[name]
    signer = ExpiresAuth(BotoCredentials(credentials.access_key, credentials.secret_key))
    expected = signer.sign_string(signer.canonical_string(method, urlsplit(path), signed))
    if not hmac.compare_digest(expected, query.get("Signature", "")):
        raise SigV4Problem("signature")


def chunk_signing(
    headers: Mapping[str, str], credentials: Credentials
) -> tuple[str, str, str, Callable[[str], str]]:
    """(seed signature, timestamp, credential scope, sign) of a request signed with the
    Authorization header (already verified), for the chunk signatures of a signed aws-chunked
    body: `sign` signs a string with the request's key, by botocore's SigV4 signer."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    match = _AUTH.fullmatch(headers.get("Authorization", "").strip())
    if match is None:
        raise SigV4Problem("missing")
    timestamp = headers.get("x-amz-date", "")
    signer = SigV4Auth(
        BotoCredentials(credentials.access_key, credentials.secret_key),
        match["service"],
        match["region"],
    )
    request = AWSRequest(method="PUT", url="http://localhost/")
    request.context["timestamp"] = timestamp

    def sign(string_to_sign: str) -> str:
        return str(signer.signature(string_to_sign, request))

    scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
    return match["signature"], timestamp, scope, sign
