"""The pure parts of the S3 API's bucket and multipart operations: the uploads listing's
paging, the copy range, the notification body, and problems as S3's errors."""

from __future__ import annotations

import pytest

from simulator.core import s3_buckets, s3_multipart
from simulator.core.s3_api import S3Error
from simulator.core.s3_multipart import Upload
from simulator.errors import Problem

UPLOADS = [
    Upload("c", "0002", 2),
    Upload("a/1", "0001", 1),
    Upload("c", "0003", 3),
    Upload("a/2", "0004", 4),
    Upload("b", "0005", 5),
]


def keys_and_ids(page: s3_multipart.UploadsPage) -> list[tuple[str, str]]:
    return [(u.key, u.upload_id) for u in page.uploads]


def test_uploads_are_listed_by_key_then_initiation_and_paged_by_both_markers() -> None:
    every = s3_multipart.uploads_page(UPLOADS)
    assert keys_and_ids(every) == [
        ("a/1", "0001"),
        ("a/2", "0004"),
        ("b", "0005"),
        ("c", "0002"),
        ("c", "0003"),
    ]
    first = s3_multipart.uploads_page(UPLOADS, max_uploads=4)
    assert first.truncated and keys_and_ids(first)[-1] == ("c", "0002")
    rest = s3_multipart.uploads_page(UPLOADS, key_marker="c", upload_id_marker="0002")
    assert keys_and_ids(rest) == [("c", "0003")] and not rest.truncated
    after_key = s3_multipart.uploads_page(UPLOADS, key_marker="b")  # no id marker: keys > b
    assert keys_and_ids(after_key) == [("c", "0002"), ("c", "0003")]
    folded = s3_multipart.uploads_page(UPLOADS, delimiter="/", max_uploads=2)
    assert folded.prefixes == ("a/",) and keys_and_ids(folded) == [("b", "0005")]
    assert folded.truncated
    past_prefix = s3_multipart.uploads_page(UPLOADS, delimiter="/", key_marker="a/")
    assert past_prefix.prefixes == () and keys_and_ids(past_prefix)[0] == ("b", "0005")


def test_a_copy_range_must_be_one_satisfiable_byte_range() -> None:
    assert s3_multipart.copy_range(None, 10) == (0, 9)
    assert s3_multipart.copy_range("bytes=2-5", 10) == (2, 5)
    for bad in ("2-5", "bytes=2-", "bytes=-5", "bytes=0-1,3-4"):
        with pytest.raises(S3Error) as malformed:
            s3_multipart.copy_range(bad, 10)
        assert malformed.value.arguments == (
            ("ArgumentName", "x-amz-copy-source-range"),
            ("ArgumentValue", bad),
        )
    for unsatisfiable in ("bytes=5-10", "bytes=6-5"):
        with pytest.raises(S3Error) as outside:
            s3_multipart.copy_range(unsatisfiable, 10)
        assert outside.value.message == "Range specified is not valid for source object of size: 10"


def test_a_notification_body_becomes_s3s_shape_and_other_destinations_are_refused() -> None:
    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    body = (
        f"<NotificationConfiguration {ns}><CloudFunctionConfiguration><Id>x</Id>"
        "<CloudFunction>arn</CloudFunction><Event>s3:ObjectCreated:*</Event>"
        "<Filter><S3Key><FilterRule><Name>suffix</Name><Value>.jpg</Value></FilterRule>"
        "</S3Key></Filter></CloudFunctionConfiguration></NotificationConfiguration>"
    ).encode()
    assert s3_buckets.parse_notification(body) == [
        {
            "Id": "x",
            "LambdaFunctionArn": "arn",
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".jpg"}]}},
        }
    ]
    queue = f"<NotificationConfiguration {ns}><QueueConfiguration/></NotificationConfiguration>"
    with pytest.raises(S3Error) as refused:
        s3_buckets.parse_notification(queue.encode())
    assert refused.value.message == "Unable to validate the following destination configurations"
    for malformed in (b"<oops", b"<Other/>", f"<NotificationConfiguration {ns}><X/>".encode()):
        with pytest.raises(S3Error) as bad:
            s3_buckets.parse_notification(malformed)
        assert bad.value.code == "MalformedXML"


def test_config_problems_become_s3s_errors() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    unreachable = Problem(
        "buckets.b.notifications[0].function",
        "Unable to validate the following destination configurations: Not authorized to "
        f"invoke function [{arn}] (no function 'f' under functions)",
    )
    error = s3_buckets.problem_error([unreachable, unreachable])
    assert (error.code, error.status, error.message, error.arguments) == (
        "InvalidArgument",
        400,
        "Unable to validate the following destination configurations",
        (
            ("ArgumentName1", f"{arn}, null"),
            ("ArgumentValue1", f"Not authorized to invoke function [{arn}]"),
        ),
    )
    overlap = Problem("buckets.b: configurations 'x' and 'y'", "Configurations overlap. ...")
    assert s3_buckets.problem_error([overlap]).message == "Configurations overlap. ..."


def test_location_constraints_follow_the_endpoints_region() -> None:
    assert s3_buckets.location_problem("", "us-east-1") is None
    assert s3_buckets.location_problem("eu-west-1", "eu-west-1") is None
    invalid = s3_buckets.location_problem("us-east-1", "us-east-1")
    assert invalid is not None and invalid.code == "InvalidLocationConstraint"
    missing = s3_buckets.location_problem("", "eu-west-1")
    assert missing is not None and missing.code == "IllegalLocationConstraintException"
