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
            self._web = web.Server(self._make_handler())
            self._server = await self._loop.create_server(self._web, sock=sock)
        except Exception:
            sock.close()
            log.exception(f"{self._name}.failed", url=self.url)

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
) -> None:
    """The Authorization header's signature, recomputed with botocore's own signer from the
    headers it names (and, without an x-amz-content-sha256 header, from `body`, as services
    other than S3 sign it); raises SigV4Problem."""
    from botocore.auth import S3SigV4Auth, SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import (  # type: ignore[import-untyped]
        Credentials as BotoCredentials,
    )

    match = _AUTH.fullmatch(headers.get("Authorization", "").strip())
    if match is None:
        raise SigV4Problem("missing")
    if match["akid"] != credentials.access_key:
        raise SigV4Problem("key")
    token = headers.get("x-amz-security-token")
    if credentials.session_token is not None and token not in (None, credentials.session_token):
        raise SigV4Problem("token")
    signed = {name: headers.get(name, "") for name in match["signed"].split(";")}
    url = f"http://{headers.get('Host', '')}{raw_path}"
    request = AWSRequest(method=method, url=url, headers=signed, data=body)
    request.context["timestamp"] = headers.get("x-amz-date", "")
    signer = (S3SigV4Auth if s3 else SigV4Auth)(
        BotoCredentials(credentials.access_key, credentials.secret_key, credentials.session_token),
        match["service"],
        match["region"],
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SigV4Problem("signature")
