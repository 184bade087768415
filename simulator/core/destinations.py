"""Asynchronous invocation records for destinations (reference §5.4). Pure."""

from __future__ import annotations

from typing import Any

from simulator.core.s3_events import format_time


def record(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    attempts: int,
    event: Any,
    executed_version: str | None,
    response_payload: Any,
    time_ms: int,
    status_code: int = 200,
) -> dict[str, Any]:
    """AWS's invocation record: condition `Success` (no functionError), `RetriesExhausted` or
    `EventAgeExceeded`; the response payload is the return value or the error."""
    response: dict[str, Any] = {"statusCode": status_code}
    if executed_version is not None:
        response["executedVersion"] = executed_version
    if condition != "Success" and status_code == 200:
        response["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": format_time(time_ms),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": response,
        "responsePayload": response_payload,
    }


def qualified_arn(invoked: str) -> str:
    """Records name the invoked qualifier; an unqualified invoke is reported as `:$LATEST`."""
    return invoked if invoked.count(":") >= 7 else f"{invoked}:$LATEST"


def bucket_key(function: str, request_id: str, time_ms: int) -> str:
    """Where a failure record lands in a destination bucket.

    AWS writes `aws/lambda/async/<function>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>`; the UUID
    here is the request id, so a record can be found from the log stream.
    """
    stamp = format_time(time_ms)  # 2025-01-21T23:21:10.123Z
    day = stamp[:10].replace("-", "/")
    return f"aws/lambda/async/{function}/{day}/{stamp[:19].replace(':', '.')}-{request_id}"
