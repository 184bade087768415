import random

import pytest

from simulator.core import aliases, config_parse
from simulator.core.arn import FunctionArn
from simulator.errors import ResourceNotFound

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
CONFIG = config_parse.parse(
    {
        "functions": {
            "fn": {
                "aliases": {
                    "prod": 3,
                    "dev": "$LATEST",
                    "canary": {"version": 3, "weights": {4: 0.1}},
                }
            }
        }
    }
)
PUBLISHED = {"fn": frozenset({1, 2, 3, 4})}


def resolve(arn: str, rng: random.Random | None = None) -> aliases.Resolution:
    return aliases.resolve(
        CONFIG, PUBLISHED, FunctionArn.parse(arn), (rng or random.Random(0)).random
    )


@pytest.mark.parametrize(
    "arn, version",
    [
        (ARN, "$LATEST"),
        (f"{ARN}:$LATEST", "$LATEST"),
        (f"{ARN}:2", "2"),
        (f"{ARN}:prod", "3"),
        (f"{ARN}:dev", "$LATEST"),
    ],
)
def test_resolves_to_the_version_in_force(arn: str, version: str) -> None:
    assert resolve(arn).version == version


@pytest.mark.parametrize(
    "arn", [f"{ARN}:9", f"{ARN}:staging", "arn:aws:lambda:us-east-1:123456789012:function:other"]
)
def test_unknown_targets_are_function_not_found(arn: str) -> None:
    with pytest.raises(ResourceNotFound) as info:
        resolve(arn)
    assert info.value.message == f"Function not found: {arn}"


def test_weighted_alias_routes_about_the_weight() -> None:
    rng = random.Random(1234)
    picks = [resolve(f"{ARN}:canary", rng).version for _ in range(20000)]
    share = picks.count("4") / len(picks)
    assert 0.09 < share < 0.11
    assert set(picks) == {"3", "4"}


def test_weight_zero_and_one_are_absolute() -> None:
    rng = random.Random(5)
    assert {aliases.choose("1", {"2": 0.0}, rng.random) for _ in range(500)} == {"1"}
    assert {aliases.choose("1", {"2": 1.0}, rng.random) for _ in range(500)} == {"2"}
