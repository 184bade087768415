"""The S3 REST API over the bucket folders, on loopback (first slice: buckets, listing,
objects).

Served by aiohttp's low-level server (`aiohttp.web.Server`) on an event loop of its own
thread, owned by `S3Api`. aiohttp because it is well kept, parses HTTP in C (llhttp), streams
request and response bodies (a 5 GB PutObject never sits in memory) and handles keep-alive
and chunked transfer; its low-level server skips the router, the hot path being one dispatch
on the method and the path. Every request is authenticated with Signature Version 4 against
the workspace's credentials, recomputed with botocore's own signer. Objects written here land
as files (written to a temporary dotfile in the bucket, then renamed), which the folder
watcher then reports like any other write.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from simulator.core.config import Config
from simulator.s3.api_writes import ApiWrites

log = structlog.get_logger("s3sim")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


class S3Api:
    """Owns its thread and event loop; `start` returns the endpoint's URL."""

    def __init__(
        self,
        buckets_dir: Path,
        credentials: Credentials,
        config: Callable[[], Config],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._buckets = buckets_dir
        self.writes = ApiWrites()  # what it wrote, for the intake to fire with its ids
        self._credentials = credentials
        self._config = config
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="s3sim-s3-api")
        self._server: asyncio.AbstractServer | None = None
        self.url = ""

    def start(self) -> str:
        """Bind now (the address is known at once, and a request made meanwhile waits in the
        listen backlog); serving starts on the thread, off the start-up path (importing the
        server library takes about 0.3 s here)."""
        sock = socket.create_server((self._host, self._port))
        port = sock.getsockname()[1]
        self.url = f"http://{self._host}:{port}"
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop)
        return self.url

    async def _serve(self, sock: socket.socket) -> None:
        from aiohttp import web

        from simulator.s3.api_routes import Routes

        try:
            routes = Routes(self._buckets, self._credentials, self._config, self.writes)
            self._server = await self._loop.create_server(web.Server(routes.handle), sock=sock)
        except Exception:
            sock.close()
            log.exception("s3_api.failed", url=self.url)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.wait_closed(), 5)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
