"""The Lambda API's function operations, driven by boto3 and the aws CLI against a running
simulator on the demo workspace. Expected values are the recordings' (delete_on_nonexisting_version,
qualifier_mismatch_delete_function, ops_on_nonexisting_version_get_function,
publish_with_wrong_revisionid, publish_with_wrong_sha256, revisions_version_and_alias,
alias_delete_nonexistent, qualifier_validation_*) or AWS's documented texts."""

from __future__ import annotations

import base64
import difflib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import aws, running
from tests.test_lambda_api import code, lambda_client

pytestmark = pytest.mark.integration
FN = "arn:aws:lambda:us-east-1:123456789012:function"
REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. "
    "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
)
HANDLER = """
import os

def handler(event, context):
    print("hello from {tag}")
    cc = context.client_context
    return {{"tag": "{tag}", "custom": cc.custom if cc else None, "mode": os.environ["MODE"]}}
"""


def package(tag: str) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as zf:
        zf.writestr("handler.py", HANDLER.format(tag=tag))
        zf.writestr("lib/helper.py", "X = 1\n")
    return data.getvalue()


def only_insertions(before: str, after: str) -> list[str]:
    """The lines `after` adds to `before`; fails if any line of `before` changed or went."""
    old, new = before.splitlines(), after.splitlines()
    added = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new).get_opcodes():
        assert op in ("equal", "insert"), (op, old[i1:i2], new[j1:j2])
        if op == "insert":
            added += new[j1:j2]
    return added


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def refused(call: Any, **kwargs: Any) -> tuple[str, str, int]:
    with pytest.raises(Exception) as error:
        call(**kwargs)
    return code(error.value)


def test_create_invoke_update_publish_and_delete_a_function(demo: Path) -> None:
    before = (demo / "config.yaml").read_text()
    with running(demo) as (_, log):
        client = lambda_client(demo)
        created = client.create_function(
            FunctionName="zipped",
            Runtime="python3.11",
            Role="arn:aws:iam::123456789012:role/any",
            Handler="handler.handler",
            Code={"ZipFile": package("v1")},
            Timeout=5,
            Environment={"Variables": {"MODE": "test"}},
            Publish=True,
        )
        assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
        # publish_version_on_create_and_republish: Version "1" with the unqualified ARN.
        assert (created["Version"], created["FunctionArn"], created["Timeout"]) == (
            "1",
            f"{FN}:zipped",
            5,
        )
        assert (demo / "functions/zipped/lib/helper.py").read_text() == "X = 1\n"
        added = only_insertions(before, (demo / "config.yaml").read_text())
        assert [line.strip() for line in added] == [
            "zipped:",
            "handler: handler.handler",
            "timeout: 5",
            "environment: {MODE: test}",
        ]
        assert refused(
            client.create_function,
            FunctionName="zipped",
            Role="arn:aws:iam::123456789012:role/any",
            Code={"ZipFile": package("v1")},
        ) == ("ResourceConflictException", "Function already exist: zipped", 409)

        got = client.get_function(FunctionName="zipped")
        assert got["Configuration"]["Version"] == "$LATEST"
        assert got["Code"]["Location"] == (demo / "functions/zipped").resolve().as_uri()
        assert got["Configuration"]["Environment"] == {"Variables": {"MODE": "test"}}

        context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
        result = client.invoke(FunctionName="zipped", LogType="Tail", ClientContext=context)
        assert json.loads(result["Payload"].read()) == {
            "tag": "v1",
            "custom": {"k": "v"},
            "mode": "test",
        }
        rid = result["ResponseMetadata"]["RequestId"]
        tail = base64.b64decode(result["LogResult"]).decode().splitlines()
        assert tail[0] == f"START RequestId: {rid} Version: $LATEST"
        assert "hello from v1" in tail
        assert tail[-2] == f"END RequestId: {rid}"
        assert tail[-1].startswith(f"REPORT RequestId: {rid}\tDuration: ")

        # A warm $LATEST environment does not outlive a change of its settings.
        reconfigured = client.update_function_configuration(
            FunctionName="zipped", Environment={"Variables": {"MODE": "live"}}
        )
        log.wait_for(
            lambda e: (
                e.get("event") == "config.reloaded"
                and "functions.zipped.environment.MODE: test -> live" in e.get("changes", [])
            )
        )
        relaxed = client.invoke(FunctionName="zipped")
        assert json.loads(relaxed["Payload"].read())["mode"] == "live"

        # UpdateFunctionCode: the RevisionId guard, then new code published in the same call.
        assert refused(
            client.update_function_code,
            FunctionName="zipped",
            ZipFile=package("v2"),
            RevisionId="not-the-revision",
        ) == ("PreconditionFailedException", REVISION_MISMATCH, 412)
        revision = reconfigured["RevisionId"]
        updated = client.update_function_code(
            FunctionName="zipped", ZipFile=package("v2"), RevisionId=revision, Publish=True
        )
        assert (updated["Version"], updated["FunctionArn"]) == ("2", f"{FN}:zipped:2")
        assert updated["CodeSha256"] != created["CodeSha256"]
        latest = client.invoke(FunctionName="zipped")
        assert json.loads(latest["Payload"].read())["tag"] == "v2"
        first = client.invoke(FunctionName="zipped", Qualifier="1")
        assert json.loads(first["Payload"].read())["tag"] == "v1"

        # DeleteFunction with a Qualifier: the recorded refusals, then one version.
        assert refused(client.delete_function, FunctionName="zipped", Qualifier="$LATEST") == (
            "InvalidParameterValueException",
            "$LATEST version cannot be deleted without deleting the function.",
            400,
        )
        assert refused(client.delete_function, FunctionName=f"{FN}:zipped:1", Qualifier="2") == (
            "InvalidParameterValueException",
            "The derived qualifier from the function name does not match the specified qualifier.",
            400,
        )
        assert refused(client.delete_function, FunctionName="zipped", Qualifier="live") == (
            "InvalidParameterValueException",
            "Deletion of aliases is not currently supported.",
            400,
        )
        client.create_alias(FunctionName="zipped", Name="live", FunctionVersion="1")
        assert refused(client.delete_function, FunctionName="zipped", Qualifier="1") == (
            "ResourceConflictException",
            "Unable to delete version because the following aliases reference it: [live]",
            409,
        )
        deleted = client.delete_function(FunctionName="zipped", Qualifier="2")
        assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
        versions = client.list_versions_by_function(FunctionName="zipped")["Versions"]
        assert [(v["Version"], v["FunctionArn"]) for v in versions] == [
            ("$LATEST", f"{FN}:zipped:$LATEST"),  # as recorded (version_lifecycle)
            ("1", f"{FN}:zipped:1"),
        ]
        assert not (demo / "versions/zipped/2").exists()

        # DeleteAlias is idempotent (alias_delete_nonexistent); then the whole function.
        for alias in ("live", "live"):
            gone = client.delete_alias(FunctionName="zipped", Name=alias)
            assert gone["ResponseMetadata"]["HTTPStatusCode"] == 204
        client.delete_function(FunctionName="zipped")
        assert refused(client.get_function, FunctionName="zipped") == (
            "ResourceNotFoundException",
            f"Function not found: {FN}:zipped",
            404,
        )
        assert refused(client.delete_function, FunctionName="zipped", Qualifier="1") == (
            "ResourceNotFoundException",
            f"Function not found: {FN}:zipped",
            404,
        )
    assert (demo / "config.yaml").read_text() == before
    assert not (demo / "functions/zipped").exists() and not (demo / "versions/zipped").exists()


def test_get_function_by_alias_and_missing_version(demo: Path) -> None:
    with running(demo):
        client = lambda_client(demo)
        by_alias = client.get_function(FunctionName="thumbnailer", Qualifier="prod")
        assert (by_alias["Configuration"]["FunctionArn"], by_alias["Configuration"]["Version"]) == (
            f"{FN}:thumbnailer:prod",
            "1",
        )
        assert by_alias["Code"]["Location"] == (
            (demo / "versions/thumbnailer/1/code").resolve().as_uri()
        )
        assert refused(client.get_function, FunctionName="thumbnailer", Qualifier="1221") == (
            "ResourceNotFoundException",
            f"Function not found: {FN}:thumbnailer:1221",
            404,
        )
        # qualifier_validation_lowercase_latest_invoke / _misspelled_latest_invoke
        assert refused(client.invoke, FunctionName="thumbnailer", Qualifier="$latest") == (
            "ResourceNotFoundException",
            f"Function not found: {FN}:thumbnailer:$latest",
            404,
        )
        assert refused(client.invoke, FunctionName=f"{FN}:thumbnailer:$LATES") == (
            "ValidationException",
            f"1 validation error detected: Value '{FN}:thumbnailer:$LATES' at 'functionName' "
            "failed to satisfy constraint: Member must satisfy regular expression pattern: "
            "(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-"
            "\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST(\\.PUBLISHED)?|"
            "[a-zA-Z0-9-_]+))?",
            400,
        )


def test_configuration_updates_and_revision_guards(demo: Path) -> None:
    before = (demo / "config.yaml").read_text()
    with running(demo) as (_, log):
        client = lambda_client(demo)
        rev0 = client.get_function_configuration(FunctionName="thumbnailer")["RevisionId"]
        assert refused(client.publish_version, FunctionName="thumbnailer", RevisionId="wrong") == (
            "PreconditionFailedException",
            REVISION_MISMATCH,
            412,
        )
        sha = client.get_function_configuration(FunctionName="thumbnailer")["CodeSha256"]
        assert refused(
            client.publish_version, FunctionName="thumbnailer", CodeSha256="somenonexistentsha256"
        ) == (
            "InvalidParameterValueException",
            f"CodeSHA256 (somenonexistentsha256) is different from current CodeSHA256 in "
            f"$LATEST ({sha}). Please try again with the CodeSHA256 in $LATEST.",
            400,
        )
        assert refused(
            client.update_function_configuration, FunctionName="thumbnailer", Timeout=1000
        ) == (
            "ValidationException",
            "1 validation error detected: Value '1000' at 'timeout' failed to satisfy "
            "constraint: Member must have value less than or equal to 900",
            400,
        )
        updated = client.update_function_configuration(
            FunctionName="thumbnailer",
            Timeout=10,
            Environment={"Variables": {"SIZE": "256"}},
            Role="arn:aws:iam::123456789012:role/ignored",
            RevisionId=rev0,
        )
        assert (updated["Timeout"], updated["Environment"]) == (
            10,
            {"Variables": {"SIZE": "256"}},
        )
        assert updated["RevisionId"] != rev0
        assert changed_lines(before, (demo / "config.yaml").read_text()) == [
            (
                "    timeout: 3                 # seconds, 1-900",
                "    timeout: 10                # seconds, 1-900",
            ),
            ('      SIZE: "128"', '      SIZE: "256"'),
        ]
        log.wait_for(log.named("config.reloaded"))
        assert refused(
            client.update_function_configuration,
            FunctionName="thumbnailer",
            Timeout=11,
            RevisionId=rev0,
        ) == ("PreconditionFailedException", REVISION_MISMATCH, 412)

        # revisions_version_and_alias: publishing gives $LATEST a new RevisionId; the
        # version keeps its own; UpdateAlias checks the alias's.
        rev1 = client.get_function(FunctionName="thumbnailer")["Configuration"]["RevisionId"]
        published = client.publish_version(FunctionName="thumbnailer", RevisionId=rev1)
        rev_after = client.get_function(FunctionName="thumbnailer")["Configuration"]["RevisionId"]
        assert rev_after != rev1
        again = client.get_function(FunctionName="thumbnailer", Qualifier=published["Version"])
        assert again["Configuration"]["RevisionId"] == published["RevisionId"]
        assert again["Configuration"]["Timeout"] == 10
        assert refused(
            client.update_alias,
            FunctionName="thumbnailer",
            Name="prod",
            FunctionVersion="2",
            RevisionId="wrong",
        ) == ("PreconditionFailedException", REVISION_MISMATCH, 412)
        alias_rev = client.get_alias(FunctionName="thumbnailer", Name="prod")["RevisionId"]
        moved = client.update_alias(
            FunctionName="thumbnailer", Name="prod", FunctionVersion="2", RevisionId=alias_rev
        )
        assert moved["FunctionVersion"] == "2" and moved["RevisionId"] != alias_rev


def test_create_function_refuses_bad_packages_and_writes_nothing(demo: Path) -> None:
    before = (demo / "config.yaml").read_text()
    escaping = io.BytesIO()
    with zipfile.ZipFile(escaping, "w") as zf:
        zf.writestr("../evil.py", "x = 1\n")
    with running(demo):
        client = lambda_client(demo)
        common = {"Role": "arn:aws:iam::123456789012:role/any", "Handler": "handler.handler"}
        assert refused(
            client.create_function, FunctionName="bad", Code={"ZipFile": b"not a zip"}, **common
        ) == (
            "InvalidParameterValueException",
            "Could not unzip uploaded file. Please check your file, then try to upload again.",
            400,
        )
        assert refused(
            client.create_function,
            FunctionName="bad",
            Code={"ZipFile": escaping.getvalue()},
            **common,
        ) == (
            "InvalidParameterValueException",
            "The package holds an entry outside the function folder (../evil.py)",
            400,
        )
        assert refused(
            client.create_function,
            FunctionName="bad",
            Code={"ZipFile": package("v1")},
            MemorySize=20480,  # (botocore checks the minimum itself)
            **common,
        ) == (
            "ValidationException",
            "1 validation error detected: Value '20480' at 'memorySize' failed to satisfy "
            "constraint: Member must have value less than or equal to 10240",
            400,
        )
    assert (demo / "config.yaml").read_text() == before
    assert not (demo / "functions/bad").exists() and not (demo / "evil.py").exists()
    assert not list((demo / "functions").glob(".*"))  # no staging folder left behind


def test_aws_cli_create_function_from_a_zip_file_and_delete_it(demo: Path) -> None:
    zipped = demo / "fn.zip"
    zipped.write_bytes(package("cli"))
    with running(demo):
        printed = json.loads(
            aws(
                demo,
                "lambda",
                "create-function",
                "--function-name",
                "clifn",
                "--runtime",
                "python3.11",
                "--role",
                "arn:aws:iam::123456789012:role/any",
                "--handler",
                "handler.handler",
                "--zip-file",
                f"fileb://{zipped}",
            )
        )
        assert (printed["FunctionName"], printed["Version"]) == ("clifn", "$LATEST")
        assert yaml.safe_load((demo / "config.yaml").read_text())["functions"]["clifn"] == {
            "handler": "handler.handler"
        }
        aws(demo, "lambda", "delete-function", "--function-name", "clifn")
    assert "clifn" not in yaml.safe_load((demo / "config.yaml").read_text())["functions"]


def test_what_config_yaml_still_needs_is_not_deleted(demo: Path) -> None:
    before = (demo / "config.yaml").read_text()
    with running(demo):
        client = lambda_client(demo)
        kind, message, status = refused(client.delete_function, FunctionName="thumbnailer")
        assert (kind, status) == ("ResourceConflictException", 409)
        assert message.startswith("config.yaml still refers to it: ")
        assert "buckets.uploads" in message
        conflict = refused(client.delete_alias, FunctionName="thumbnailer", Name="prod")
        assert conflict[0] == "ResourceConflictException"
        assert "thumbnailer:prod" in conflict[1]
        assert refused(client.delete_alias, FunctionName="nobody", Name="prod") == (
            "ResourceNotFoundException",
            f"Function not found: {FN}:nobody",
            404,
        )
    assert (demo / "config.yaml").read_text() == before
    assert (demo / "functions/thumbnailer/handler.py").is_file()
    assert sorted(p.name for p in (demo / "versions/thumbnailer").iterdir() if p.is_dir()) == [
        "1",
        "2",
    ]


def test_code_from_a_bucket_folder_and_refusals_of_the_source(demo: Path) -> None:
    (demo / "buckets/artifacts").mkdir(parents=True)
    (demo / "buckets/artifacts/fn.zip").write_bytes(package("s3"))
    (demo / "functions/stray").mkdir()
    with running(demo):
        client = lambda_client(demo)
        common = {"Role": "arn:aws:iam::123456789012:role/any", "Handler": "handler.handler"}
        made = client.create_function(
            FunctionName="froms3",
            Code={"S3Bucket": "artifacts", "S3Key": "fn.zip"},
            Environment={"Variables": {"MODE": "s3"}},
            **common,
        )
        assert (
            made["CodeSha256"]
            == client.get_function(FunctionName="froms3")["Configuration"]["CodeSha256"]
        )
        result = client.invoke(FunctionName="froms3")
        assert json.loads(result["Payload"].read())["tag"] == "s3"
        # A package over aiohttp's default 1 MB request limit (3 MB, incompressible).
        big = io.BytesIO()
        with zipfile.ZipFile(big, "w") as zf:
            zf.writestr("handler.py", HANDLER.format(tag="big"))
            zf.writestr("blob.bin", os.urandom(3 << 20))
        client.update_function_code(FunctionName="froms3", ZipFile=big.getvalue())
        assert (demo / "functions/froms3/blob.bin").stat().st_size == 3 << 20
        assert refused(
            client.update_function_code,
            FunctionName="froms3",
            S3Bucket="artifacts",
            S3Key="../../config.yaml",
        ) == (
            "InvalidParameterValueException",
            "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: "
            "The specified key does not exist.",
            400,
        )
        assert refused(
            client.create_function,
            FunctionName="stray",
            Code={"ZipFile": package("x")},
            **common,
        ) == (
            "ResourceConflictException",
            "functions/stray/ already exists in the workspace but config.yaml has no function "
            "stray: add it to config.yaml, or move the folder away",
            409,
        )


def test_a_request_over_lambdas_size_limit_is_refused_before_it_is_read(demo: Path) -> None:
    import http.client
    from urllib.parse import urlsplit

    with running(demo):
        endpoint = urlsplit(json.loads((demo / ".s3sim/endpoints.json").read_text())["lambda"])
        conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=60)
        try:
            conn.putrequest("POST", "/2015-03-31/functions")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", "70167212")
            conn.endheaders()  # the body is never sent: the answer must not wait for it
            response = conn.getresponse()
            answer = (response.status, response.getheader("x-amzn-ErrorType"))
            body = json.loads(response.read())
        finally:
            conn.close()
        # Chunked, without a Content-Length: refused once the limit is read.
        conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=120)
        try:
            chunk = b"x" * (1 << 20)
            conn.request(
                "PUT",
                "/2015-03-31/functions/thumbnailer/code",
                body=(chunk for _ in range(67)),  # 67 MiB: 87381 bytes over the limit
                encode_chunked=True,
                headers={"Transfer-Encoding": "chunked"},
            )
            response = conn.getresponse()
            chunked = (response.status, json.loads(response.read())["Message"])
        except (BrokenPipeError, ConnectionResetError):  # answered before all was sent
            response = conn.getresponse()
            chunked = (response.status, json.loads(response.read())["Message"])
        finally:
            conn.close()
    assert answer == (413, "RequestEntityTooLargeException")
    assert body == {  # as AWS answers it: `Message`, no `Type`
        "Message": "Request must be smaller than 70167211 bytes for the CreateFunction operation"
    }
    assert chunked == (
        413,
        "Request must be smaller than 70167211 bytes for the UpdateFunctionCode operation",
    )


def test_an_invoke_payload_over_6_mb_is_refused(demo: Path) -> None:
    with running(demo):
        client = lambda_client(demo)
        payload = json.dumps({"blob": "x" * 6291456})
        assert refused(client.invoke, FunctionName="auditor", Payload=payload) == (
            "RequestEntityTooLargeException",
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
            413,
        )
        small = client.invoke(FunctionName="auditor", Payload=json.dumps({"blob": "x" * 2_000_000}))
        assert small["StatusCode"] == 200
