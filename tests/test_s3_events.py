import copy
from urllib.parse import unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.core import s3_events
from simulator.core.s3_events import Identity, ObjectChange
from tests.conftest import fixture

CASES = fixture("key_encoding_cases.json")["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["key"] for c in CASES])
def test_key_encoding_matches_aws(case: dict[str, str]) -> None:
    assert s3_events.encode_key(case["key"]) == case["event_key"]


@given(st.text(min_size=1, max_size=200).filter(lambda k: "\x00" not in k))
def test_key_encoding_round_trips_with_unquote_plus(key: str) -> None:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert unquote_plus(s3_events.encode_key(key)) == key


def test_put_record_equals_the_s3_user_guide_example() -> None:
    doc = fixture("notification_content_structure_examples.json")["put_example"]
    expected = copy.deepcopy(doc)
    record = expected["Records"][0]
    # Simulated buckets are unversioned: AWS omits versionId then (reference §1.3).
    record["s3"]["object"].pop("versionId", None)
    obj = record["s3"]["object"]
    change = ObjectChange(
        "mybucket", "HappyFace.jpg", "put", obj["size"], obj["eTag"], obj["sequencer"], 0
    )
    identity = Identity(
        "us-west-2",
        record["userIdentity"]["principalId"],
        record["s3"]["bucket"]["ownerIdentity"]["principalId"],
        record["requestParameters"]["sourceIPAddress"],
    )
    built = s3_events.build(
        change,
        record["s3"]["configurationId"],
        identity,
        record["responseElements"]["x-amz-request-id"],
        record["responseElements"]["x-amz-id-2"],
    )
    assert built == expected
    assert list(built["Records"][0]) == list(record)  # same field order as AWS
    assert list(built["Records"][0]["s3"]) == list(record["s3"])


def _shape(value: object) -> object:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


def test_put_and_delete_shapes_match_real_aws_recordings() -> None:
    messages = fixture("sqs_created_and_removed.json")["recorded"]["receive_messages"]["messages"]
    put_aws = next(m for m in messages if m["eventName"] == "ObjectCreated:Put")
    delete_aws = next(m for m in messages if m["eventName"] == "ObjectRemoved:Delete")
    identity = Identity("us-east-1")
    put = s3_events.build(
        ObjectChange(
            "b", "k", "put", 9, "437b930db84b8079c2dd804a71936b5f", "0055AED6DCD90281E5", 0
        ),
        "id",
        identity,
        "R",
        "H",
    )
    delete = s3_events.build(
        ObjectChange("b", "k", "delete", sequencer="0055AED6DCD90281E6"), "id", identity, "R", "H"
    )
    assert _shape(put["Records"][0]) == _shape(put_aws)
    assert _shape(delete["Records"][0]) == _shape(delete_aws)
    assert set(delete["Records"][0]["s3"]["object"]) == {"key", "sequencer"}
    assert put["Records"][0]["eventVersion"] == put_aws["eventVersion"] == "2.1"


def test_event_time_is_utc_with_milliseconds() -> None:
    assert s3_events.format_time(0) == "1970-01-01T00:00:00.000Z"
    assert s3_events.format_time(1737501670123) == "2025-01-21T23:21:10.123Z"


def test_sequencer_is_upper_hex_of_aws_length() -> None:
    assert s3_events.format_sequencer(0x55AED6DCD90281E5) == "0055AED6DCD90281E5"


@given(st.integers(0, 16**18 - 1), st.integers(0, 16**18 - 1))
def test_sequencer_order_follows_value(a: int, b: int) -> None:
    sa, sb = s3_events.format_sequencer(a), s3_events.format_sequencer(b)
    n = max(len(sa), len(sb))  # AWS's comparison rule: right-pad with zeros, then compare
    assert (sa.ljust(n, "0") < sb.ljust(n, "0")) == (a < b)
