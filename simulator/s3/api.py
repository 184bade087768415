"""The S3 REST API over the bucket folders, on loopback (buckets, notification
configuration, listing, objects, tagging, multipart: see `api_routes.py` for the dispatch).

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

from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.core.config import Config
from simulator.s3.api_writes import ApiWrites
from simulator.serving import Credentials, Handler, LoopServer


class S3Api(LoopServer):
    """The S3 API's server (LoopServer); `start` returns the endpoint's URL."""

    def __init__(
        self,
        buckets_dir: Path,
        credentials: Credentials,
        config: Callable[[], Config],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.writes = ApiWrites()  # what it wrote, for the intake to fire with its ids
        self._routes: Any = None

        def handler() -> Handler:
            from simulator.s3.api_routes import Routes

            self._routes = Routes(buckets_dir, credentials, config, self.writes)
            return self._routes.handle  # type: ignore[no-any-return]

        super().__init__("s3-api", handler, host, port)

    def stop(self) -> None:
        super().stop()
        if self._routes is not None:  # its loop has stopped: nothing uses it any more
            self._routes.close()
