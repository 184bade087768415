"""The S3 API's object attributes, conditions, tagging, checksums and signed chunked uploads,
driven by boto3 and the aws CLI, and by hand (http.client) where a client would never send
the request (a tampered chunk, a wrong checksum)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from simulator.core.lambda_env import DUMMY_CREDENTIALS
from tests.helpers import ARN, aws, drop, make_workspace, running
from tests.test_s3_api import SINK, api_workspace, client, delivered_events

pytestmark = pytest.mark.integration

# CRC-32C and CRC-64/NVME of "123456789": the catalogue's check values of both algorithms.
CHECK_INPUT = b"123456789"
CRC32C_CHECK = base64.b64encode((0xE3069283).to_bytes(4, "big")).decode()
CRC64NVME_CHECK = base64.b64encode((0xAE8B14860A799888).to_bytes(8, "big")).decode()


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[tuple[Path, Any, Any]]:
    ws = api_workspace(tmp_path)
    with running(ws) as (_, log):
        yield ws, client(ws), log


def error_of(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(Exception) as raised:
        call(**kwargs)
    response = raised.value.response  # type: ignore[attr-defined]
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


STORED = {
    "ContentType": "text/csv",
    "ContentEncoding": "gzip",
    "ContentDisposition": 'attachment; filename="r.csv"',
    "CacheControl": "max-age=60",
    "ContentLanguage": "de",
    "Metadata": {"owner": "ana", "run": "7"},
}


def test_stored_attributes_survive_a_restart_and_a_hand_edit_drops_them(tmp_path: Path) -> None:
    ws = api_workspace(tmp_path)
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with running(ws):
        s3 = client(ws)
        s3.put_object(
            Bucket="results", Key="r.csv", Body=b"a,b\n", Expires=expires, Tagging="k=v", **STORED
        )
        upload = s3.create_multipart_upload(Bucket="results", Key="mp.bin", ContentType="a/b")
        parts = [
            s3.upload_part(
                Bucket="results",
                Key="mp.bin",
                UploadId=upload["UploadId"],
                PartNumber=n,
                Body=body,
            )
            for n, body in ((1, b"x" * (5 << 20)), (2, b"tail"))
        ]
        done = s3.complete_multipart_upload(
            Bucket="results",
            Key="mp.bin",
            UploadId=upload["UploadId"],
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": p["ETag"]} for n, p in enumerate(parts, 1)]
            },
        )
    with running(ws):  # a new simulator: what it answers comes from .s3sim/
        s3 = client(ws)
        head = s3.head_object(Bucket="results", Key="r.csv")
        for name, value in STORED.items():
            assert head[name] == value, name
        assert head["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Wed, 02 Jan 2030 03:04:05 GMT"
        assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "1"
        multipart = s3.head_object(Bucket="results", Key="mp.bin")
        assert multipart["ETag"] == done["ETag"] and done["ETag"].endswith('-2"')
        assert multipart["ContentType"] == "a/b"
        listed = s3.list_objects_v2(Bucket="results")["Contents"]
        assert {o["Key"]: o["ETag"] for o in listed}["mp.bin"] == done["ETag"]
        second = s3.get_object(Bucket="results", Key="mp.bin", PartNumber=2)
        assert second["Body"].read() == b"tail" and second["PartsCount"] == 2
        assert second["ContentRange"] == f"bytes {5 << 20}-{(5 << 20) + 3}/{(5 << 20) + 4}"
        drop(ws / "buckets/results/r.csv", "edited by hand")
        edited = s3.head_object(Bucket="results", Key="r.csv")
        assert edited["ContentType"] == "binary/octet-stream" and edited["Metadata"] == {}
        assert edited["ETag"] == '"' + hashlib.md5(b"edited by hand").hexdigest() + '"'
        assert "x-amz-tagging-count" not in edited["ResponseMetadata"]["HTTPHeaders"]


def test_get_answers_conditions_and_response_overrides(s3: tuple[Path, Any, Any]) -> None:
    _, s3c, _ = s3
    put = s3c.put_object(Bucket="results", Key="c.txt", Body=b"cond", ContentType="text/plain")
    etag = put["ETag"]
    past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    get = s3c.get_object
    modified = s3c.head_object(Bucket="results", Key="c.txt")["LastModified"]
    assert error_of(get, Bucket="results", Key="c.txt", IfModifiedSince=modified) == ("304", 304)
    assert error_of(get, Bucket="results", Key="c.txt", IfNoneMatch=etag) == ("304", 304)
    failed = error_of(get, Bucket="results", Key="c.txt", IfUnmodifiedSince=past)
    assert failed == ("PreconditionFailed", 412)
    assert error_of(get, Bucket="results", Key="c.txt", IfMatch='"nope"')[1] == 412
    # If-Match holds and If-Unmodified-Since fails: S3 answers 200
    assert get(Bucket="results", Key="c.txt", IfMatch=etag, IfUnmodifiedSince=past)["ETag"] == etag
    # If-None-Match fails and If-Modified-Since holds: S3 answers 304
    both = error_of(get, Bucket="results", Key="c.txt", IfNoneMatch=etag, IfModifiedSince=past)
    assert both == ("304", 304)
    assert get(Bucket="results", Key="c.txt", IfModifiedSince=past)["Body"].read() == b"cond"
    over = get(
        Bucket="results",
        Key="c.txt",
        ResponseContentType="application/json",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
        ResponseContentEncoding="identity",
        ResponseContentLanguage="fr",
        ResponseExpires=dt.datetime(2031, 5, 6, tzinfo=dt.UTC),
    )
    assert (over["ContentType"], over["ContentDisposition"], over["CacheControl"]) == (
        "application/json",
        "inline",
        "no-cache",
    )
    assert (over["ContentEncoding"], over["ContentLanguage"]) == ("identity", "fr")
    assert over["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Tue, 06 May 2031 00:00:00 GMT"
    assert s3c.head_object(Bucket="results", Key="c.txt")["ContentType"] == "text/plain"


def test_put_if_match_writes_only_over_the_expected_object(s3: tuple[Path, Any, Any]) -> None:
    ws, s3c, _ = s3
    put = s3c.put_object
    missing = error_of(put, Bucket="results", Key="m.txt", Body=b"1", IfMatch='"abc"')
    assert missing == ("NoSuchKey", 404)
    first = put(Bucket="results", Key="m.txt", Body=b"1")
    stale = error_of(put, Bucket="results", Key="m.txt", Body=b"2", IfMatch='"abc"')
    assert stale == ("PreconditionFailed", 412)
    assert (ws / "buckets/results/m.txt").read_bytes() == b"1"
    second = put(Bucket="results", Key="m.txt", Body=b"2", IfMatch=first["ETag"])
    assert (ws / "buckets/results/m.txt").read_bytes() == b"2"
    assert second["ETag"] == '"' + hashlib.md5(b"2").hexdigest() + '"'
    raced = error_of(put, Bucket="results", Key="m.txt", Body=b"3", IfMatch=first["ETag"])
    assert raced[1] == 412


def test_object_tagging_with_boto3_the_cli_and_s3s_limits(s3: tuple[Path, Any, Any]) -> None:
    ws, s3c, _ = s3
    s3c.put_object(Bucket="results", Key="t.txt", Body=b"t", Tagging="b=2&a=1")
    assert s3c.get_object_tagging(Bucket="results", Key="t.txt")["TagSet"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "2"},
    ]
    s3c.put_object_tagging(
        Bucket="results", Key="t.txt", Tagging={"TagSet": [{"Key": "env", "Value": "prod"}]}
    )
    got = s3c.get_object(Bucket="results", Key="t.txt")
    assert got["TagCount"] == 1 and got["Body"].read() == b"t"
    too_many = {"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
    put_tags = s3c.put_object_tagging
    assert error_of(put_tags, Bucket="results", Key="t.txt", Tagging=too_many) == (
        "BadRequest",
        400,
    )
    long_key = {"TagSet": [{"Key": "k" * 129, "Value": "v"}]}
    assert error_of(put_tags, Bucket="results", Key="t.txt", Tagging=long_key) == (
        "InvalidTag",
        400,
    )
    gone = error_of(put_tags, Bucket="results", Key="nope", Tagging={"TagSet": []})
    assert gone == ("NoSuchKey", 404)
    s3c.delete_object_tagging(Bucket="results", Key="t.txt")
    assert s3c.get_object_tagging(Bucket="results", Key="t.txt")["TagSet"] == []
    drop(ws / "buckets/results/by-hand.txt", "h")  # a file dropped by hand can be tagged
    tag_set = json.dumps({"TagSet": [{"Key": "from", "Value": "cli"}]})
    aws(ws, "s3api", "put-object-tagging", "--bucket", "results", "--key", "by-hand.txt",
        "--tagging", tag_set)  # fmt: skip
    printed = aws(ws, "s3api", "get-object-tagging", "--bucket", "results", "--key", "by-hand.txt")
    assert json.loads(printed)["TagSet"] == [{"Key": "from", "Value": "cli"}]
    head = s3c.head_object(Bucket="results", Key="by-hand.txt")
    assert head["ContentType"] == "binary/octet-stream"
    assert head["ETag"] == '"' + hashlib.md5(b"h").hexdigest() + '"'
    document = b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
    status, _, body = send(ws, "PUT", "/results/t.txt?tagging", document, {})
    assert status == 400 and b"Missing required header for this request: Content-MD5" in body
    wrong_md5 = {"Content-MD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()}
    status, _, body = send(ws, "PUT", "/results/t.txt?tagging", document, wrong_md5)
    assert status == 400 and b"<Code>BadDigest</Code>" in body
    assert s3c.get_object_tagging(Bucket="results", Key="t.txt")["TagSet"] == []


def test_copy_keeps_or_replaces_attributes_by_directive(s3: tuple[Path, Any, Any]) -> None:
    _, s3c, log = s3
    s3c.put_object(Bucket="results", Key="src.txt", Body=b"s", Tagging="t=1", **STORED)
    source = {"Bucket": "results", "Key": "src.txt"}
    s3c.copy_object(Bucket="inbox", Key="kept.txt", CopySource=source)
    kept = s3c.head_object(Bucket="inbox", Key="kept.txt")
    assert kept["ContentType"] == "text/csv" and kept["Metadata"] == STORED["Metadata"]
    assert kept["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "1"
    s3c.copy_object(
        Bucket="inbox",
        Key="replaced.txt",
        CopySource=source,
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        Metadata={"new": "yes"},
        TaggingDirective="REPLACE",
        Tagging="u=2&v=3",
    )
    replaced = s3c.head_object(Bucket="inbox", Key="replaced.txt")
    assert replaced["ContentType"] == "text/plain" and replaced["Metadata"] == {"new": "yes"}
    assert "ContentDisposition" not in replaced
    assert len(s3c.get_object_tagging(Bucket="inbox", Key="replaced.txt")["TagSet"]) == 2
    copy = s3c.copy_object
    onto_itself = error_of(copy, Bucket="results", Key="src.txt", CopySource=source)
    assert onto_itself == ("InvalidRequest", 400)
    s3c.copy_object(
        Bucket="results",
        Key="src.txt",
        CopySource=source,
        MetadataDirective="REPLACE",
        ContentType="text/markdown",
    )
    assert s3c.head_object(Bucket="results", Key="src.txt")["ContentType"] == "text/markdown"
    unmet = error_of(copy, Bucket="inbox", Key="x.txt", CopySource=source, CopySourceIfMatch='"0"')
    assert unmet == ("PreconditionFailed", 412)
    log.wait_for(log.named("invoke.report", key="replaced.txt"))
    (event,) = delivered_events(s3[0], "replaced.txt")
    assert event["eventName"] == "ObjectCreated:Copy"
    assert event["s3"]["object"]["eTag"] == hashlib.md5(b"s").hexdigest()


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("CRC32", base64.b64encode(zlib.crc32(CHECK_INPUT).to_bytes(4, "big")).decode()),
        ("CRC32C", CRC32C_CHECK),
        ("CRC64NVME", CRC64NVME_CHECK),
        ("SHA1", base64.b64encode(hashlib.sha1(CHECK_INPUT).digest()).decode()),
        ("SHA256", base64.b64encode(hashlib.sha256(CHECK_INPUT).digest()).decode()),
    ],
)
def test_checksums_are_verified_stored_and_returned(
    s3: tuple[Path, Any, Any], algorithm: str, expected: str
) -> None:
    _, s3c, _ = s3
    put = s3c.put_object(
        Bucket="results", Key="sum.txt", Body=CHECK_INPUT, ChecksumAlgorithm=algorithm
    )
    member = f"Checksum{algorithm}"
    assert put[member] == expected
    assert member not in s3c.head_object(Bucket="results", Key="sum.txt")
    head = s3c.head_object(Bucket="results", Key="sum.txt", ChecksumMode="ENABLED")
    assert head[member] == expected and head["ChecksumType"] == "FULL_OBJECT"
    got = s3c.get_object(Bucket="results", Key="sum.txt", ChecksumMode="ENABLED")
    assert got["Body"].read() == CHECK_INPUT and got[member] == expected


def test_a_write_without_a_checksum_gets_s3s_default_crc64nvme(s3: tuple[Path, Any, Any]) -> None:
    ws, _, _ = s3
    status, headers, _ = send(ws, "PUT", "/results/plain.txt", CHECK_INPUT, {})
    assert status == 200 and headers["x-amz-checksum-crc64nvme"] == CRC64NVME_CHECK


def test_wrong_or_malformed_checksums_are_refused_as_s3_does(s3: tuple[Path, Any, Any]) -> None:
    ws, _, _ = s3
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    status, _, body = send(ws, "PUT", "/results/w.txt", b"x", {"x-amz-checksum-sha256": wrong})
    assert status == 400 and b"<Code>BadDigest</Code>" in body
    assert b"<Message>The SHA256 you specified did not match the calculated checksum." in body
    status, _, body = send(ws, "PUT", "/results/w.txt", b"x", {"x-amz-checksum-crc32": "AAA"})
    assert status == 400 and b"<Code>InvalidRequest</Code>" in body
    assert b"<Message>Value for x-amz-checksum-crc32 header is invalid.</Message>" in body
    assert not (ws / "buckets/results/w.txt").exists()


def send(
    ws: Path, method: str, path: str, body: bytes, headers: dict[str, str], payload: str = ""
) -> tuple[int, dict[str, str], bytes]:
    """A request signed with botocore's signer (the payload hash as given, or the body's)."""
    from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

    class Literal(S3SigV4Auth):  # type: ignore[misc]
        def payload(self, request: Any) -> str:
            return payload or hashlib.sha256(body).hexdigest()

    endpoint = urlsplit(json.loads((ws / ".s3sim/endpoints.json").read_text())["s3"])
    request = AWSRequest(method=method, url=f"http://{endpoint.netloc}{path}", headers=headers)
    Literal(credentials(), "s3", "us-east-1").add_auth(request)
    conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict(request.headers))
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def credentials() -> Any:
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    return Credentials(
        DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def signed_chunked(
    ws: Path, key: str, data: bytes, trailer: str = "", tamper: str = ""
) -> tuple[int, bytes]:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] PutObject, as the Java and Go SDKs
    send it: the seed signature by botocore's signer, each chunk's chained from it."""
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
    }
    if trailer:
        headers["x-amz-trailer"] = trailer.split(":", 1)[0]
    kind = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    headers["X-Amz-Content-SHA256"] = kind
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    class Seed(S3SigV4Auth):  # type: ignore[misc]
        def payload(self, request: Any) -> str:
            return kind

    endpoint = urlsplit(json.loads((ws / ".s3sim/endpoints.json").read_text())["s3"])
    url = f"http://{endpoint.netloc}/results/{key}"
    request = AWSRequest(method="PUT", url=url, headers=headers)
    signer = Seed(credentials(), "s3", "us-east-1")
    signer.add_auth(request)
    timestamp = request.context["timestamp"]
    scope = f"{timestamp[:8]}/us-east-1/s3/aws4_request"
    previous = request.headers["Authorization"].rsplit("Signature=", 1)[1]

    def sign(kind_line: str, digest: str) -> str:
        text = "\n".join((kind_line, timestamp, scope, previous, digest))
        return str(signer.signature(text, request))  # botocore's key derivation and HMAC

    empty = hashlib.sha256(b"").hexdigest()
    body = b""
    for chunk in [data[i : i + 8192] for i in range(0, len(data), 8192)] + [b""]:
        signature = sign(
            "AWS4-HMAC-SHA256-PAYLOAD", f"{empty}\n{hashlib.sha256(chunk).hexdigest()}"
        )
        previous = signature
        sent = chunk.replace(b"a", b"b", 1) if tamper == "chunk" and chunk else chunk
        body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + sent
        body += b"\r\n" if chunk or not trailer else b""
    if trailer:
        digest = hashlib.sha256(f"{trailer}\n".encode()).hexdigest()
        signature = sign("AWS4-HMAC-SHA256-TRAILER", digest)
        if tamper == "trailer":
            signature = "0" * 64
        body += f"{trailer}\r\nx-amz-trailer-signature:{signature}\r\n\r\n".encode()
    request.headers["Content-Length"] = str(len(body))
    conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=30)
    try:
        conn.request("PUT", f"/results/{key}", body=body, headers=dict(request.headers))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_signed_chunked_uploads_verify_every_chunk_signature(s3: tuple[Path, Any, Any]) -> None:
    ws, s3c, _ = s3
    data = b"a" * 20000
    assert signed_chunked(ws, "signed.bin", data)[0] == 200
    assert (ws / "buckets/results/signed.bin").read_bytes() == data
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    trailer = f"x-amz-checksum-crc32:{crc}"
    assert signed_chunked(ws, "trailed.bin", data, trailer)[0] == 200
    head = s3c.head_object(Bucket="results", Key="trailed.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc
    for tamper in ("chunk", "trailer"):
        status, body = signed_chunked(ws, f"{tamper}.bin", data, trailer, tamper=tamper)
        assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body, tamper
        assert not (ws / f"buckets/results/{tamper}.bin").exists()


def test_tagging_through_the_api_fires_object_tagging_events(tmp_path: Path) -> None:
    rules = [
        {"id": "created", "events": ["s3:ObjectCreated:*"], "function": f"{ARN}:sink"},
        {"id": "tags", "events": ["s3:ObjectTagging:*"], "function": f"{ARN}:sink"},
    ]
    config = {
        "region": "us-east-1",
        "account": "123456789012",
        "simulator": {"time_scale": 0.002, "settle_ms": 50, "seed": 1},
        "functions": {"sink": {"handler": "handler.handler", "retries": 0}},
        "buckets": {"tagged": {"notifications": rules}},
    }
    ws = make_workspace(tmp_path / "ws", config, {"sink": {"handler.py": SINK}})
    with running(ws) as (_, log):
        s3c = client(ws)
        s3c.put_object(Bucket="tagged", Key="doc 1.txt", Body=b"d")
        log.wait_for(log.named("invoke.report", key="doc 1.txt"))
        put = s3c.put_object_tagging(
            Bucket="tagged", Key="doc 1.txt", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}
        )
        log.wait_for(log.named("invoke.report", key="doc 1.txt"), count=2)
        removed = s3c.delete_object_tagging(Bucket="tagged", Key="doc 1.txt")
        log.wait_for(log.named("invoke.report", key="doc 1.txt"), count=3)
    created, tagged, untagged = delivered_events(ws, "doc 1.txt")
    assert created["eventName"] == "ObjectCreated:Put" and created["eventVersion"] == "2.1"
    md5 = hashlib.md5(b"d").hexdigest()
    for record, name, response in (
        (tagged, "ObjectTagging:Put", put),
        (untagged, "ObjectTagging:Delete", removed),
    ):
        assert record["eventName"] == name and record["eventVersion"] == "2.3"
        assert record["s3"]["configurationId"] == "tags"
        assert record["s3"]["object"] == {"key": "doc+1.txt", "eTag": md5}  # no size, sequencer
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        assert record["responseElements"]["x-amz-request-id"] == headers["x-amz-request-id"]


def test_the_aws_cli_stores_the_content_type_and_metadata_it_sends(
    s3: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    ws, s3c, _ = s3
    report = tmp_path / "report.json"
    report.write_text('{"ok": true}')
    aws(ws, "s3", "cp", str(report), "s3://results/report.json", "--metadata", "team=data",
        "--cache-control", "no-store")  # fmt: skip
    head = json.loads(
        aws(ws, "s3api", "head-object", "--bucket", "results", "--key", "report.json")
    )
    assert head["ContentType"] == "application/json"  # guessed from the name, as the CLI does
    assert head["Metadata"] == {"team": "data"} and head["CacheControl"] == "no-store"
    aws(ws, "s3", "cp", "s3://results/report.json", "s3://inbox/report.json")
    assert s3c.head_object(Bucket="inbox", Key="report.json")["Metadata"] == {"team": "data"}


def test_refired_events_carry_the_multipart_etag_s3_reported(s3: tuple[Path, Any, Any]) -> None:
    from simulator.cli import main

    ws, s3c, log = s3
    upload = s3c.create_multipart_upload(Bucket="inbox", Key="mp.bin")
    part = s3c.upload_part(
        Bucket="inbox", Key="mp.bin", UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 10
    )
    done = s3c.complete_multipart_upload(
        Bucket="inbox",
        Key="mp.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    log.wait_for(log.named("invoke.report", key="mp.bin"))
    assert main(["-w", str(ws), "replay", "--bucket", "inbox", "--prefix", "mp"]) == 0
    log.wait_for(log.named("invoke.report", key="mp.bin"), count=2)
    first, refired = delivered_events(ws, "mp.bin")
    assert first["s3"]["object"]["eTag"] == refired["s3"]["object"]["eTag"]
    assert refired["s3"]["object"]["eTag"] == done["ETag"].strip('"')


def test_an_expect_100_continue_put_is_answered_before_its_body(s3: tuple[Path, Any, Any]) -> None:
    """botocore sends PutObject with `Expect: 100-continue` and, without the interim answer,
    waits a second per request before sending the body."""
    import socket

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    ws, _, _ = s3
    endpoint = urlsplit(json.loads((ws / ".s3sim/endpoints.json").read_text())["s3"])
    body = b"after the interim response"
    headers = {"Expect": "100-continue", "Content-Length": str(len(body))}
    url = f"http://{endpoint.netloc}/results/expect.txt"
    request = AWSRequest(method="PUT", url=url, headers=headers, data=body)
    S3SigV4Auth(credentials(), "s3", "us-east-1").add_auth(request)
    head = f"PUT /results/expect.txt HTTP/1.1\r\nHost: {endpoint.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()) + "\r\n"
    with socket.create_connection((endpoint.hostname, endpoint.port), timeout=30) as sock:
        sock.sendall(head.encode())
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)  # the body is held back until this arrives
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        final = sock.recv(65536)
    assert final.startswith(b"HTTP/1.1 200 OK")
    assert (ws / "buckets/results/expect.txt").read_bytes() == body


@pytest.mark.parametrize(
    ("name", "good"),
    [
        ("x-amz-checksum-crc32c", CRC32C_CHECK),
        ("x-amz-checksum-crc64nvme", CRC64NVME_CHECK),
        ("x-amz-checksum-sha1", base64.b64encode(hashlib.sha1(CHECK_INPUT).digest()).decode()),
    ],
)
def test_unsigned_trailer_checksums_are_verified_and_stored(
    s3: tuple[Path, Any, Any], name: str, good: str
) -> None:
    ws, s3c, _ = s3

    def upload(key: str, value: str) -> tuple[int, bytes]:
        body = b"%x\r\n%s\r\n0\r\n%s:%s\r\n\r\n" % (
            len(CHECK_INPUT),
            CHECK_INPUT,
            name.encode(),
            value.encode(),
        )
        headers = {
            "Content-Encoding": "aws-chunked",
            "x-amz-trailer": name,
            "x-amz-decoded-content-length": str(len(CHECK_INPUT)),
        }
        status, _, answer = send(
            ws, "PUT", f"/results/{key}", body, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        )
        return status, answer

    assert upload("trailer.txt", good)[0] == 200
    head = s3c.head_object(Bucket="results", Key="trailer.txt", ChecksumMode="ENABLED")
    member = "Checksum" + name.removeprefix("x-amz-checksum-").upper()
    assert head[member] == good
    wrong = base64.b64encode(bytes(len(base64.b64decode(good)))).decode()
    status, answer = upload("wrong.txt", wrong)
    algorithm = name.removeprefix("x-amz-checksum-").upper()
    assert status == 400 and b"<Code>BadDigest</Code>" in answer
    assert (
        f"The {algorithm} you specified did not match the calculated checksum.".encode() in answer
    )
    status, answer = upload("wrong.txt", "not-base64!")
    message = f"Value for {name} trailing header is invalid."
    assert status == 400 and message.encode() in answer
    assert not (ws / "buckets/results/wrong.txt").exists()
