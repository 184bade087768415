"""The S3 API's bucket writes (CreateBucket, DeleteBucket, PutBucketNotificationConfiguration)
and multipart extras (UploadPartCopy, ListParts, ListMultipartUploads), driven by boto3 and
the aws CLI against a running simulator. Expected texts are S3's (API reference, the
recordings in the shared AWS reference, the error texts S3 users quote)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.core.lambda_env import DUMMY_CREDENTIALS
from tests.helpers import ARN, aws, drop, make_workspace, running
from tests.test_s3_api import api_workspace, client

pytestmark = pytest.mark.integration
API = tuple[Path, Any, Any]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[API]:
    ws = api_workspace(tmp_path)
    with running(ws) as (_, log):
        yield ws, client(ws), log


def error_of(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(Exception) as caught:
        call(*args, **kwargs)
    response = caught.value.response  # type: ignore[attr-defined]
    return {**response["Error"], "Status": response["ResponseMetadata"]["HTTPStatusCode"]}


def test_create_and_delete_bucket_keep_the_folder_and_config_yaml_in_step(api: API) -> None:
    ws, s3, log = api
    config_before = (ws / "config.yaml").read_text()
    created = s3.create_bucket(Bucket="new-bucket")
    assert created["Location"] == "/new-bucket"
    assert (ws / "buckets/new-bucket").is_dir()
    assert yaml.safe_load((ws / "config.yaml").read_text())["buckets"]["new-bucket"] == {}
    assert (ws / "config.yaml").read_text().startswith(config_before.rstrip("\n"))
    assert "new-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # us-east-1 answers its owner's repeated CreateBucket with 200 (S3's legacy rule)
    again = s3.create_bucket(Bucket="new-bucket")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    invalid = error_of(s3.create_bucket, Bucket="Not_Valid")
    assert (invalid["Code"], invalid["Message"], invalid["Status"]) == (
        "InvalidBucketName",
        "The specified bucket is not valid.",
        400,
    )
    elsewhere = error_of(
        s3.create_bucket,
        Bucket="other-bucket",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    assert elsewhere["Code"] == "IllegalLocationConstraintException"
    assert elsewhere["Message"] == (
        "The eu-west-1 location constraint is incompatible for the region specific endpoint "
        "this request was sent to."
    )
    assert not (ws / "buckets/other-bucket").exists()
    s3.put_object(Bucket="new-bucket", Key="dir/a.txt", Body=b"x")
    full = error_of(s3.delete_bucket, Bucket="new-bucket")
    assert (full["Code"], full["Message"], full["Status"]) == (
        "BucketNotEmpty",
        "The bucket you tried to delete is not empty",
        409,
    )
    s3.delete_object(Bucket="new-bucket", Key="dir/a.txt")
    (ws / "buckets/new-bucket/.DS_Store").write_bytes(b"noise")  # never an object
    upload = s3.create_multipart_upload(Bucket="new-bucket", Key="open.bin")
    deleted = s3.delete_bucket(Bucket="new-bucket")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert not (ws / "buckets/new-bucket").exists()
    assert "new-bucket" not in yaml.safe_load((ws / "config.yaml").read_text())["buckets"]
    assert (ws / "config.yaml").read_text() == config_before
    assert not (ws / ".s3sim/uploads" / upload["UploadId"]).exists()
    gone = error_of(s3.head_bucket, Bucket="new-bucket")
    assert gone["Status"] == 404
    missing = error_of(s3.delete_bucket, Bucket="new-bucket")
    assert (missing["Code"], missing["Status"]) == ("NoSuchBucket", 404)
    log.wait_for(log.named("bucket.deleted", bucket="new-bucket"))


def lambda_config(rule_id: str, function: str, **rules: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "Id": rule_id,
        "LambdaFunctionArn": f"{ARN}:{function}",
        "Events": ["s3:ObjectCreated:*"],
    }
    if rules:
        config["Filter"] = {
            "Key": {"FilterRules": [{"Name": n, "Value": v} for n, v in rules.items()]}
        }
    return config


def test_a_notification_configuration_put_is_kept_in_config_yaml_and_applied_live(
    api: API,
) -> None:
    ws, s3, log = api
    (ws / "config.yaml").write_text(
        "# my workspace\n" + (ws / "config.yaml").read_text().replace("  sink:", "  sink:  # kept")
    )
    s3.create_bucket(Bucket="photos")
    wanted = [
        lambda_config("jpgs", "sink", prefix="in/", suffix=".jpg"),
        lambda_config("pngs", "reader", PREFIX="in/", Suffix=".png"),  # names: any case
    ]
    s3.put_bucket_notification_configuration(
        Bucket="photos", NotificationConfiguration={"LambdaFunctionConfigurations": wanted}
    )
    got = s3.get_bucket_notification_configuration(Bucket="photos")
    assert got["LambdaFunctionConfigurations"] == [
        {
            "Id": "jpgs",
            "LambdaFunctionArn": f"{ARN}:sink",
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "Prefix", "Value": "in/"},
                        {"Name": "Suffix", "Value": ".jpg"},
                    ]
                }
            },
        },
        {
            "Id": "pngs",
            "LambdaFunctionArn": f"{ARN}:reader",
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "Prefix", "Value": "in/"},
                        {"Name": "Suffix", "Value": ".png"},
                    ]
                }
            },
        },
    ]
    text = (ws / "config.yaml").read_text()
    assert text.startswith("# my workspace\n") and "  sink:  # kept" in text
    assert yaml.safe_load(text)["buckets"]["photos"]["notifications"][0] == {
        "id": "jpgs",
        "events": ["s3:ObjectCreated:*"],
        "prefix": "in/",
        "suffix": ".jpg",
        "function": f"{ARN}:sink",
    }
    log.wait_for(lambda e: e.get("event") == "config.reloaded" and "jpgs" in str(e), timeout=60)
    drop(ws / "buckets/photos/in/cat.jpg", "meow")
    (report,) = log.wait_for(
        log.named("invoke.report", function="sink", key="in/cat.jpg"), timeout=60
    )
    assert report["status"] == "success"
    s3.put_bucket_notification_configuration(Bucket="photos", NotificationConfiguration={})
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(
        Bucket="photos"
    )
    assert yaml.safe_load((ws / "config.yaml").read_text())["buckets"]["photos"] == {
        "notifications": []
    }


def test_a_notification_configuration_is_validated_with_s3s_errors(api: API) -> None:
    ws, s3, _ = api
    before = (ws / "config.yaml").read_text()

    def put(*configs: dict[str, Any]) -> dict[str, Any]:
        return error_of(
            s3.put_bucket_notification_configuration,
            Bucket="inbox",
            NotificationConfiguration={"LambdaFunctionConfigurations": list(configs)},
        )

    missing = put(
        lambda_config("a", "nope"),
        lambda_config("b", "sink:no-alias", prefix="x"),
        lambda_config("c", "sink:7", prefix="y"),  # a version never published
    )
    assert {k: v for k, v in missing.items() if k != "Resource"} == {
        "Code": "InvalidArgument",
        "Message": "Unable to validate the following destination configurations",
        "ArgumentName1": f"{ARN}:nope, null",
        "ArgumentValue1": f"Not authorized to invoke function [{ARN}:nope]",
        "ArgumentName2": f"{ARN}:sink:no-alias, null",
        "ArgumentValue2": f"Not authorized to invoke function [{ARN}:sink:no-alias]",
        "ArgumentName3": f"{ARN}:sink:7, null",
        "ArgumentValue3": f"Not authorized to invoke function [{ARN}:sink:7]",
        "Status": 400,
    }
    unparsable = put({**lambda_config("a", "sink"), "LambdaFunctionArn": "invalid-queue"})
    assert (unparsable["Message"], unparsable["ArgumentName"], unparsable["ArgumentValue"]) == (
        "The ARN could not be parsed",
        "CloudFunction",
        "invalid-queue",
    )
    overlap = put(lambda_config("a", "sink"), lambda_config("b", "reader"))
    assert (overlap["Code"], overlap["Message"]) == (
        "InvalidArgument",
        "Configurations overlap. Configurations on the same bucket cannot share a common "
        "event type.",
    )
    ambiguous = put(
        lambda_config("a", "sink", prefix="img/", suffix=".jpg"),
        lambda_config("b", "reader", prefix="img/2024/", suffix="jpg"),
    )
    assert ambiguous["Message"] == (
        "Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules "
        "if the prefixes are overlapping for the same event type."
    )
    two_prefixes = lambda_config("a", "sink")
    two_prefixes["Filter"] = {
        "Key": {"FilterRules": [{"Name": "prefix", "Value": "a"}, {"Name": "prefix", "Value": "b"}]}
    }
    assert put(two_prefixes)["Message"] == "Cannot specify more than one prefix rule in a filter."
    bad_event = put({**lambda_config("a", "sink"), "Events": ["s3:ObjectTouched:*"]})
    assert (bad_event["Message"], bad_event["ArgumentValue"]) == (
        "The event is not supported for notifications",
        "s3:ObjectTouched:*",
    )
    assert (ws / "config.yaml").read_text() == before  # nothing refused was written
    # the same bucket accepts rules that do not overlap
    s3.put_bucket_notification_configuration(
        Bucket="inbox",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                lambda_config("jpg", "sink", suffix=".jpg"),
                lambda_config("png", "reader", suffix=".png"),
            ]
        },
    )
    assert [
        c["Id"]
        for c in s3.get_bucket_notification_configuration(Bucket="inbox")[
            "LambdaFunctionConfigurations"
        ]
    ] == ["jpg", "png"]


def test_the_aws_cli_puts_and_gets_a_notification_configuration(api: API, tmp_path: Path) -> None:
    ws, _, _ = api
    config = {
        "LambdaFunctionConfigurations": [
            {
                "Id": "docs",
                "LambdaFunctionArn": f"{ARN}:sink",
                "Events": ["s3:ObjectCreated:Put", "s3:ObjectRemoved:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "Suffix", "Value": ".txt"}]}},
            }
        ]
    }
    (tmp_path / "n.json").write_text(json.dumps(config))
    aws(
        ws,
        "s3api",
        "put-bucket-notification-configuration",
        "--bucket",
        "results",
        "--notification-configuration",
        f"file://{tmp_path / 'n.json'}",
    )
    printed = aws(ws, "s3api", "get-bucket-notification-configuration", "--bucket", "results")
    assert json.loads(printed) == config


def test_upload_part_copy_list_parts_and_list_multipart_uploads(api: API) -> None:
    ws, s3, _ = api
    source = bytes(range(256)) * 40960  # 10 MiB
    s3.put_object(Bucket="results", Key="src.bin", Body=source)
    upload = s3.create_multipart_upload(Bucket="results", Key="joined.bin")
    uid = upload["UploadId"]
    first = s3.upload_part_copy(
        Bucket="results",
        Key="joined.bin",
        UploadId=uid,
        PartNumber=1,
        CopySource={"Bucket": "results", "Key": "src.bin"},
        CopySourceRange="bytes=0-5242879",
    )
    assert first["CopyPartResult"]["ETag"] == f'"{hashlib.md5(source[: 5 << 20]).hexdigest()}"'
    second = s3.upload_part(
        Bucket="results", Key="joined.bin", UploadId=uid, PartNumber=2, Body=b"tail"
    )
    bad_range = error_of(
        s3.upload_part_copy,
        Bucket="results",
        Key="joined.bin",
        UploadId=uid,
        PartNumber=3,
        CopySource="results/src.bin",
        CopySourceRange="bytes=0-10485760",
    )
    assert (bad_range["Code"], bad_range["Message"]) == (
        "InvalidArgument",
        "Range specified is not valid for source object of size: 10485760",
    )
    malformed = error_of(
        s3.upload_part_copy,
        Bucket="results",
        Key="joined.bin",
        UploadId=uid,
        PartNumber=3,
        CopySource="results/src.bin",
        CopySourceRange="0-1024",
    )
    assert malformed["Message"] == (
        "The x-amz-copy-source-range value must be of the form bytes=first-last where first "
        "and last are the zero-based offsets of the first and last bytes to copy"
    )
    assert (malformed["ArgumentName"], malformed["ArgumentValue"]) == (
        "x-amz-copy-source-range",
        "0-1024",
    )
    page = s3.list_parts(Bucket="results", Key="joined.bin", UploadId=uid, MaxParts=1)
    assert [(p["PartNumber"], p["Size"]) for p in page["Parts"]] == [(1, 5 << 20)]
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 1 and page["MaxParts"] == 1
    rest = s3.list_parts(Bucket="results", Key="joined.bin", UploadId=uid, PartNumberMarker=1)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in rest["Parts"]] == [
        (2, second["ETag"], 4)
    ]
    assert not rest["IsTruncated"] and rest["StorageClass"] == "STANDARD"
    done = s3.complete_multipart_upload(
        Bucket="results",
        Key="joined.bin",
        UploadId=uid,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": second["ETag"]},
            ]
        },
    )
    assert done["ETag"].endswith('-2"')
    assert (ws / "buckets/results/joined.bin").read_bytes() == source[: 5 << 20] + b"tail"

    ids: dict[str, list[str]] = {}
    for key in ("a/1", "a/2", "b", "c", "c"):
        ids.setdefault(key, []).append(
            s3.create_multipart_upload(Bucket="results", Key=key)["UploadId"]
        )
    s3.create_multipart_upload(Bucket="inbox", Key="other-bucket")
    listed = s3.list_multipart_uploads(Bucket="results")
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [
        ("a/1", ids["a/1"][0]),
        ("a/2", ids["a/2"][0]),
        ("b", ids["b"][0]),
        ("c", ids["c"][0]),  # the same key's uploads in the order they were initiated
        ("c", ids["c"][1]),
    ]
    assert not listed["IsTruncated"] and listed["MaxUploads"] == 1000
    folded = s3.list_multipart_uploads(Bucket="results", Delimiter="/", MaxUploads=2)
    assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["a/"]
    assert [u["Key"] for u in folded["Uploads"]] == ["b"] and folded["IsTruncated"]
    assert (folded["NextKeyMarker"], folded["NextUploadIdMarker"]) == ("b", ids["b"][0])
    after = s3.list_multipart_uploads(Bucket="results", KeyMarker="c", UploadIdMarker=ids["c"][0])
    assert [u["UploadId"] for u in after["Uploads"]] == [ids["c"][1]]
    past_key = s3.list_multipart_uploads(Bucket="results", KeyMarker="b")
    assert [u["UploadId"] for u in past_key["Uploads"]] == ids["c"]
    s3.create_multipart_upload(Bucket="inbox", Key="a b/ü.txt")
    encoded = s3.list_multipart_uploads(Bucket="inbox", EncodingType="url", Delimiter="/")
    assert encoded["EncodingType"] == "url"  # botocore leaves the keys as S3 sent them
    assert [p["Prefix"] for p in encoded["CommonPrefixes"]] == ["a%20b/"]
    under = s3.list_multipart_uploads(Bucket="results", Prefix="a/")
    assert [u["Key"] for u in under["Uploads"]] == ["a/1", "a/2"] and under["Prefix"] == "a/"
    paginator = s3.get_paginator("list_multipart_uploads")
    every = [
        u["UploadId"]
        for p in paginator.paginate(Bucket="results", PaginationConfig={"PageSize": 2})
        for u in p.get("Uploads", [])
    ]
    assert every == [*ids["a/1"], *ids["a/2"], *ids["b"], *ids["c"]]


def test_no_key_reaches_outside_its_bucket_and_unholdable_keys_are_refused(
    api: API, tmp_path: Path
) -> None:
    ws, s3, _ = api
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    bucket = ws / "buckets/results"
    (bucket / "link").symlink_to(outside, target_is_directory=True)
    (bucket / "evil.txt").symlink_to(outside / "secret.txt")
    for key in ("../x.txt", "a/../../x.txt", "/abs.txt", "nul\0.txt", "back\\slash.txt", "./x"):
        refused = error_of(s3.put_object, Bucket="results", Key=key, Body=b"x")
        assert (refused["Code"], refused["Status"]) == ("InvalidArgument", 400), key
    for key in ("link/new.txt", "link/secret.txt", "evil.txt"):
        put = error_of(s3.put_object, Bucket="results", Key=key, Body=b"x")
        got = error_of(s3.get_object, Bucket="results", Key=key)
        assert put["Code"] == got["Code"] == "AccessDenied", key
    copied = error_of(
        s3.copy_object, Bucket="inbox", Key="stolen.txt", CopySource="results/evil.txt"
    )
    assert copied["Code"] == "AccessDenied"
    many = s3.delete_objects(Bucket="results", Delete={"Objects": [{"Key": "link/secret.txt"}]})
    assert [(e["Key"], e["Code"]) for e in many["Errors"]] == [("link/secret.txt", "AccessDenied")]
    assert (outside / "secret.txt").read_text() == "secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    listed = s3.list_objects_v2(Bucket="results").get("Contents", [])
    assert [o["Key"] for o in listed] == []  # links leading out are no objects
    assert not (ws / "buckets/x.txt").exists() and not (ws / "x.txt").exists()

    # Keys a folder tree cannot hold as they are: refused, never stored in another form.
    marker = error_of(s3.put_object, Bucket="results", Key="folder/", Body=b"")
    assert (marker["Code"], marker["Status"]) == ("InvalidArgument", 400)
    s3.put_object(Bucket="results", Key="a", Body=b"file")
    clash = error_of(s3.put_object, Bucket="results", Key="a/b", Body=b"x")
    assert clash["Code"] == "InvalidArgument"
    s3.put_object(Bucket="results", Key="c/d", Body=b"x")
    assert error_of(s3.put_object, Bucket="results", Key="c", Body=b"x")["Code"] == (
        "InvalidArgument"
    )
    long_segment = error_of(s3.put_object, Bucket="results", Key="s" * 256, Body=b"x")
    assert long_segment["Code"] == "InvalidArgument"
    s3.put_object(Bucket="results", Key="/".join(["d" * 200] * 5), Body=b"x")  # 1,004 bytes
    too_long = error_of(s3.put_object, Bucket="results", Key="k" * 1025, Body=b"x")
    assert (too_long["Code"], too_long["Message"], too_long["Status"]) == (
        "KeyTooLongError",
        "Your key is too long",
        400,
    )
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket="results")["Contents"]) == [
        "a",
        "c/d",
        "/".join(["d" * 200] * 5),
    ]


def test_the_aws_cli_makes_syncs_lists_and_removes_a_bucket(api: API, tmp_path: Path) -> None:
    ws, _, log = api
    local = tmp_path / "site"
    for rel, text in {"index.html": "home", "css/a.css": "a{}", "img/x/y.txt": "deep"}.items():
        drop(local / rel, text)
    assert aws(ws, "s3", "mb", "s3://site-bucket").strip() == "make_bucket: site-bucket"
    aws(ws, "s3", "sync", str(local), "s3://site-bucket")
    stored = ws / "buckets/site-bucket"
    assert sorted(str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file()) == [
        "css/a.css",
        "img/x/y.txt",
        "index.html",
    ]
    again = aws(ws, "s3", "sync", str(local), "s3://site-bucket")
    assert again == ""  # nothing changed: the sizes and times listed match
    (local / "css/a.css").unlink()
    removed = aws(ws, "s3", "sync", "--delete", str(local), "s3://site-bucket")
    assert removed.strip() == "delete: s3://site-bucket/css/a.css"
    assert not (stored / "css").exists()
    back = tmp_path / "back"
    aws(ws, "s3", "sync", "s3://site-bucket", str(back))
    assert (back / "img/x/y.txt").read_text() == "deep"
    listing = aws(ws, "s3", "ls", "--recursive", "s3://site-bucket")
    assert [line.split()[-1] for line in listing.splitlines()] == ["img/x/y.txt", "index.html"]
    assert "site-bucket" in aws(ws, "s3", "ls").split()
    aws(ws, "s3", "rb", "--force", "s3://site-bucket")
    assert not stored.exists()
    log.wait_for(log.named("bucket.deleted", bucket="site-bucket"))


def test_outside_us_east_1_a_bucket_needs_its_region_and_exists_once(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"region": "eu-west-1", "buckets": {}}, {})
    with running(ws):
        import boto3  # type: ignore[import-untyped]

        endpoint = json.loads((ws / ".s3sim/endpoints.json").read_text())["s3"]
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="eu-west-1",
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        here = {"LocationConstraint": "eu-west-1"}
        s3.create_bucket(Bucket="paris-data", CreateBucketConfiguration=here)
        assert (ws / "buckets/paris-data").is_dir()
        again = error_of(s3.create_bucket, Bucket="paris-data", CreateBucketConfiguration=here)
        assert (again["Code"], again["Message"], again["Status"]) == (
            "BucketAlreadyOwnedByYou",
            "Your previous request to create the named bucket succeeded and you already own it.",
            409,
        )
        unspecified = error_of(s3.create_bucket, Bucket="other-data")
        assert unspecified["Message"] == (
            "The unspecified location constraint is incompatible for the region specific "
            "endpoint this request was sent to."
        )
        assert s3.get_bucket_location(Bucket="paris-data")["LocationConstraint"] == "eu-west-1"


def test_a_put_into_a_new_folder_fires_without_waiting_to_settle(tmp_path: Path) -> None:
    """watchdog reports a file in a folder it has just started watching by a walk, with no
    close event, so such files settle first; one the API renamed into place is whole."""
    ws = api_workspace(tmp_path)
    config = yaml.safe_load((ws / "config.yaml").read_text())
    config["simulator"]["settle_ms"] = 10_000  # the most: a settling file fires after 10 s
    (ws / "config.yaml").write_text(yaml.safe_dump(config))
    with running(ws) as (_, log):
        s3 = client(ws)
        for i in range(3):
            sent = dt.datetime.now(dt.UTC)
            s3.put_object(Bucket="inbox", Key=f"new-{i}/deeper/file.txt", Body=b"x")
            key = f"new-{i}/deeper/file.txt"
            (created,) = log.wait_for(log.named("s3.object_created", key=key), timeout=60)
            fired = dt.datetime.fromisoformat(created["timestamp"])
            assert (fired - sent).total_seconds() < 9, created  # not held to settle
