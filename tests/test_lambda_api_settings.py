"""Event-invoke config, reserved concurrency and recursion config through the Lambda API,
mapped onto config.yaml's keys, against a running simulator on the demo workspace. Shapes
and texts are AWS's (botocore's model, Lambda's API reference)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simulator.core import config_parse
from simulator.errors import ConfigError
from tests.helpers import aws, running
from tests.test_lambda_api import lambda_client
from tests.test_lambda_api_functions import FN, changed_lines, refused

pytestmark = pytest.mark.integration


def functions(ws: Path) -> dict[str, dict[str, object]]:
    loaded: dict[str, dict[str, object]] = yaml.safe_load((ws / "config.yaml").read_text())[
        "functions"
    ]
    return loaded


def without_metadata(answer: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in answer.items() if k not in ("ResponseMetadata", "LastModified")}


def test_event_invoke_config_on_the_function_and_on_an_alias(demo: Path) -> None:
    with running(demo) as (_, log):
        client = lambda_client(demo)
        assert without_metadata(
            client.get_function_event_invoke_config(FunctionName="thumbnailer")
        ) == {
            "FunctionArn": f"{FN}:thumbnailer:$LATEST",
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 21600,
            "DestinationConfig": {
                "OnSuccess": {},
                "OnFailure": {"Destination": "arn:aws:s3:::failed"},
            },
        }
        assert refused(
            client.get_function_event_invoke_config, FunctionName="thumbnailer", Qualifier="prod"
        ) == (
            "ResourceNotFoundException",
            f"The function {FN}:thumbnailer:prod doesn't have an EventInvokeConfig",
            404,
        )
        assert (
            refused(
                client.update_function_event_invoke_config,
                FunctionName="thumbnailer",
                Qualifier="prod",
                MaximumRetryAttempts=1,
            )[0]
            == "ResourceNotFoundException"
        )

        before = (demo / "config.yaml").read_text()
        put = client.put_function_event_invoke_config(
            FunctionName="thumbnailer", Qualifier="prod", MaximumRetryAttempts=0
        )
        assert without_metadata(put) == {
            "FunctionArn": f"{FN}:thumbnailer:prod",
            "MaximumRetryAttempts": 0,
            "DestinationConfig": {"OnSuccess": {}, "OnFailure": {}},
        }
        [(old, new)] = changed_lines(before, (demo / "config.yaml").read_text())
        assert old.split("#")[0].rstrip() == "      prod: 1"
        assert new.split("#")[0].rstrip() == "      prod: {version: 1, retries: 0}"
        log.wait_for(log.named("config.reloaded"))

        merged = client.update_function_event_invoke_config(
            FunctionName="thumbnailer",
            Qualifier="prod",
            MaximumEventAgeInSeconds=600,
            DestinationConfig={"OnFailure": {"Destination": "arn:aws:s3:::failed"}},
        )
        assert (
            merged["MaximumRetryAttempts"],
            merged["MaximumEventAgeInSeconds"],
            merged["DestinationConfig"]["OnFailure"],
        ) == (0, 600, {"Destination": "arn:aws:s3:::failed"})
        listed = client.list_function_event_invoke_configs(FunctionName="thumbnailer")
        assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == [
            f"{FN}:thumbnailer:$LATEST",
            f"{FN}:thumbnailer:prod",
        ]
        assert refused(
            client.put_function_event_invoke_config,
            FunctionName="thumbnailer",
            MaximumRetryAttempts=5,
        ) == (
            "ValidationException",
            "1 validation error detected: Value '5' at 'maximumRetryAttempts' failed to "
            "satisfy constraint: Member must have value less than or equal to 2",
            400,
        )
        assert (
            refused(
                client.put_function_event_invoke_config,
                FunctionName="thumbnailer",
                Qualifier="1",
                MaximumRetryAttempts=0,
            )[0]
            == "InvalidParameterValueException"
        )

        deleted = client.delete_function_event_invoke_config(
            FunctionName="thumbnailer", Qualifier="prod"
        )
        assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
        assert functions(demo)["thumbnailer"]["aliases"] == {
            "prod": 1,
            "beta": 2,
            "canary": {"version": 1, "weights": {2: 0.2}},
            "dev": "$LATEST",
        }

        # Put replaces the function's own settings: what it is not given goes.
        before = (demo / "config.yaml").read_text()
        client.put_function_event_invoke_config(
            FunctionName="auditor",
            MaximumRetryAttempts=0,
            DestinationConfig={"OnFailure": {"Destination": "arn:aws:s3:::failed"}},
        )
        assert changed_lines(before, (demo / "config.yaml").read_text()) == [
            ("    retries: 1", "    retries: 0")
        ]
        client.delete_function_event_invoke_config(FunctionName="auditor")
        auditor = functions(demo)["auditor"]
        assert "retries" not in auditor and "on_failure" not in auditor
        assert refused(client.get_function_event_invoke_config, FunctionName="auditor") == (
            "ResourceNotFoundException",
            f"The function {FN}:auditor:$LATEST doesn't have an EventInvokeConfig",
            404,
        )


def test_reserved_concurrency_and_recursion_config(demo: Path) -> None:
    with running(demo) as (_, log):
        client = lambda_client(demo)
        unset = client.get_function_concurrency(FunctionName="thumbnailer")
        assert "ReservedConcurrentExecutions" not in unset
        put = client.put_function_concurrency(
            FunctionName="thumbnailer", ReservedConcurrentExecutions=3
        )
        assert put["ReservedConcurrentExecutions"] == 3
        assert functions(demo)["thumbnailer"]["reserved_concurrency"] == 3
        got = client.get_function_concurrency(FunctionName="thumbnailer")
        assert got["ReservedConcurrentExecutions"] == 3
        assert client.get_function(FunctionName="thumbnailer")["Concurrency"] == {
            "ReservedConcurrentExecutions": 3
        }
        log.wait_for(log.named("config.reloaded"))
        client.delete_function_concurrency(FunctionName="thumbnailer")
        assert "reserved_concurrency" not in functions(demo)["thumbnailer"]

        assert client.get_function_recursion_config(FunctionName="auditor")["RecursiveLoop"] == (
            "Terminate"
        )
        allowed = client.put_function_recursion_config(
            FunctionName="auditor", RecursiveLoop="Allow"
        )
        assert allowed["RecursiveLoop"] == "Allow"
        assert functions(demo)["auditor"]["recursive_loop"] == "Allow"
        assert refused(
            client.put_function_recursion_config, FunctionName="auditor", RecursiveLoop="Often"
        ) == (
            "ValidationException",
            "1 validation error detected: Value 'Often' at 'recursiveLoop' failed to satisfy "
            "constraint: Member must satisfy enum value set: [Allow, Terminate]",
            400,
        )
        printed = aws(demo, "lambda", "get-function-recursion-config", "--function-name", "auditor")
        assert '"RecursiveLoop": "Allow"' in printed
        aws(
            demo,
            "lambda",
            "put-function-concurrency",
            "--function-name",
            "auditor",
            "--reserved-concurrent-executions",
            "2",
        )
        assert functions(demo)["auditor"]["reserved_concurrency"] == 2


def test_recursive_loop_key_is_validated_like_the_others() -> None:
    assert config_parse.parse({"functions": {"f": {}}}).functions["f"].recursive_loop == (
        "Terminate"
    )
    parsed = config_parse.parse({"functions": {"f": {"recursive_loop": "Allow"}}})
    assert parsed.functions["f"].recursive_loop == "Allow"
    with pytest.raises(ConfigError) as error:
        config_parse.parse({"functions": {"f": {"recursive_loop": "Sometimes"}}})
    assert [str(p) for p in error.value.problems] == [
        "functions.f.recursive_loop: must be one of Terminate, Allow, got 'Sometimes'"
    ]
