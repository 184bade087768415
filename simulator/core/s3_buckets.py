"""The S3 API's bucket vocabulary: CreateBucket's and PutBucketNotificationConfiguration's
bodies, bucket name and location checks, and config problems as S3's errors. Pure.

A notification configuration arrives as XML (`NotificationConfiguration` with
`CloudFunctionConfiguration` elements, botocore's wire names for LambdaFunctionConfigurations)
and is turned into the S3 shape config.yaml accepts, so the config parser's own validation
(and its AWS texts) decides what is valid; its problems are then mapped back to S3's error
codes and argument elements.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from simulator.core.config_names import bucket_name_problems
from simulator.core.s3_api import S3Error
from simulator.errors import Problem

MALFORMED = S3Error(
    "MalformedXML",
    400,
    "The XML you provided was not well-formed or did not validate against our published schema",
)
UNVALIDATED = "Unable to validate the following destination configurations"
_OTHER_DESTINATIONS = ("QueueConfiguration", "TopicConfiguration", "EventBridgeConfiguration")
_UNAUTHORIZED = re.compile(r"Not authorized to invoke function \[([^\]]+)\]")


def invalid_name(bucket: str) -> S3Error | None:
    if bucket_name_problems(bucket):
        return S3Error("InvalidBucketName", 400, "The specified bucket is not valid.", bucket)
    return None


def already_owned(bucket: str) -> S3Error:
    return S3Error(
        "BucketAlreadyOwnedByYou",
        409,
        "Your previous request to create the named bucket succeeded and you already own it.",
        bucket,
    )


def not_empty(bucket: str) -> S3Error:
    return S3Error("BucketNotEmpty", 409, "The bucket you tried to delete is not empty", bucket)


def location_constraint(body: bytes) -> str:
    """CreateBucketConfiguration's LocationConstraint ('' when there is no body or none)."""
    if not body.strip():
        return ""
    root = _xml(body)
    found = [n for n in root.iter() if _tag(n) == "LocationConstraint"]
    return (found[0].text or "").strip() if found else ""


def location_problem(constraint: str, region: str) -> S3Error | None:
    """S3's answers to a constraint that does not match the endpoint's region: us-east-1 takes
    no constraint (or `us-east-1` itself is refused as invalid), other regions need theirs."""
    if constraint == region and region != "us-east-1":
        return None
    if not constraint and region == "us-east-1":
        return None
    if constraint == "us-east-1":
        return S3Error(
            "InvalidLocationConstraint", 400, "The specified location-constraint is not valid"
        )
    shown = constraint or "unspecified"
    return S3Error(
        "IllegalLocationConstraintException",
        400,
        f"The {shown} location constraint is incompatible for the region specific endpoint "
        "this request was sent to.",
    )


def parse_notification(body: bytes) -> list[dict[str, Any]]:
    """PutBucketNotificationConfiguration's body -> LambdaFunctionConfigurations in S3's shape
    (as config.yaml accepts it). Other destination types cannot exist here: S3 answers a
    destination it cannot reach with "Unable to validate ..."."""
    root = _xml(body)
    if _tag(root) != "NotificationConfiguration":
        raise MALFORMED
    configs = []
    for node in root:
        tag = _tag(node)
        if tag in _OTHER_DESTINATIONS:
            raise S3Error(
                "InvalidArgument",
                400,
                UNVALIDATED,
                arguments=(
                    ("ArgumentName1", f"{tag}, null"),
                    ("ArgumentValue1", "s3sim delivers to Lambda functions only"),
                ),
            )
        if tag != "CloudFunctionConfiguration":
            raise MALFORMED
        configs.append(_lambda_configuration(node))
    return configs


def _lambda_configuration(node: ET.Element) -> dict[str, Any]:
    config: dict[str, Any] = {}
    events: list[str] = []
    for child in node:
        tag, text = _tag(child), (child.text or "").strip()
        if tag == "Id":
            config["Id"] = text
        elif tag == "CloudFunction":
            config["LambdaFunctionArn"] = text
        elif tag == "Event":
            events.append(text)
        elif tag == "Filter":
            config["Filter"] = {"Key": {"FilterRules": _filter_rules(child)}}
        else:
            raise MALFORMED
    if "LambdaFunctionArn" not in config or not events:
        raise MALFORMED  # both are required by S3's schema
    config["Events"] = events
    return config


def _filter_rules(node: ET.Element) -> list[dict[str, str]]:
    rules = []
    for key in node:
        if _tag(key) != "S3Key":
            raise MALFORMED
        for rule in key:
            fields = {_tag(c): (c.text or "") for c in rule}
            if _tag(rule) != "FilterRule" or "Name" not in fields:
                raise MALFORMED
            rules.append({"Name": fields["Name"].strip(), "Value": fields.get("Value", "")})
    return rules


def problem_error(problems: Sequence[Problem]) -> S3Error:
    """The config parser's problems with one bucket's rules as the error S3 answers: every
    unreachable destination named in ArgumentName/ArgumentValue pairs, else the first
    problem's message (the texts are S3's own where S3 has one)."""
    unreachable = [m.group(1) for p in problems if (m := _UNAUTHORIZED.search(p.message))]
    if unreachable:
        arguments: list[tuple[str, str]] = []
        for n, arn in enumerate(dict.fromkeys(unreachable), start=1):
            arguments.append((f"ArgumentName{n}", f"{arn}, null"))
            arguments.append((f"ArgumentValue{n}", f"Not authorized to invoke function [{arn}]"))
        return S3Error("InvalidArgument", 400, UNVALIDATED, arguments=tuple(arguments))
    message = problems[0].message
    if message.startswith("The ARN could not be parsed: "):
        value = message.removeprefix("The ARN could not be parsed: ").strip("'\"")
        return S3Error(
            "InvalidArgument",
            400,
            "The ARN could not be parsed",
            arguments=(("ArgumentName", "CloudFunction"), ("ArgumentValue", value)),
        )
    if message.startswith("The event is not supported for notifications: "):
        value = message.rsplit(": ", 1)[1].strip("'\"")
        return S3Error(
            "InvalidArgument",
            400,
            "The event is not supported for notifications",
            arguments=(("ArgumentName", "Event"), ("ArgumentValue", value)),
        )
    return S3Error("InvalidArgument", 400, message)


def _xml(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)  # expands no external entities (ElementTree never does)
    except ET.ParseError:
        raise MALFORMED from None


def _tag(node: ET.Element) -> str:
    return str(node.tag).rsplit("}", 1)[-1]
