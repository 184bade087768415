"""The Lambda REST API over the workspace, on loopback.

Reads come from config.yaml (read afresh, so a read right after a write sees it) and the
published versions; writes are config.yaml edits (alias writes are those of `s3sim alias
set`; function settings, event-invoke config, concurrency and recursion config are splices
of their keys) and function folders (deployment packages), which the running simulator then
applies as it applies a hand edit; PublishVersion is `s3sim publish`. Routing and reads are
in `lambda_api_routes`, function operations in `lambda_api_functions`, per-function settings
in `lambda_api_config`. Invoke runs through the same resolver and environments as S3 events
(RequestResponse), or is accepted into the journal like an S3 event (Event). Requests are
authenticated with Signature Version 4, as the S3 API's are (serving.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.core.config import Config
from simulator.serving import Credentials, Handler, LoopServer
from simulator.store.versions import VersionStore


@dataclass(frozen=True)
class Workspace:
    """What the Lambda API works on."""

    root: Path
    store: VersionStore
    config: Callable[[], Config]  # the running simulator's config (for invocations)
    # (config, ARN, event, request id, client_context=, log_sink=) -> Invocation
    invoke: Callable[..., Any]
    # an Event invocation (config, ARN, event, its chain: core/lineage.py) -> its request id
    accept: Callable[[Config, str, Any, str], str]
    # $LATEST's code was replaced: its environments retire now, not when the watcher sees it
    retire_latest: Callable[[str], None]
    # (function, alias, version, weights): the alias edit recorded in the alias history
    # (cause: the Lambda API); None: the plain config.yaml edit.
    edit_alias: Callable[[str, str, str, dict[int, float]], None] | None = None


class LambdaApi(LoopServer):
    def __init__(
        self, workspace: Workspace, credentials: Credentials, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        def handler() -> Handler:
            from simulator.lambdas.lambda_api_routes import Routes

            return Routes(workspace, credentials).handle

        super().__init__("lambda-api", handler, host, port)
