"""The Lambda API over the workspace, driven by boto3 and the aws CLI on the demo workspace.
Expected values are the recordings' (alias_lifecycle, alias_update_nonexistent,
alias_routing_config_invalid_and_notfound)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulator.core.lambda_env import DUMMY_CREDENTIALS
from tests.helpers import aws, running

pytestmark = pytest.mark.integration
ARN = "arn:aws:lambda:us-east-1:123456789012:function:thumbnailer"


def lambda_client(ws: Path) -> Any:
    import boto3  # type: ignore[import-untyped]

    endpoint = json.loads((ws / ".s3sim/endpoints.json").read_text())["lambda"]
    return boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def code(error: Any) -> tuple[str, str, int]:
    response = error.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_aws_lambda_update_alias_repoints_prod_with_a_one_line_edit(demo: Path) -> None:
    before = (demo / "config.yaml").read_text().splitlines()
    with running(demo) as (_, log):
        printed = json.loads(
            aws(
                demo,
                "lambda",
                "update-alias",
                "--function-name",
                "thumbnailer",
                "--name",
                "prod",
                "--function-version",
                "2",
            )
        )
        assert (printed["Name"], printed["FunctionVersion"], printed["AliasArn"]) == (
            "prod",
            "2",
            f"{ARN}:prod",
        )
        log.wait_for(log.named("config.reloaded"))
        client = lambda_client(demo)
        result = client.invoke(
            FunctionName="thumbnailer",
            Qualifier="prod",
            Payload=json.dumps(
                {
                    "Records": [
                        {
                            "s3": {
                                "bucket": {"name": "uploads"},
                                "object": {"key": "a.jpg", "size": 1},
                            }
                        }
                    ]
                }
            ),
        )
    after = (demo / "config.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(changed) == 1 and changed[0][1].strip().startswith("prod: 2")
    assert result["ExecutedVersion"] == "2" and result["StatusCode"] == 200
    assert json.loads(result["Payload"].read())["version"] == "2"


def test_aliases_read_and_refused_as_aws_answers(demo: Path) -> None:
    with running(demo):
        client = lambda_client(demo)
        alias = client.get_alias(FunctionName="thumbnailer", Name="canary")
        assert {k: alias[k] for k in ("AliasArn", "Name", "FunctionVersion", "RoutingConfig")} == {
            "AliasArn": f"{ARN}:canary",
            "Name": "canary",
            "FunctionVersion": "1",
            "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.2}},
        }
        names = [a["Name"] for a in client.list_aliases(FunctionName="thumbnailer")["Aliases"]]
        assert names == ["prod", "beta", "canary", "dev"]
        with pytest.raises(Exception) as missing:
            client.update_alias(
                FunctionName="thumbnailer", Name="non-existent", FunctionVersion="1"
            )
        assert code(missing.value) == (
            "ResourceNotFoundException",
            f"Alias not found: {ARN}:non-existent",
            404,
        )
        with pytest.raises(Exception) as exists:
            client.create_alias(FunctionName="thumbnailer", Name="prod", FunctionVersion="1")
        assert code(exists.value) == (
            "ResourceConflictException",
            f"Alias already exists: {ARN}:prod",
            409,
        )
        with pytest.raises(Exception) as unknown:
            client.create_alias(FunctionName="thumbnailer", Name="x", FunctionVersion="10")
        assert code(unknown.value) == (
            "ResourceNotFoundException",
            f"Function not found: {ARN}:10",
            404,
        )
        with pytest.raises(Exception) as same:
            client.create_alias(
                FunctionName="thumbnailer",
                Name="x",
                FunctionVersion="1",
                RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
            )
        assert code(same.value) == (
            "InvalidParameterValueException",
            "Invalid function version 1. Function version 1 is already included in routing "
            "configuration.",
            400,
        )
        created = client.create_alias(FunctionName="thumbnailer", Name="blue", FunctionVersion="2")
        assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
        assert client.get_alias(FunctionName="thumbnailer", Name="blue")["FunctionVersion"] == "2"
    assert "blue: 2" in (demo / "config.yaml").read_text()


def test_publish_list_versions_configuration_and_invoke_kinds(demo: Path) -> None:
    with running(demo) as (_, log):
        client = lambda_client(demo)
        published = client.publish_version(FunctionName="thumbnailer", Description="via API")
        assert published["ResponseMetadata"]["HTTPStatusCode"] == 201
        assert (published["Version"], published["FunctionArn"]) == ("3", f"{ARN}:3")
        assert published["Description"] == "via API"  # the version's own (version_lifecycle)
        versions = client.list_versions_by_function(FunctionName="thumbnailer")["Versions"]
        assert [v["Version"] for v in versions] == ["$LATEST", "1", "2", "3"]
        conf = client.get_function_configuration(FunctionName="thumbnailer", Qualifier="3")
        assert (
            conf["CodeSha256"] == published["CodeSha256"] and conf["Handler"] == "handler.handler"
        )
        event = {
            "Records": [
                {"s3": {"bucket": {"name": "uploads"}, "object": {"key": "fail.jpg", "size": 1}}}
            ]
        }
        failed = client.invoke(FunctionName="thumbnailer:dev", Payload=json.dumps(event))
        assert failed["FunctionError"] == "Unhandled" and failed["ExecutedVersion"] == "$LATEST"
        assert json.loads(failed["Payload"].read())["errorType"] == "RuntimeError"
        accepted = client.invoke(
            FunctionName="auditor", InvocationType="Event", Payload=json.dumps({"hello": 1})
        )
        assert accepted["StatusCode"] == 202
        log.wait_for(log.named("invoke.report", function="auditor"))
        dry = client.invoke(FunctionName="auditor", InvocationType="DryRun")
        assert dry["StatusCode"] == 204
