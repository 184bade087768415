from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.core import config_parse
from simulator.core.config import check_published
from simulator.errors import ConfigError
from tests.conftest import fixture

ARN = "arn:aws:lambda:us-east-1:123456789012:function"
RECORDED_FN = "arn:<partition>:lambda:<region>:111111111111:function:<function-name:1>"


def base(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "region": "us-east-1",
        "account": "123456789012",
        "functions": {
            "fn": {"handler": "handler.handler", "aliases": {"prod": 1, "dev": "$LATEST"}}
        },
        "buckets": {
            "uploads": {
                "notifications": [
                    {
                        "id": "a",
                        "events": ["s3:ObjectCreated:*"],
                        "prefix": "images/",
                        "suffix": ".jpg",
                        "function": f"{ARN}:fn:prod",
                    }
                ]
            }
        },
    }
    raw.update(overrides)
    return raw


def problems(raw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_parse.parse(raw)
    return [str(p) for p in info.value.problems]


def recorded_message(name: str) -> str:
    return str(
        fixture("alias_routing_config_invalid_and_notfound.json")["recorded"][name]["Error"][
            "Message"
        ]
    )


def test_short_form_builds_the_model() -> None:
    config = config_parse.parse(base())
    note = config.buckets["uploads"].notifications[0]
    assert (note.id, note.prefix, note.suffix, str(note.function_arn)) == (
        "a",
        "images/",
        ".jpg",
        f"{ARN}:fn:prod",
    )
    assert config.functions["fn"].aliases["prod"].version == "1"


def test_s3_api_shape_with_case_insensitive_rule_names() -> None:
    raw = base(
        buckets={
            "uploads": {
                "LambdaFunctionConfigurations": [
                    {
                        "Id": "thumbs",
                        "LambdaFunctionArn": f"{ARN}:fn:prod",
                        "Events": ["s3:ObjectCreated:Put"],
                        "Filter": {
                            "Key": {
                                "FilterRules": [
                                    {"Name": "Prefix", "Value": "images/"},
                                    {"Name": "suffix", "Value": ".jpg"},
                                ]
                            }
                        },
                    }
                ]
            }
        }
    )
    note = config_parse.parse(raw).buckets["uploads"].notifications[0]
    assert (note.id, note.events, note.prefix, note.suffix) == (
        "thumbs",
        ("s3:ObjectCreated:Put",),
        "images/",
        ".jpg",
    )


def test_missing_id_gets_a_stable_generated_one() -> None:
    raw = base()
    del raw["buckets"]["uploads"]["notifications"][0]["id"]
    first = config_parse.parse(raw).buckets["uploads"].notifications[0].id
    assert first == config_parse.parse(raw).buckets["uploads"].notifications[0].id
    assert len(first) == 48  # base64 of a UUID string, like the ids S3 generates


def test_two_suffix_rules_rejected_with_s3_text() -> None:
    raw = base(
        buckets={
            "uploads": {
                "LambdaFunctionConfigurations": [
                    {
                        "LambdaFunctionArn": f"{ARN}:fn:prod",
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {
                                "FilterRules": [
                                    {"Name": "suffix", "Value": ".jpg"},
                                    {"Name": "suffix", "Value": ".png"},
                                ]
                            }
                        },
                    }
                ]
            }
        }
    )
    assert problems(raw) == [
        "buckets.uploads.LambdaFunctionConfigurations[0].Filter.Key."
        "FilterRules: Cannot specify more than one suffix rule in a filter."
    ]


def _two(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    for n, note in (("a", a), ("b", b)):
        note.setdefault("id", n)
        note.setdefault("function", f"{ARN}:fn:prod")
    return base(buckets={"uploads": {"notifications": [a, b]}})


def test_unfiltered_configurations_on_one_event_type_overlap() -> None:
    raw = _two({"events": ["s3:ObjectCreated:*"]}, {"events": ["s3:ObjectCreated:Put"]})
    assert problems(raw) == [
        "buckets.uploads: configurations 'a' and 'b': Configurations "
        "overlap. Configurations on the same bucket cannot share a common "
        "event type."
    ]


def test_overlapping_prefixes_and_suffixes_are_ambiguous() -> None:
    raw = _two(
        {"events": ["s3:ObjectCreated:*"], "prefix": "images/", "suffix": "jpg"},
        {"events": ["s3:ObjectCreated:Put"], "prefix": "images/big/", "suffix": ".jpg"},
    )
    assert problems(raw)[0].endswith(
        "Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules "
        "if the prefixes are overlapping for the same event type."
    )


@pytest.mark.parametrize(
    "a, b",
    [
        (
            {"events": ["s3:ObjectCreated:*"], "suffix": ".jpg"},
            {"events": ["s3:ObjectCreated:*"], "suffix": ".png"},
        ),
        ({"events": ["s3:ObjectCreated:*"]}, {"events": ["s3:ObjectRemoved:*"]}),
        (
            {"events": ["s3:ObjectCreated:*"], "prefix": "a/"},
            {"events": ["s3:ObjectCreated:*"], "prefix": "b/"},
        ),
    ],
)
def test_non_overlapping_configurations_are_accepted(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert len(config_parse.parse(_two(a, b)).buckets["uploads"].notifications) == 2


def test_unparseable_arn_uses_s3_message() -> None:
    raw = base()
    raw["buckets"]["uploads"]["notifications"][0]["function"] = "thumbnailer"
    assert problems(raw) == [
        "buckets.uploads.notifications[0].function: The ARN could not be parsed: 'thumbnailer'"
    ]


def test_missing_alias_target_is_not_authorized_like_s3_says() -> None:
    raw = base()
    raw["buckets"]["uploads"]["notifications"][0]["function"] = f"{ARN}:fn:staging"
    (message,) = problems(raw)
    assert (
        "Unable to validate the following destination configurations: Not authorized "
        f"to invoke function [{ARN}:fn:staging]"
    ) in message


def test_all_digit_alias_name_rejected_with_lambda_text() -> None:
    raw = base()
    raw["functions"]["fn"]["aliases"]["2024"] = 1
    assert (
        "functions.fn.aliases.2024: 1 validation error detected: Value '2024' at 'name' "
        "failed to satisfy constraint: Member must satisfy regular expression pattern: "
        "(?!^[0-9]+$)([a-zA-Z0-9-_]+)"
    ) in problems(raw)


@pytest.mark.parametrize(
    "weights, primary, recording",
    [
        ({2: 0.1, 3: 0.1}, 1, "routing_config_exc_toomany"),
        ({2: 2}, 1, "routing_config_exc_toohigh"),
        ({2: -1}, 1, "routing_config_exc_subzero"),
        ({1: 0.5}, 1, "routing_config_exc_sameversion"),
        ({2: 0.5}, "$LATEST", "target_version_exc_version_latest"),
        ({"$LATEST": 0.5}, 1, "routing_config_exc_version_latest"),
    ],
)
def test_weighted_alias_rules_use_recorded_aws_messages(
    weights: dict[Any, Any], primary: Any, recording: str
) -> None:
    raw = base()
    raw["functions"]["fn"]["aliases"]["canary"] = {"version": primary, "weights": weights}
    expected = recorded_message(recording)
    assert f"functions.fn.aliases.canary.weights: {expected}" in problems(raw)


def test_alias_to_unpublished_version_is_function_not_found() -> None:
    config = config_parse.parse(base())
    with pytest.raises(ConfigError) as info:
        check_published(config, {"fn": frozenset()})
    expected = recorded_message("target_version_doesnotexist").replace(
        f"{RECORDED_FN}:10", f"{ARN}:fn:1"
    )
    assert expected in str(info.value.problems[0])
    check_published(config, {"fn": frozenset({1})})


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "timeout",
            0,
            "Value '0' at 'timeout' failed to satisfy constraint: Member must have value "
            "greater than or equal to 1",
        ),
        (
            "timeout",
            901,
            "Value '901' at 'timeout' failed to satisfy constraint: Member must have "
            "value less than or equal to 900",
        ),
        (
            "memory",
            64,
            "Value '64' at 'memorySize' failed to satisfy constraint: Member must have "
            "value greater than or equal to 128",
        ),
        (
            "retries",
            3,
            "Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: Member "
            "must have value less than or equal to 2",
        ),
        (
            "max_event_age",
            59,
            "Value '59' at 'maximumEventAgeInSeconds' failed to satisfy "
            "constraint: Member must have value greater than or equal to 60",
        ),
    ],
)
def test_ranges_named_by_path_and_aws_field(field: str, value: int, message: str) -> None:
    raw = base()
    raw["functions"]["fn"][field] = value
    assert problems(raw) == [f"functions.fn.{field}: 1 validation error detected: {message}"]


def test_reserved_environment_key_rejected() -> None:
    raw = base()
    raw["functions"]["fn"]["environment"] = {"AWS_REGION": "x"}
    (message,) = problems(raw)
    assert message.startswith(
        "functions.fn.environment.AWS_REGION: Lambda was unable to "
        "configure your environment variables"
    )


def test_every_problem_is_reported_at_once() -> None:
    raw = base()
    raw["functions"]["fn"]["timeout"] = 0
    raw["functions"]["fn"]["memory"] = 1
    raw["buckets"]["uploads"]["notifications"][0]["events"] = ["s3:ObjectMade"]
    assert len(problems(raw)) == 3


@given(
    st.text(alphabet="ab/.", max_size=6),
    st.text(alphabet="ab/.", max_size=6),
    st.text(alphabet="ab/.", max_size=6),
    st.text(alphabet="ab/.", max_size=6),
)
def test_overlap_rule_guarantees_at_most_one_match(p1: str, s1: str, p2: str, s2: str) -> None:
    """AWS's overlap validation means no key can match two accepted configurations."""
    from simulator.core import routing

    raw = _two(
        {"events": ["s3:ObjectCreated:*"], "prefix": p1, "suffix": s1},
        {"events": ["s3:ObjectCreated:*"], "prefix": p2, "suffix": s2},
    )
    try:
        config = config_parse.parse(raw)
    except ConfigError:
        return
    for key in {p1 + s1, p2 + s2, p1 + s2, p2 + s1, p1 + "x" + s1, p2 + "x" + s2}:
        assert len(routing.match(config.buckets["uploads"], key, "ObjectCreated:Put")) <= 1


# -- overlap detection: the sort-based search finds exactly the pairs all-pairs testing does --


def _pairwise_overlaps(notes: list[Any]) -> list[tuple[int, int]]:
    """The former quadratic check, kept as the oracle."""
    import itertools

    from simulator.core.s3_events import events_intersect

    pairs = []
    for (i, a), (j, b) in itertools.combinations(enumerate(notes), 2):
        if not any(events_intersect(x, y) for x in a.events for y in b.events):
            continue
        prefixes = a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)
        suffixes = a.suffix.endswith(b.suffix) or b.suffix.endswith(a.suffix)
        if prefixes and suffixes:
            pairs.append((i, j))
    return pairs


_OVERLAP_EVENTS = [
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Copy",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectTagging:*",
    "s3:LifecycleTransition",
]
_rule = st.builds(
    lambda events, prefix, suffix: _Rule(tuple(events), prefix, suffix),
    st.lists(st.sampled_from(_OVERLAP_EVENTS), min_size=1, max_size=3, unique=True),
    st.text(alphabet="ab/", max_size=4),
    st.text(alphabet="ab.", max_size=4),
)


class _Rule:
    def __init__(self, events: tuple[str, ...], prefix: str, suffix: str) -> None:
        self.events, self.prefix, self.suffix = events, prefix, suffix


@given(st.lists(_rule, max_size=25))
def test_overlap_search_finds_the_same_pairs_as_all_pairs(rules: list[_Rule]) -> None:
    from simulator.core.config_overlaps import overlapping_pairs

    assert overlapping_pairs(rules) == _pairwise_overlaps(rules)


def test_overlap_messages_name_every_pair_in_order() -> None:
    notes = [
        {"id": "all", "events": ["s3:ObjectCreated:*"], "function": f"{ARN}:fn:prod"},
        {
            "id": "put",
            "events": ["s3:ObjectCreated:Put"],
            "prefix": "a/",
            "function": f"{ARN}:fn:prod",
        },
        {
            "id": "copy",
            "events": ["s3:ObjectCreated:Copy"],
            "prefix": "a/b",
            "suffix": ".jpg",
            "function": f"{ARN}:fn:prod",
        },
        {"id": "gone", "events": ["s3:ObjectRemoved:*"], "function": f"{ARN}:fn:prod"},
    ]
    ambiguous = (
        "Configuration is ambiguously defined. Cannot have overlapping suffixes in two "
        "rules if the prefixes are overlapping for the same event type."
    )
    assert problems(base(buckets={"uploads": {"notifications": notes}})) == [
        f"buckets.uploads: configurations 'all' and 'put': {ambiguous}",
        f"buckets.uploads: configurations 'all' and 'copy': {ambiguous}",
    ]


def test_many_distinct_prefixes_validate_without_pairwise_work() -> None:
    notes = [
        {
            "id": f"r{i}",
            "events": ["s3:ObjectCreated:*"],
            "prefix": f"p{i}/",
            "function": f"{ARN}:fn:prod",
        }
        for i in range(20000)
    ]
    notes.append(
        {
            "id": "dup",
            "events": ["s3:ObjectCreated:Put"],
            "prefix": "p19999/x",
            "function": f"{ARN}:fn:prod",
        }
    )
    (message,) = problems(base(buckets={"uploads": {"notifications": notes}}))
    assert message.startswith("buckets.uploads: configurations 'r19999' and 'dup': ")


# -- wrong types and unknown keys are problems with a path, never tracebacks --


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda raw: raw["buckets"]["uploads"]["notifications"][0].update(
                events=[["s3:ObjectCreated:*"]]
            ),
            "buckets.uploads.notifications[0].events[0]: must be a string, got ['s3:ObjectCreated:*']",
        ),
        (
            lambda raw: raw.update(account={"a": 1}),
            "account: must be a 12-digit AWS account id, got {'a': 1}",
        ),
        (
            lambda raw: raw.update(account=1.5),
            "account: must be a 12-digit AWS account id, got 1.5",
        ),
        (lambda raw: raw.update(region=[1]), "region: must be a string, got [1]"),
        (
            lambda raw: raw["buckets"]["uploads"].update(notifications=["thumbs"]),
            "buckets.uploads.notifications[0]: must be a mapping, got 'thumbs'",
        ),
        (
            lambda raw: raw["buckets"]["uploads"]["notifications"][0].update(prefix=5),
            "buckets.uploads.notifications[0].prefix: must be a string, got 5",
        ),
        (
            lambda raw: raw["buckets"]["uploads"]["notifications"][0].update(function=["arn"]),
            "buckets.uploads.notifications[0].function: must be a string, got ['arn']",
        ),
        (
            lambda raw: raw["buckets"]["uploads"]["notifications"][0].update(id={"x": 1}),
            "buckets.uploads.notifications[0].id: must be a string, got {'x': 1}",
        ),
        (
            lambda raw: raw["functions"]["fn"].update(on_failure={"bucket": [1]}),
            "functions.fn.on_failure.bucket: must be a string, got [1]",
        ),
        (
            lambda raw: raw["functions"]["fn"]["aliases"].update(
                canary={"version": 1, "weights": {"²": 0.5}}
            ),
            "functions.fn.aliases.canary.weights: 1 validation error detected: Value '{²=0.5}' at "
            "'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys must "
            "satisfy constraint: [Member must have length less than or equal to 1024, Member must "
            "have length greater than or equal to 1, Member must satisfy regular expression pattern: "
            "[0-9]+]",
        ),
        (
            lambda raw: raw.update(simulator={"ignore": ["*.tmp", 3]}),
            "simulator.ignore[1]: must be a string, got 3",
        ),
        (
            lambda raw: raw.update(simulator={"time_scale": 10**400}),
            "simulator.time_scale: must be a number, got 100000000000000000...0000000000000000000",
        ),
    ],
)
def test_wrong_types_name_their_path(edit: Any, expected: str) -> None:
    raw = base()
    edit(raw)
    assert expected in problems(raw)


def test_s3_shape_filter_rules_are_type_checked() -> None:
    raw = base(
        buckets={
            "uploads": {
                "LambdaFunctionConfigurations": [
                    {
                        "LambdaFunctionArn": f"{ARN}:fn:prod",
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {
                                "FilterRules": [
                                    {"Name": ["Prefix"], "Value": "a/"},
                                    {"Name": "Suffix", "Value": 7},
                                ]
                            }
                        },
                    }
                ]
            }
        }
    )
    where = "buckets.uploads.LambdaFunctionConfigurations[0].Filter.Key.FilterRules"
    assert problems(raw) == [
        f"{where}[0].Name: must be a string, got ['Prefix']",
        f"{where}[1].Value: must be a string, got 7",
    ]


_KEYS = (
    st.sampled_from(
        [
            "region",
            "account",
            "functions",
            "buckets",
            "simulator",
            "fn",
            "uploads",
            "handler",
            "timeout",
            "environment",
            "on_failure",
            "on_success",
            "aliases",
            "prod",
            "version",
            "weights",
            "notifications",
            "LambdaFunctionConfigurations",
            "NotificationConfiguration",
            "id",
            "events",
            "prefix",
            "suffix",
            "function",
            "Id",
            "Events",
            "LambdaFunctionArn",
            "Filter",
            "Key",
            "FilterRules",
            "Name",
            "Value",
            "bucket",
            "ignore",
            "time_scale",
            "seed",
            "retries",
            "1",
            "2",
        ]
    )
    | st.text(max_size=3)
    | st.integers(-2, 2)
)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from([f"{ARN}:fn:prod", "s3:ObjectCreated:*", "$LATEST", "a/", ".jpg"])
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=25,
)


@given(_VALUES | st.dictionaries(_KEYS, _VALUES, max_size=5))
def test_any_value_gives_a_config_or_a_config_error(raw: Any) -> None:
    try:
        config_parse.parse(raw)
    except ConfigError:
        pass


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda raw: raw["buckets"]["uploads"]["notifications"][0].update(sufix=".jpg"),
            "buckets.uploads.notifications[0].sufix: unknown setting; did you mean 'suffix'?",
        ),
        (
            lambda raw: raw["functions"]["fn"].update(handlr="h.h"),
            "functions.fn.handlr: unknown setting; did you mean 'handler'?",
        ),
        (
            lambda raw: raw["functions"]["fn"]["aliases"].update(
                canary={"version": 1, "weigths": {}}
            ),
            "functions.fn.aliases.canary.weigths: unknown setting; did you mean 'weights'?",
        ),
        (
            lambda raw: raw.update(simulator={"time_scal": 0.5}),
            "simulator.time_scal: unknown setting; did you mean 'time_scale'?",
        ),
        (lambda raw: raw.update(bukets={}), "bukets: unknown setting; did you mean 'buckets'?"),
        (
            lambda raw: raw.update(zzz={}),
            "zzz: unknown setting (expected one of account, buckets, functions, region, simulator)",
        ),
        (
            lambda raw: raw["buckets"]["uploads"].update(notification=[]),
            "buckets.uploads.notification: unknown setting; did you mean 'notifications'?",
        ),
    ],
)
def test_unknown_keys_suggest_the_likely_one(edit: Any, expected: str) -> None:
    raw = base()
    edit(raw)
    assert problems(raw) == [expected]


def test_unknown_keys_in_s3_shape_are_named() -> None:
    raw = base(
        buckets={
            "uploads": {
                "LambdaFunctionConfigurations": [
                    {
                        "LambdaFunctionArn": f"{ARN}:fn:prod",
                        "Events": ["s3:ObjectCreated:*"],
                        "Filters": {},
                        "Filter": {
                            "Keys": {},
                            "Key": {
                                "FilterRule": [],
                                "FilterRules": [{"Name": "prefix", "Value": "a/", "Valeu": "b/"}],
                            },
                        },
                    }
                ]
            }
        }
    )
    where = "buckets.uploads.LambdaFunctionConfigurations[0]"
    assert problems(raw) == [
        f"{where}.Filters: unknown setting; did you mean 'Filter'?",
        f"{where}.Filter.Keys: unknown setting; did you mean 'Key'?",
        f"{where}.Filter.Key.FilterRule: unknown setting; did you mean 'FilterRules'?",
        f"{where}.Filter.Key.FilterRules[0].Valeu: unknown setting; did you mean 'Value'?",
    ]


# -- bucket names (S3's general purpose rules) and handler paths (the Python runtime's) --


@pytest.mark.parametrize(
    "name, rule",
    [
        ("ab", "Bucket names must be between 3 (min) and 63 (max) characters long."),
        ("a" * 64, "Bucket names must be between 3 (min) and 63 (max) characters long."),
        (
            "My_Bucket",
            "Bucket names can consist only of lowercase letters, numbers, periods (.), "
            "and hyphens (-).",
        ),
        ("-uploads", "Bucket names must begin and end with a letter or number."),
        ("uploads.", "Bucket names must begin and end with a letter or number."),
        ("my..bucket", "Bucket names must not contain two adjacent periods."),
        (
            "192.168.5.4",
            "Bucket names must not be formatted as an IP address (for example, 192.168.5.4).",
        ),
        ("xn--uploads", "Bucket names must not start with the prefix 'xn--'."),
        ("sthree-uploads", "Bucket names must not start with the prefix 'sthree-'."),
        ("amzn-s3-demo-uploads", "Bucket names must not start with the prefix 'amzn-s3-demo-'."),
        ("uploads-s3alias", "Bucket names must not end with the suffix '-s3alias'."),
        ("uploads--ol-s3", "Bucket names must not end with the suffix '--ol-s3'."),
        ("uploads.mrap", "Bucket names must not end with the suffix '.mrap'."),
        ("uploads--x-s3", "Bucket names must not end with the suffix '--x-s3'."),
        ("uploads--table-s3", "Bucket names must not end with the suffix '--table-s3'."),
    ],
)
def test_bucket_names_follow_s3_rules(name: str, rule: str) -> None:
    raw = base()
    raw["buckets"][name] = {}
    raw["functions"]["fn"]["on_failure"] = {"bucket": name}
    assert problems(raw) == [
        f"buckets.{name}: invalid bucket name {name!r}: {rule}",
        f"functions.fn.on_failure: invalid bucket name {name!r}: {rule}",
    ]


@pytest.mark.parametrize("name", ["abc", "my.bucket-1", "a" * 63, "192.168.5.4x", "xn-a"])
def test_valid_bucket_names_are_accepted(name: str) -> None:
    raw = base()
    raw["buckets"][name] = {}
    raw["functions"]["fn"]["on_failure"] = f"arn:aws:s3:::{name}"
    config_parse.parse(raw)


@pytest.mark.parametrize(
    "handler, reason",
    [
        ("../../etc/x.handler", "the module path must stay inside the function's code folder"),
        ("/abs/x.handler", "the module path must stay inside the function's code folder"),
        ("./x.handler", "the module path must stay inside the function's code folder"),
        ("pkg/../x.handler", "the module path must stay inside the function's code folder"),
        ("handler", "not enough values to unpack (expected 2, got 1)"),
        (".handler", "the module path has an empty part"),
        ("pkg//mod.handler", "the module path has an empty part"),
        ("handler.", "the function name '' is not a Python identifier"),
        ("handler.my-fn", "the function name 'my-fn' is not a Python identifier"),
    ],
)
def test_handlers_the_runtime_cannot_resolve_are_refused(handler: str, reason: str) -> None:
    raw = base()
    raw["functions"]["fn"]["handler"] = handler
    assert problems(raw) == [f"functions.fn.handler: Bad handler '{handler}': {reason}"]


@pytest.mark.parametrize(
    "handler", ["handler.handler", "pkg/mod.fn", "pkg.mod.fn", "src/pkg.mod.run_1"]
)
def test_handler_paths_inside_the_code_folder_are_accepted(handler: str) -> None:
    raw = base()
    raw["functions"]["fn"]["handler"] = handler
    assert config_parse.parse(raw).functions["fn"].handler == handler
