"""Invoke through the Lambda API (see `lambda_api_routes.py`): RequestResponse runs through the
same resolver and environments as S3 events, Event is accepted into the journal like an S3
event, DryRun only checks. `LogType: Tail` and `ClientContext` as Lambda has them.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import TYPE_CHECKING

from aiohttp import web

from simulator.core import lambda_errors, lineage
from simulator.core.arn import FunctionArn
from simulator.errors import InvalidParameterValue, RecursiveInvocation

if TYPE_CHECKING:
    from simulator.lambdas.lambda_api_routes import Routes

TAIL_BYTES = 4096  # X-Amz-Log-Result: the last 4 KB of the log


async def invoke(
    r: Routes, request: web.BaseRequest, function: str, qualifier: str | None, request_id: str
) -> web.Response:
    kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    config = r._ws.config()
    r._qualifier(function, qualifier)  # an unknown alias or version: 404 before running
    arn = str(config.function_arn(function, qualifier))
    raw = await request.read()
    try:
        event = json.loads(raw) if raw else {}
    except ValueError:
        raise InvalidParameterValue(
            "Could not parse request body into json: Could not parse payload into json"
        ) from None
    context = _client_context(request.headers.get("X-Amz-Client-Context"))
    # An invoke a handler makes continues its invocation's chain (botocore sends the trace).
    chain = lineage.from_trace_header(request.headers.get("X-Amzn-Trace-Id"))
    if kind == "DryRun":
        return web.Response(status=204)
    if kind == "Event":
        r._ws.accept(config, arn, event, chain)
        return web.Response(status=202)
    step = lineage.next_invocation(config, FunctionArn.parse(arn), chain)
    if step.stopped:
        raise RecursiveInvocation(lambda_errors.RECURSIVE_INVOCATION_MESSAGE)
    lines: list[str] = []
    loop = asyncio.get_running_loop()
    inv = await loop.run_in_executor(
        None,
        lambda: r._ws.invoke(
            config,
            arn,
            event,
            request_id,
            chain=step.lineage,
            client_context=context,
            log_sink=lines.append,
        ),
    )
    headers = {"X-Amz-Executed-Version": str(inv.version or "")}
    if not inv.result.ok:
        headers["X-Amz-Function-Error"] = "Unhandled"
    if request.headers.get("X-Amz-Log-Type") == "Tail":
        headers["X-Amz-Log-Result"] = log_tail(lines)
    body = json.dumps(inv.result.payload).encode()
    return web.Response(status=200, body=body, headers=headers, content_type="application/json")


def log_tail(lines: list[str]) -> str:
    """Invoke's X-Amz-Log-Result: base64 of the last 4 KB of the invocation's log."""
    text = "".join(f"{line}\n" for line in lines).encode()
    return base64.b64encode(text[-TAIL_BYTES:]).decode()


def _client_context(header: str | None) -> str | None:
    """X-Amz-Client-Context (base64 JSON) -> the JSON the runtime hands the handler."""
    if header is None:
        return None
    try:
        text = base64.b64decode(header, validate=True).decode()
        json.loads(text)
    except ValueError:
        raise InvalidParameterValue(
            "Client context must be a valid Base64-encoded JSON object."
        ) from None
    return text
