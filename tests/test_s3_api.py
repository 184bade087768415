"""The S3 API over the bucket folders, driven by boto3 (a real client) and by hand where a
client would never send the request (a bad signature, an aws-chunked body with a trailer)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from simulator.core.lambda_env import DUMMY_CREDENTIALS
from tests.helpers import ARN, aws, drop, make_workspace, running

pytestmark = pytest.mark.integration

READER = """
import boto3
from urllib.parse import unquote_plus

s3 = boto3.client("s3")  # AWS_ENDPOINT_URL_S3 and the credentials come from the environment


def handler(event, context):
    record = event["Records"][0]["s3"]
    bucket, key = record["bucket"]["name"], unquote_plus(record["object"]["key"])
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket="results", Key=key + ".upper", Body=body.upper())
    return {"read": len(body)}
"""

SINK = "def handler(event, context):\n    return event['Records'][0]['s3']['object']['key']\n"


def rule(rule_id: str, function: str) -> dict[str, Any]:
    return {"id": rule_id, "events": ["s3:ObjectCreated:*"], "function": f"{ARN}:{function}"}


def api_workspace(tmp_path: Path) -> Path:
    config = {
        "region": "us-east-1",
        "account": "123456789012",
        "simulator": {"time_scale": 0.002, "settle_ms": 50, "seed": 1},
        "functions": {
            "reader": {"handler": "handler.handler", "timeout": 10, "retries": 0},
            "sink": {"handler": "handler.handler", "retries": 0},
        },
        "buckets": {
            "uploads": {"notifications": [rule("read", "reader")]},
            "results": {"notifications": [rule("sink", "sink")]},
            "inbox": {
                "notifications": [
                    rule("all", "sink"),
                    {**rule("gone", "sink"), "events": ["s3:ObjectRemoved:*"]},
                ]
            },
        },
    }
    return make_workspace(
        tmp_path / "ws", config, {"reader": {"handler.py": READER}, "sink": {"handler.py": SINK}}
    )


def client(ws: Path, **overrides: Any) -> Any:
    import boto3  # type: ignore[import-untyped]

    endpoint = json.loads((ws / ".s3sim/endpoints.json").read_text())["s3"]
    options: dict[str, Any] = {
        "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        **overrides,
    }
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **options)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Path, Any, Any]]:
    ws = api_workspace(tmp_path)
    with running(ws) as (_, log):
        yield ws, client(ws), log


def test_a_handler_reads_its_object_and_writes_one_that_fires_the_next_rule(
    api: tuple[Path, Any, Any],
) -> None:
    ws, _, log = api
    drop(ws / "buckets/uploads/red flower.txt", "hello")
    log.wait_for(log.named("invoke.report", function="sink"))
    assert (ws / "buckets/results/red flower.txt.upper").read_bytes() == b"HELLO"
    reports = {e["function"]: e for e in log.matching(log.named("invoke.report"))}
    assert reports["reader"]["status"] == "success" and reports["sink"]["status"] == "success"
    created = log.matching(log.named("s3.object_created", bucket="results"))
    assert [e["key"] for e in created] == ["red flower.txt.upper"]  # the write fired once
    assert "red flower.txt.upper" not in [
        p.name for p in (ws / "buckets/results").iterdir() if p.name.startswith(".")
    ]


def test_objects_round_trip_with_s3s_headers_and_errors(api: tuple[Path, Any, Any]) -> None:
    ws, s3, _ = api
    body = b"0123456789" * 100
    md5 = base64.b64encode(__import__("hashlib").md5(body).digest()).decode()
    put = s3.put_object(
        Bucket="results", Key="dir/obj.bin", Body=body, ContentMD5=md5, ChecksumAlgorithm="CRC32"
    )
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert put["ETag"] == '"' + __import__("hashlib").md5(body).hexdigest() + '"'
    assert put["ChecksumCRC32"] == crc
    assert put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert (ws / "buckets/results/dir/obj.bin").read_bytes() == body
    got = s3.get_object(Bucket="results", Key="dir/obj.bin", Range="bytes=10-19")
    assert got["Body"].read() == b"0123456789" and got["ContentRange"] == "bytes 10-19/1000"
    head = s3.head_object(Bucket="results", Key="dir/obj.bin")
    assert head["ContentLength"] == 1000 and head["ETag"] == put["ETag"]
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["inbox", "results", "uploads"]
    s3.head_bucket(Bucket="uploads")
    with pytest.raises(Exception) as missing:
        s3.get_object(Bucket="results", Key="nope")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"  # type: ignore[attr-defined]
    with pytest.raises(Exception) as no_bucket:
        s3.list_objects_v2(Bucket="no-such-bucket")
    assert no_bucket.value.response["Error"]["Code"] == "NoSuchBucket"  # type: ignore[attr-defined]
    with pytest.raises(Exception) as bad_range:
        s3.get_object(Bucket="results", Key="dir/obj.bin", Range="bytes=5000-")
    assert bad_range.value.response["Error"]["Code"] == "InvalidRange"  # type: ignore[attr-defined]
    with pytest.raises(Exception) as escape:
        s3.put_object(Bucket="results", Key="../outside.txt", Body=b"x")
    assert escape.value.response["Error"]["Code"] == "InvalidArgument"  # type: ignore[attr-defined]
    assert not (ws / "buckets/outside.txt").exists()
    s3.delete_object(Bucket="results", Key="dir/obj.bin")
    assert not (ws / "buckets/results/dir/obj.bin").exists()


def test_list_objects_v2_pages_prefixes_and_start_after(api: tuple[Path, Any, Any]) -> None:
    ws, s3, _ = api
    for key in ("a/1.txt", "a/2.txt", "b/1.txt", "c.txt", "d.txt"):
        drop(ws / "buckets/results" / key)
    page = s3.list_objects_v2(Bucket="results", Delimiter="/", MaxKeys=2)
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "b/"]
    assert page["IsTruncated"] and page["KeyCount"] == 2
    rest = s3.list_objects_v2(
        Bucket="results", Delimiter="/", MaxKeys=2, ContinuationToken=page["NextContinuationToken"]
    )
    assert [o["Key"] for o in rest["Contents"]] == ["c.txt", "d.txt"]
    assert not rest["IsTruncated"]
    after = s3.list_objects_v2(Bucket="results", Prefix="a/", StartAfter="a/1.txt")
    assert [o["Key"] for o in after["Contents"]] == ["a/2.txt"]
    paginator = s3.get_paginator("list_objects_v2")
    keys = [
        o["Key"]
        for p in paginator.paginate(Bucket="results", PaginationConfig={"PageSize": 2})
        for o in p.get("Contents", [])
    ]
    assert keys == ["a/1.txt", "a/2.txt", "b/1.txt", "c.txt", "d.txt"]


def test_requests_without_the_workspaces_credentials_are_refused(
    api: tuple[Path, Any, Any],
) -> None:
    ws, _, _ = api
    wrong_secret = client(ws, aws_secret_access_key="not-the-secret")
    with pytest.raises(Exception) as bad:
        wrong_secret.list_buckets()
    assert bad.value.response["Error"]["Code"] == "SignatureDoesNotMatch"  # type: ignore[attr-defined]
    stranger = client(ws, aws_access_key_id="AKIAIOSFODNN7EXAMPLE")
    with pytest.raises(Exception) as unknown:
        stranger.list_buckets()
    assert unknown.value.response["Error"]["Code"] == "InvalidAccessKeyId"  # type: ignore[attr-defined]
    endpoint = urlsplit(json.loads((ws / ".s3sim/endpoints.json").read_text())["s3"])
    conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=10)
    conn.request("PUT", "/uploads/evil.txt", body=b"x")  # a web page's blind POST/PUT
    response = conn.getresponse()
    assert response.status == 403 and b"<Code>AccessDenied</Code>" in response.read()
    assert not (ws / "buckets/uploads/evil.txt").exists()


def test_an_aws_chunked_upload_with_a_checksum_trailer_is_decoded_and_verified(
    api: tuple[Path, Any, Any],
) -> None:
    ws, _, _ = api
    data = b"chunked payload " * 4096
    good = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert send_chunked(ws, "chunked.bin", data, good) == 200
    assert (ws / "buckets/results/chunked.bin").read_bytes() == data
    assert send_chunked(ws, "bad.bin", data, base64.b64encode(b"\0\0\0\0").decode()) == 400
    assert not (ws / "buckets/results/bad.bin").exists()


def send_chunked(ws: Path, key: str, data: bytes, crc32: str) -> int:
    """PUT with STREAMING-UNSIGNED-PAYLOAD-TRAILER, signed with botocore, as SDKs upload."""
    from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    endpoint = urlsplit(json.loads((ws / ".s3sim/endpoints.json").read_text())["s3"])
    chunks = [data[i : i + 16384] for i in range(0, len(data), 16384)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    body += f"0\r\nx-amz-checksum-crc32:{crc32}\r\n\r\n".encode()
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data)),
        "Content-Length": str(len(body)),
    }
    url = f"http://{endpoint.netloc}/results/{key}"
    request = AWSRequest(method="PUT", url=url, data=body, headers=headers)
    # What botocore does for a checksum in a trailer: the payload is STREAMING-...-TRAILER.
    request.context["checksum"] = {
        "request_algorithm": {"in": "trailer", "algorithm": "crc32", "name": "x-amz-checksum-crc32"}
    }
    creds = Credentials(
        DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
    )
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
    conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=10)
    conn.request("PUT", f"/results/{key}", body=body, headers=dict(request.headers))
    response = conn.getresponse()
    response.read()
    return response.status


def test_s3sim_env_prints_the_running_endpoints_and_credentials(tmp_path: Path) -> None:
    from simulator import commands
    from simulator.errors import SimulatorError

    ws = api_workspace(tmp_path)
    with running(ws):
        text = commands.env(ws)
        endpoint = json.loads((ws / ".s3sim/endpoints.json").read_text())["s3"]
    lines = dict(line.removeprefix("export ").split("=", 1) for line in text.splitlines())
    assert lines["AWS_ENDPOINT_URL_S3"] == endpoint and endpoint.startswith("http://127.0.0.1:")
    assert lines["AWS_ACCESS_KEY_ID"] == DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    assert lines["AWS_REGION"] == lines["AWS_DEFAULT_REGION"] == "us-east-1"
    with pytest.raises(SimulatorError, match="no simulator is running"):
        commands.env(ws)  # stopped: the endpoints are gone with it


def test_the_aws_cli_copies_a_50_mb_file_up_and_down_and_lists(
    api: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    ws, _, log = api
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 50)  # 50 MiB: the CLI uploads it in parts
    aws(ws, "s3", "cp", str(big), "s3://results/big.bin")
    stored = ws / "buckets/results/big.bin"
    assert stored.read_bytes() == big.read_bytes()
    assert not list((ws / ".s3sim/uploads").iterdir())  # the parts are gone once complete
    aws(ws, "s3", "cp", "s3://results/big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    listing = aws(ws, "s3", "ls", "s3://results/")
    assert listing.split()[-2:] == [str(50 << 20), "big.bin"]
    log.wait_for(log.named("s3.object_created", bucket="results", key="big.bin"))
    assert len(log.matching(log.named("s3.object_created", key="big.bin"))) == 1


def test_a_multipart_upload_fires_nothing_before_complete_and_abort_leaves_nothing(
    api: tuple[Path, Any, Any],
) -> None:
    ws, s3, _ = api
    upload = s3.create_multipart_upload(Bucket="results", Key="parts.bin")
    part = s3.upload_part(
        Bucket="results",
        Key="parts.bin",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"x" * (5 << 20),
    )
    assert not (ws / "buckets/results/parts.bin").exists()
    with pytest.raises(Exception) as wrong:
        s3.complete_multipart_upload(
            Bucket="results",
            Key="parts.bin",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]},
        )
    assert wrong.value.response["Error"]["Code"] == "InvalidPart"  # type: ignore[attr-defined]
    done = s3.complete_multipart_upload(
        Bucket="results",
        Key="parts.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    inner = __import__("hashlib").md5(bytes.fromhex(part["ETag"].strip('"'))).hexdigest()
    assert done["ETag"] == f'"{inner}-1"'
    assert (ws / "buckets/results/parts.bin").stat().st_size == 5 << 20
    other = s3.create_multipart_upload(Bucket="results", Key="aborted.bin")
    s3.abort_multipart_upload(Bucket="results", Key="aborted.bin", UploadId=other["UploadId"])
    with pytest.raises(Exception) as gone:
        s3.upload_part(
            Bucket="results", Key="aborted.bin", UploadId=other["UploadId"], PartNumber=1, Body=b"x"
        )
    assert gone.value.response["Error"]["Code"] == "NoSuchUpload"  # type: ignore[attr-defined]


def delivered_events(ws: Path, key: str) -> list[dict[str, Any]]:
    """The S3 event records the journal accepted for `key`, oldest first."""
    import sqlite3

    db = sqlite3.connect(ws / ".s3sim/journal.sqlite3")
    try:
        rows = db.execute("SELECT payload FROM deliveries WHERE key = ? ORDER BY id", (key,))
        return [json.loads(payload)["Records"][0] for (payload,) in rows]
    finally:
        db.close()


def test_events_of_api_writes_carry_the_requests_ids_client_and_kind(
    api: tuple[Path, Any, Any],
) -> None:
    ws, s3, log = api
    put = s3.put_object(Bucket="inbox", Key="a.txt", Body=b"hello")
    log.wait_for(log.named("invoke.report", key="a.txt"))
    upload = s3.create_multipart_upload(Bucket="inbox", Key="big.bin")
    part = s3.upload_part(
        Bucket="inbox", Key="big.bin", UploadId=upload["UploadId"], PartNumber=1, Body=b"y" * 100
    )
    done = s3.complete_multipart_upload(
        Bucket="inbox",
        Key="big.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    log.wait_for(log.named("invoke.report", key="big.bin"))
    deleted = s3.delete_object(Bucket="inbox", Key="a.txt")
    log.wait_for(log.named("invoke.report", key="a.txt"), count=2)
    created, removed = delivered_events(ws, "a.txt")
    (multipart,) = delivered_events(ws, "big.bin")
    for record, response in ((created, put), (multipart, done), (removed, deleted)):
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        assert record["responseElements"] == {
            "x-amz-request-id": headers["x-amz-request-id"],
            "x-amz-id-2": headers["x-amz-id-2"],
        }
        assert record["requestParameters"] == {"sourceIPAddress": "127.0.0.1"}
    assert created["eventName"] == "ObjectCreated:Put"
    assert created["s3"]["object"]["eTag"] == put["ETag"].strip('"')
    assert multipart["eventName"] == "ObjectCreated:CompleteMultipartUpload"
    assert multipart["s3"]["object"]["eTag"] == done["ETag"].strip('"')
    assert removed["eventName"] == "ObjectRemoved:Delete"
    dropped = drop(ws / "buckets/inbox/by-hand.txt", "x")  # a file dropped by hand: S3 defaults
    log.wait_for(log.named("invoke.report", key="by-hand.txt"))
    (hand,) = delivered_events(ws, dropped.name)
    assert hand["eventName"] == "ObjectCreated:Put"
    api_ids = {
        r["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"] for r in (put, done, deleted)
    }
    assert hand["responseElements"]["x-amz-request-id"] not in api_ids
    assert hand["s3"]["object"]["eTag"] == "9dd4e461268c8034f5c8564e155c67a6"  # MD5 of "x"


def test_copy_delete_many_list_v1_and_the_notification_configuration(
    api: tuple[Path, Any, Any],
) -> None:
    ws, s3, log = api
    s3.put_object(Bucket="results", Key="src/a b.txt", Body=b"copy me")
    copied = s3.copy_object(
        Bucket="inbox", Key="copy.txt", CopySource={"Bucket": "results", "Key": "src/a b.txt"}
    )
    assert (
        copied["CopyObjectResult"]["ETag"]
        == '"' + __import__("hashlib").md5(b"copy me").hexdigest() + '"'
    )
    assert (ws / "buckets/inbox/copy.txt").read_bytes() == b"copy me"
    log.wait_for(log.named("invoke.report", key="copy.txt"))
    (event,) = delivered_events(ws, "copy.txt")
    assert event["eventName"] == "ObjectCreated:Copy"
    for key in ("d/1", "d/2", "d/3"):
        drop(ws / "buckets/results" / key)
    result = s3.delete_objects(
        Bucket="results",
        Delete={"Objects": [{"Key": "d/1"}, {"Key": "d/2"}, {"Key": "../x"}]},
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["d/1", "d/2"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("../x", "InvalidArgument")]
    assert [p.name for p in (ws / "buckets/results/d").iterdir()] == ["3"]
    quiet = s3.delete_objects(Bucket="results", Delete={"Objects": [{"Key": "d/3"}], "Quiet": True})
    assert "Deleted" not in quiet
    v1 = s3.list_objects(Bucket="results", Prefix="src/")
    assert [o["Key"] for o in v1["Contents"]] == ["src/a b.txt"] and not v1["IsTruncated"]
    config = s3.get_bucket_notification_configuration(Bucket="inbox")
    assert [
        (c["Id"], c["LambdaFunctionArn"], c["Events"])
        for c in config["LambdaFunctionConfigurations"]
    ] == [
        ("all", f"{ARN}:sink", ["s3:ObjectCreated:*"]),
        ("gone", f"{ARN}:sink", ["s3:ObjectRemoved:*"]),
    ]
    printed = json.loads(
        aws(ws, "s3api", "get-bucket-notification-configuration", "--bucket", "inbox")
    )
    assert printed["LambdaFunctionConfigurations"][0]["Id"] == "all"


def test_presigned_urls_work_until_they_expire(api: tuple[Path, Any, Any]) -> None:
    import urllib.error
    import urllib.request

    ws, s3, _ = api
    drop(ws / "buckets/results/shared.txt", "for a browser")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "results", "Key": "shared.txt"}, ExpiresIn=300
    )
    with urllib.request.urlopen(url, timeout=10) as response:  # no credentials: the URL's
        assert response.read() == b"for a browser"
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "results", "Key": "uploaded.txt"}, ExpiresIn=300
    )
    put = urllib.request.Request(
        put_url, data=b"via a presigned PUT", method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(put, timeout=10) as response:
        assert response.status == 200
    assert (ws / "buckets/results/uploaded.txt").read_bytes() == b"via a presigned PUT"
    with pytest.raises(urllib.error.HTTPError) as tampered:
        urllib.request.urlopen(url.replace("shared.txt", "uploaded.txt"), timeout=10)
    assert tampered.value.code == 403 and b"SignatureDoesNotMatch" in tampered.value.read()
    stale = s3.generate_presigned_url(  # expired a minute ago
        "get_object", Params={"Bucket": "results", "Key": "shared.txt"}, ExpiresIn=-60
    )
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(stale, timeout=10)
    body = expired.value.read()
    from botocore.config import Config  # type: ignore[import-untyped]

    v4 = client(ws, config=Config(signature_version="s3v4"))
    v4_url = v4.generate_presigned_url(
        "get_object", Params={"Bucket": "results", "Key": "shared.txt"}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in v4_url
    with urllib.request.urlopen(v4_url, timeout=10) as response:
        assert response.read() == b"for a browser"
    assert expired.value.code == 403 and b"<Message>Request has expired</Message>" in body
