"""The pure deployment engine: CodeDeploy's Lambda deployment types step by step on an injected
clock, the lifecycle (BeforeAllowTraffic, traffic, AfterAllowTraffic), rollback conditions.

Expected schedules are CodeDeploy's documented configurations ("Deployment configurations on
an AWS Lambda compute platform"): CanaryXPercentNMinutes shifts X percent in the first
increment and the rest N minutes later; LinearXPercentEveryNMinutes shifts X percent every N
minutes until all traffic is shifted; AllAtOnce shifts everything at once.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from simulator.core import aliases, deployments
from simulator.core.deployments import (
    Condition,
    Deployment,
    DeploymentType,
    Outcome,
    advance,
    alias_target,
    hook_done,
    tripped,
)

# (type, [(minute, share of the new version in percent)]) probed on each side of each step.
CANARIES = [
    ("Canary10Percent5Minutes", 5),
    ("Canary10Percent10Minutes", 10),
    ("Canary10Percent15Minutes", 15),
    ("Canary10Percent30Minutes", 30),
]
LINEARS = [
    ("Linear10PercentEvery1Minute", 1),
    ("Linear10PercentEvery2Minutes", 2),
    ("Linear10PercentEvery3Minutes", 3),
    ("Linear10PercentEvery10Minutes", 10),
]


@pytest.mark.parametrize(("name", "minutes"), CANARIES)
def test_each_canary_shifts_ten_percent_then_the_rest_after_its_interval(
    name: str, minutes: int
) -> None:
    kind = DeploymentType.parse(name)
    assert deployments.weight_at(kind, 0) == 0.10
    assert deployments.weight_at(kind, minutes - 0.01) == 0.10
    assert deployments.weight_at(kind, minutes) == 1.0
    assert deployments.next_step_min(kind, 0) == minutes
    assert deployments.next_step_min(kind, minutes) is None


@pytest.mark.parametrize(("name", "minutes"), LINEARS)
def test_each_linear_adds_ten_percent_every_interval(name: str, minutes: int) -> None:
    kind = DeploymentType.parse(name)
    for step in range(10):
        at = step * minutes
        assert deployments.weight_at(kind, at) == pytest.approx((step + 1) / 10), at
        if step:
            assert deployments.weight_at(kind, at - 0.01) == pytest.approx(step / 10), at
    assert deployments.next_step_min(kind, 9 * minutes) is None


def test_all_at_once_shifts_everything_at_once() -> None:
    kind = DeploymentType.parse("AllAtOnce")
    assert [(s.at_min, s.weight) for s in kind.steps()] == [(0, 1.0)]


def test_codedeploy_names_and_custom_types_parse() -> None:
    long = DeploymentType.parse("CodeDeployDefault.LambdaLinear10PercentEvery1Minute")
    assert long == DeploymentType("linear", 10, 1)
    assert long.name == "Linear10PercentEvery1Minute"
    custom = DeploymentType.parse("Canary25Percent2Minutes")
    assert [(s.at_min, s.weight) for s in custom.steps()] == [(0, 0.25), (2, 1.0)]
    thirds = DeploymentType.parse("Linear40PercentEvery3Minutes")  # the last step is capped
    assert [(s.at_min, s.weight) for s in thirds.steps()] == [(0, 0.4), (3, 0.8), (6, 1.0)]
    assert set(deployments.PREDEFINED) == {n for n, _ in CANARIES + LINEARS} | {"AllAtOnce"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("Canary10Percent", "unknown deployment type 'Canary10Percent'"),
        ("Canary100Percent5Minutes", "the percentage must be 1-99"),
        ("Linear10PercentEvery0Minutes", "the interval at least 1 minute"),
    ],
)
def test_bad_types_say_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        DeploymentType.parse(text)


def _deployment(**changes: object) -> Deployment:
    base = Deployment(
        id="d-ABCDEFGHI",
        function="thumbnailer",
        alias="prod",
        old="3",
        new="4",
        type=DeploymentType.parse("Canary10Percent5Minutes"),
        time_scale=0.01,  # a minute lasts 0.6 s
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_compressed_canary_step_by_step_on_an_injected_clock() -> None:
    d = advance(_deployment(), now_s=100.0)  # no hooks: traffic starts at once
    assert d.phase == "AllowTraffic"
    assert alias_target(d, 100.0) == ("3", {"4": 0.1})
    assert alias_target(d, 102.99) == ("3", {"4": 0.1})  # 4.98 minutes at 0.6 s a minute
    d = advance(d, 103.0)  # 5 minutes
    assert (d.phase, d.status) == ("End", "Succeeded")
    assert alias_target(d, 103.0) == ("4", {})


def test_a_compressed_linear_step_by_step() -> None:
    d = advance(_deployment(type=DeploymentType.parse("Linear10PercentEvery1Minute")), 0.0)
    seen = []
    for tick in range(0, 60):  # every 0.1 s for 6 s (the schedule ends at 9 min = 5.4 s)
        now = tick / 10
        d = advance(d, now)
        seen.append(alias_target(d, now))
    assert seen[0] == ("3", {"4": 0.1})
    assert seen[6] == ("3", {"4": 0.2})  # 0.6 s = 1 minute
    assert seen[53] == ("3", {"4": 0.9})
    assert seen[54] == ("4", {})
    assert d.status == "Succeeded"


def test_hooks_bracket_the_traffic() -> None:
    d = advance(_deployment(pre_traffic="pre", post_traffic="post"), 0.0)
    assert (d.phase, d.hook()) == ("BeforeAllowTraffic", "pre")
    assert alias_target(d, 50.0) == ("3", {})  # nothing moves while the pre hook runs
    d = hook_done(d, True, "", now_s=50.0)
    assert d.phase == "AllowTraffic"
    assert alias_target(d, 50.0) == ("3", {"4": 0.1})
    d = advance(d, 53.0)
    assert (d.phase, d.hook()) == ("AfterAllowTraffic", "post")
    assert alias_target(d, 53.0) == ("4", {})
    assert hook_done(d, True, "", 54.0).status == "Succeeded"


def test_a_failed_pre_hook_rolls_back_before_any_traffic_moved() -> None:
    d = advance(_deployment(pre_traffic="pre", old_weights={}), 0.0)
    d = hook_done(d, False, "it reported Failed", 1.0)
    assert (d.status, d.traffic_start_s) == ("RolledBack", None)
    assert d.reason == "BeforeAllowTraffic hook pre failed: it reported Failed"
    assert alias_target(d, 1.0) == ("3", {})


def test_a_failed_post_hook_rolls_back_all_traffic() -> None:
    d = advance(_deployment(post_traffic="post"), 0.0)
    d = advance(d, 3.0)
    assert d.phase == "AfterAllowTraffic"
    d = hook_done(d, False, "ValueError: broken", 3.1)
    assert d.status == "RolledBack"
    assert alias_target(d, 3.1) == ("3", {})


def test_error_rate_trips_only_with_enough_invocations_in_the_window() -> None:
    rate = Condition("error_rate", 0.2, window_min=1.0, min_invocations=5)
    outcomes = [Outcome(float(i), ok=i % 3 != 0) for i in range(4)]  # 2 of 4 fail
    assert tripped([rate], outcomes, now_s=4.0, time_scale=1.0) is None  # only 4 seen
    outcomes.append(Outcome(4.0, ok=True))
    trip = tripped([rate], outcomes, now_s=4.0, time_scale=1.0)
    assert trip is not None
    assert trip.describe() == (
        "error_rate >= 20% over 1 min tripped: 2 errors (0 timeouts) in 5 invocations (40%)"
    )
    # A minute later (compressed: 0.6 s at 0.01) those outcomes are out of the window.
    assert tripped([rate], outcomes, now_s=64.1, time_scale=1.0) is None
    assert tripped([rate], outcomes, now_s=4.7, time_scale=0.01) is None


def test_counts_and_timeouts_trip_at_their_threshold() -> None:
    timeouts = Condition("timeouts", 1)
    errors = Condition("errors", 2)
    outcomes = [Outcome(0.0, False, "Sandbox.Timedout")]
    trip = tripped([errors, timeouts], outcomes, 0.0, 1.0)
    assert trip is not None and trip.condition == timeouts
    outcomes.append(Outcome(0.1, False, "ValueError"))
    trip = tripped([errors, timeouts], outcomes, 0.2, 1.0)
    assert trip is not None and trip.condition == errors


def test_throttles_trip_over_their_window() -> None:
    throttles = Condition("throttles", 2, window_min=1.0)
    assert tripped([throttles], [], now_s=70.0, time_scale=1.0, throttles=[0.0, 65.0]) is None
    trip = tripped([throttles], [], now_s=70.0, time_scale=1.0, throttles=[0.0, 65.0, 69.0])
    assert trip is not None
    assert trip.describe() == "throttles >= 2 over 1 min tripped: 2 throttles"


def test_weighted_routing_during_a_step_matches_the_weight() -> None:
    """At 10% the new version gets 10% of a seeded stream of invocations, within 4 sigma."""
    d = advance(_deployment(), 0.0)
    version, weights = alias_target(d, 1.0)
    rng = random.Random(20241128)
    picks = [aliases.choose(version, weights, rng.random) for _ in range(10_000)]
    share = picks.count("4") / len(picks)
    sigma = (0.1 * 0.9 / len(picks)) ** 0.5
    assert abs(share - 0.1) < 4 * sigma


def test_a_preference_parses_as_sam_declares_it() -> None:
    pref, problems = deployments.parse_preference(
        {
            "type": "Canary10Percent5Minutes",
            "hooks": {"PreTraffic": "pre", "PostTraffic": "post"},
            "rollback": [{"metric": "error_rate", "threshold": 0.2, "min_invocations": 5}],
        },
        "functions.f.aliases.prod.deployment",
    )
    assert problems == []
    assert pref is not None
    assert (pref.pre_traffic, pref.post_traffic) == ("pre", "post")
    assert pref.rollback == (Condition("error_rate", 0.2, 1.0, 5),)
    _, problems = deployments.parse_preference(
        {"type": "Sometimes", "rollback": [{"metric": "latency", "threshold": 1}]},
        "functions.f.aliases.prod.deployment",
    )
    assert [p.path for p in problems] == ["functions.f.aliases.prod.deployment.type"]


def test_config_declares_a_preference_per_alias_or_sams_way_per_function() -> None:
    from simulator.core import config_parse
    from simulator.errors import ConfigError

    fn = {"handler": "h.handler", "aliases": {"prod": 1}}
    config = config_parse.parse(
        {
            "functions": {
                "check": {"handler": "h.handler"},
                "f": {
                    **fn,
                    "deployment_preference": {
                        "alias": "prod",
                        "type": "Linear10PercentEvery2Minutes",
                        "pre_traffic": "check",
                    },
                },
                "g": {
                    "handler": "h.handler",
                    "aliases": {"live": {"version": 2, "deployment": {"type": "AllAtOnce"}}},
                },
            }
        }
    )
    pref = config.functions["f"].aliases["prod"].deployment
    assert pref == deployments.Preference(DeploymentType("linear", 10, 2), "check")
    assert config.functions["g"].aliases["live"].deployment == deployments.Preference(
        DeploymentType("all_at_once")
    )
    with pytest.raises(ConfigError) as bad:
        config_parse.parse(
            {
                "functions": {
                    "f": {**fn, "deployment_preference": {"alias": "beta", "type": "AllAtOnce"}},
                    "g": {**fn, "deployment_preference": {"alias": "prod", "type": "AllAtOnce",
                                                          "post_traffic": "nope"}},
                }
            }
        )  # fmt: skip
    assert [str(p) for p in bad.value.problems] == [
        "functions.f.deployment_preference.alias: must name an alias of the function, got 'beta'",
        "functions.g.aliases.prod.deployment.post_traffic: Function not found: "
        "arn:aws:lambda:us-east-1:123456789012:function:nope",
    ]
