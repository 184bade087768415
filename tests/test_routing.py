import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.core import routing
from simulator.core.arn import FunctionArn
from simulator.core.config import Bucket, Notification

ARN = FunctionArn.parse("arn:aws:lambda:us-east-1:123456789012:function:fn:prod")


def bucket(*notes: Notification) -> Bucket:
    return Bucket("uploads", notes)


@pytest.mark.parametrize(
    "spec, name, expected",
    [
        ("s3:ObjectCreated:*", "ObjectCreated:Put", True),
        ("s3:ObjectCreated:Put", "ObjectCreated:Put", True),
        ("s3:ObjectCreated:Copy", "ObjectCreated:Put", False),
        ("s3:ObjectRemoved:*", "ObjectCreated:Put", False),
        ("s3:ObjectRemoved:*", "ObjectRemoved:Delete", True),
    ],
)
def test_event_matching(spec: str, name: str, expected: bool) -> None:
    assert routing.event_matches(spec, name) is expected


def test_filters_compare_against_the_encoded_key() -> None:
    # S3's docs: a filter value with a space is written with '+'.
    note = Notification("a", ARN, ("s3:ObjectCreated:*",), prefix="my+photos/", suffix=".jpg")
    assert routing.match(bucket(note), "my photos/cat.jpg", "ObjectCreated:Put") == [note]
    plain = Notification("b", ARN, ("s3:ObjectCreated:*",), prefix="my photos/")
    assert routing.match(bucket(plain), "my photos/cat.jpg", "ObjectCreated:Put") == []


def test_suffix_is_case_sensitive() -> None:
    note = Notification("a", ARN, ("s3:ObjectCreated:*",), suffix=".jpg")
    assert routing.match(bucket(note), "cat.JPG", "ObjectCreated:Put") == []


def test_explain_reports_each_condition() -> None:
    note = Notification("a", ARN, ("s3:ObjectCreated:*",), prefix="images/", suffix=".jpg")
    (verdict,) = routing.explain(bucket(note), "docs/cat.jpg", "ObjectCreated:Put")
    assert (verdict.event_ok, verdict.prefix_ok, verdict.suffix_ok, verdict.matched) == (
        True,
        False,
        True,
        False,
    )


_texts = st.text(alphabet="ab/. +", max_size=5)


@given(_texts, _texts, _texts, st.sampled_from(["ObjectCreated:Put", "ObjectRemoved:Delete"]))
def test_match_agrees_with_explain(prefix: str, suffix: str, key: str, name: str) -> None:
    note = Notification("a", ARN, ("s3:ObjectCreated:*",), prefix=prefix, suffix=suffix)
    verdicts = routing.explain(bucket(note), key, name)
    assert routing.match(bucket(note), key, name) == [v.notification for v in verdicts if v.matched]
