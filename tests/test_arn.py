import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.core.arn import FunctionArn
from simulator.errors import ArnError

BASE = "arn:aws:lambda:us-east-1:123456789012:function:thumbnailer"


@pytest.mark.parametrize(
    "text, qualifier, kind",
    [
        (BASE, None, "unqualified"),
        (f"{BASE}:$LATEST", "$LATEST", "latest"),
        (f"{BASE}:42", "42", "version"),
        (f"{BASE}:prod", "prod", "alias"),
        (f"{BASE}:2024-01-02", "2024-01-02", "alias"),
    ],
)
def test_parse_qualifiers(text: str, qualifier: str | None, kind: str) -> None:
    arn = FunctionArn.parse(text)
    assert (arn.function, arn.qualifier, arn.kind) == ("thumbnailer", qualifier, kind)
    assert str(arn) == text


@pytest.mark.parametrize(
    "text",
    [
        "thumbnailer",
        "arn:aws:lambda:us-east-1:123456789012:function:",
        f"{BASE}:1:2",  # multiple qualifiers
        f"{BASE}:$LATEST.PUBLISHED",
        "arn:aws:lambda:us-east-1:12345:function:fn",  # short account
        "arn:aws:s3:::bucket",
        "arn:aws:lambda:us-east-1:123456789012:function:bad name",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ArnError) as info:
        FunctionArn.parse(text)
    assert "The ARN could not be parsed" in str(info.value)


names = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True)
qualifiers = st.one_of(
    st.none(),
    st.just("$LATEST"),
    st.integers(1, 10**6).map(str),
    st.from_regex(r"[a-zA-Z_-][a-zA-Z0-9_-]{0,20}", fullmatch=True),
)


@given(names, qualifiers, st.sampled_from(["us-east-1", "eu-west-3", "us-gov-west-1"]))
def test_format_parse_round_trip(name: str, qualifier: str | None, region: str) -> None:
    arn = FunctionArn.build(region, "123456789012", name, qualifier)
    assert FunctionArn.parse(str(arn)) == arn
