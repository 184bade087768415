"""A minimal local CodeDeploy endpoint: PutLifecycleEventHookExecutionStatus, the one call a
Lambda hook makes, so a hook using boto3's `codedeploy` client runs unchanged (environments
get AWS_ENDPOINT_URL_CODEDEPLOY). CodeDeploy speaks the JSON 1.1 protocol: POST /, the
operation in `X-Amz-Target: CodeDeploy_20141006.<Operation>`, errors as `{"__type", "message"}`
with status 400. Requests are signed with the workspace's credentials (SigV4), as for the
other endpoints.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from simulator.errors import HookStatusError
from simulator.serving import Credentials, Handler, LoopServer, SigV4Problem, verify_sigv4

log = structlog.get_logger("s3sim")
TARGET_PREFIX = "CodeDeploy_20141006."
JSON_TYPE = "application/x-amz-json-1.1"
PutStatus = Callable[[str, str, str], str]  # (deployment id, execution id, status) -> id


class CodeDeployApi(LoopServer):
    def __init__(
        self,
        put_status: PutStatus,
        credentials: Credentials,
        region: Callable[[], str],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        def handler() -> Handler:
            return _Routes(put_status, credentials, region).handle

        super().__init__("codedeploy-api", handler, host, port)


class _Routes:
    def __init__(
        self, put_status: PutStatus, credentials: Credentials, region: Callable[[], str]
    ) -> None:
        self._put, self._credentials, self._region = put_status, credentials, region

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        try:
            verify_sigv4(
                request.method,
                request.raw_path,
                request.headers,
                self._credentials,
                s3=False,
                body=body,
                region=self._region(),
            )
            status, answer = 200, self._route(request.headers.get("X-Amz-Target", ""), body)
        except SigV4Problem:
            status, answer = (
                400,
                _error(
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                ),
            )
        except HookStatusError as exc:
            status, answer = 400, _error(exc.code, exc.message)
        except Exception:  # a bug answers 500, and the server goes on
            log.exception("codedeploy_api.error")
            status, answer = 500, _error("InternalFailure", "The request processing has failed.")
        response = web.Response(status=status, body=json.dumps(answer), content_type=JSON_TYPE)
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return response

    def _route(self, target: str, body: bytes) -> dict[str, Any]:
        operation = target.removeprefix(TARGET_PREFIX)
        if operation != "PutLifecycleEventHookExecutionStatus":
            raise HookStatusError(
                "UnknownOperationException",
                f"s3sim serves only PutLifecycleEventHook"
                f"ExecutionStatus of CodeDeploy, not {operation or '(no X-Amz-Target)'}",
            )
        try:
            args = json.loads(body or b"{}")
        except ValueError:
            raise HookStatusError("SerializationException", "Malformed JSON body") from None
        deployment_id = str(args.get("deploymentId") or "")
        execution_id = str(args.get("lifecycleEventHookExecutionId") or "")
        if not deployment_id:
            raise HookStatusError("DeploymentIdRequiredException", "Deployment id is required")
        if not execution_id:
            raise HookStatusError(
                "InvalidLifecycleEventHookExecutionIdException",
                "Lifecycle event hook execution id is required",
            )
        done = self._put(deployment_id, execution_id, str(args.get("status") or ""))
        return {"lifecycleEventHookExecutionId": done}


def _error(code: str, message: str) -> dict[str, str]:
    return {"__type": code, "message": message}
