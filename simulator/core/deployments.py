"""CodeDeploy's Lambda deployments as values: deployment types and their traffic schedules,
the deployment's lifecycle (BeforeAllowTraffic hook, traffic steps, AfterAllowTraffic hook),
and automatic rollback conditions evaluated on the new version's invocation outcomes.

Pure: the caller passes the time (`now_s`, seconds on its clock) and the outcomes it saw; a
deployment's minutes are compressed by `time_scale` (0.01: a minute lasts 0.6 s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from simulator.errors import Problem

Kind = Literal["canary", "linear", "all_at_once"]
Phase = Literal["BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End"]
Status = Literal["InProgress", "Succeeded", "RolledBack"]
HOOK_PHASES: tuple[Phase, Phase] = ("BeforeAllowTraffic", "AfterAllowTraffic")
CODEDEPLOY_PREFIX = "CodeDeployDefault.Lambda"
_CANARY = re.compile(r"Canary(\d+)Percent(\d+)Minutes?")
_LINEAR = re.compile(r"Linear(\d+)PercentEvery(\d+)Minutes?")
# CodeDeploy's limit on how long it waits for a Lambda hook to report its status.
HOOK_TIMEOUT_MIN = 60.0


@dataclass(frozen=True)
class DeploymentType:
    """One of CodeDeploy's Lambda deployment configurations (SAM's names), or a custom one."""

    kind: Kind
    percent: int = 100  # canary: the first increment; linear: each increment
    interval_min: int = 0  # canary: the wait before the rest; linear: between increments

    @property
    def name(self) -> str:
        if self.kind == "canary":
            return f"Canary{self.percent}Percent{self.interval_min}Minutes"
        if self.kind == "linear":
            unit = "Minute" if self.interval_min == 1 else "Minutes"
            return f"Linear{self.percent}PercentEvery{self.interval_min}{unit}"
        return "AllAtOnce"

    @classmethod
    def parse(cls, text: str) -> DeploymentType:
        """`Canary10Percent5Minutes`, `CodeDeployDefault.LambdaLinear10PercentEvery1Minute`,
        `AllAtOnce`, or a custom `Canary25Percent2Minutes` / `Linear20PercentEvery3Minutes`.
        Raises ValueError with what is accepted."""
        name = text.strip().removeprefix(CODEDEPLOY_PREFIX)
        if name == "AllAtOnce":
            return cls("all_at_once")
        for kind, pattern in (("canary", _CANARY), ("linear", _LINEAR)):
            found = pattern.fullmatch(name)
            if found:
                percent, minutes = int(found[1]), int(found[2])
                top = 99 if kind == "canary" else 100
                if not 1 <= percent <= top or minutes < 1:
                    raise ValueError(
                        f"{text!r}: the percentage must be 1-{top} and the interval at "
                        f"least 1 minute"
                    )
                return cls(kind, percent, minutes)  # type: ignore[arg-type]
        raise ValueError(
            f"unknown deployment type {text!r}: use one of {', '.join(PREDEFINED)}, or a "
            f"custom CanaryNPercentMMinutes / LinearNPercentEveryMMinutes"
        )

    def steps(self) -> tuple[Step, ...]:
        """When (minutes after traffic starts moving) the new version gets which share.
        Canary: the percentage at once, everything after the interval. Linear: one more
        increment at the start of each interval, until all traffic is shifted."""
        if self.kind == "canary":
            return (Step(0, self.percent / 100), Step(self.interval_min, 1.0))
        if self.kind == "linear":
            count = -(-100 // self.percent)  # increments, the last one capped at 100%
            return tuple(
                Step(i * self.interval_min, min(100, (i + 1) * self.percent) / 100)
                for i in range(count)
            )
        return (Step(0, 1.0),)


@dataclass(frozen=True)
class Step:
    at_min: float
    weight: float  # the new version's share, 0-1


PREDEFINED = {
    t.name: t
    for t in (
        DeploymentType("canary", 10, 5),
        DeploymentType("canary", 10, 10),
        DeploymentType("canary", 10, 15),
        DeploymentType("canary", 10, 30),
        DeploymentType("linear", 10, 1),
        DeploymentType("linear", 10, 2),
        DeploymentType("linear", 10, 3),
        DeploymentType("linear", 10, 10),
        DeploymentType("all_at_once"),
    )
}


def weight_at(kind: DeploymentType, elapsed_min: float) -> float:
    """The new version's share `elapsed_min` minutes after traffic started moving."""
    weight = 0.0
    for step in kind.steps():
        if elapsed_min >= step.at_min:
            weight = step.weight
    return weight


def next_step_min(kind: DeploymentType, elapsed_min: float) -> float | None:
    """When the next traffic step is due (minutes after traffic started), None after the last."""
    later = [s.at_min for s in kind.steps() if s.at_min > elapsed_min]
    return min(later) if later else None


# -- rollback conditions (the local stand-in for CloudWatch alarms) -----------------------------
Metric = Literal["error_rate", "errors", "timeouts", "throttles"]
METRICS: tuple[Metric, ...] = ("error_rate", "errors", "timeouts", "throttles")
TIMEOUT_ERROR = "Sandbox.Timedout"
MIN_INVOCATIONS = 10  # an error rate is judged over at least this many invocations


@dataclass(frozen=True)
class Condition:
    """Trips when the new version's `metric` over the last `window_min` reaches `threshold`
    (error_rate: a fraction, and only once `min_invocations` were seen in the window, so
    one early failure is not a 100% error rate)."""

    metric: Metric
    threshold: float
    window_min: float = 1.0
    min_invocations: int = MIN_INVOCATIONS

    def describe(self) -> str:
        limit = f"{self.threshold:.0%}" if self.metric == "error_rate" else f"{self.threshold:g}"
        return f"{self.metric} >= {limit} over {self.window_min:g} min"


@dataclass(frozen=True)
class Outcome:
    """One invocation of the new version, as a rollback condition sees it."""

    at_s: float
    ok: bool
    error_type: str | None = None


@dataclass(frozen=True)
class Trip:
    condition: Condition
    invocations: int
    errors: int
    timeouts: int
    throttles: int = 0

    def describe(self) -> str:
        if self.condition.metric == "throttles":
            return f"{self.condition.describe()} tripped: {self.throttles} throttles"
        rate = self.errors / self.invocations if self.invocations else 0.0
        return (
            f"{self.condition.describe()} tripped: {self.errors} errors "
            f"({self.timeouts} timeouts) in {self.invocations} invocations ({rate:.0%})"
        )


def tripped(
    conditions: Iterable[Condition],
    outcomes: Sequence[Outcome],
    now_s: float,
    time_scale: float,
    throttles: Sequence[float] = (),
) -> Trip | None:
    """The first condition the outcomes (and the function's throttles, at these times) trip,
    with the figures; None while all hold."""
    for condition in conditions:
        since = now_s - condition.window_min * 60 * time_scale
        seen = [o for o in outcomes if o.at_s >= since]
        errors = sum(1 for o in seen if not o.ok)
        timeouts = sum(1 for o in seen if o.error_type == TIMEOUT_ERROR)
        throttled = sum(1 for at_s in throttles if at_s >= since)
        trip = Trip(condition, len(seen), errors, timeouts, throttled)
        if _trips(condition, trip):
            return trip
    return None


def _trips(condition: Condition, trip: Trip) -> bool:
    if condition.metric == "errors":
        return trip.errors >= condition.threshold
    if condition.metric == "timeouts":
        return trip.timeouts >= condition.threshold
    if condition.metric == "throttles":
        return trip.throttles >= condition.threshold
    if trip.invocations < max(condition.min_invocations, 1):
        return False
    return trip.errors / trip.invocations >= condition.threshold


# -- the deployment preference declared per alias (SAM's DeploymentPreference) -----------------
@dataclass(frozen=True)
class Preference:
    type: DeploymentType
    pre_traffic: str | None = None  # a function of the workspace (name or ARN)
    post_traffic: str | None = None
    rollback: tuple[Condition, ...] = ()


_PREFERENCE_KEYS = ("type", "hooks", "pre_traffic", "post_traffic", "rollback", "alarms")
_CONDITION_KEYS = ("metric", "threshold", "window_min", "min_invocations")


def parse_preference(raw: Any, path: str) -> tuple[Preference | None, list[Problem]]:
    """An alias's `deployment:` mapping: {type, pre_traffic, post_traffic, rollback: [...]}
    (SAM's `Hooks: {PreTraffic, PostTraffic}` spelling accepted too)."""
    if not isinstance(raw, Mapping):
        return None, [Problem(path, "must be a mapping with at least `type`")]
    problems = [
        Problem(f"{path}.{k}", f"unknown key (known: {', '.join(_PREFERENCE_KEYS)})")
        for k in raw
        if k not in _PREFERENCE_KEYS
    ]
    try:
        kind = DeploymentType.parse(str(raw.get("type", "")))
    except ValueError as exc:
        return None, [*problems, Problem(f"{path}.type", str(exc))]
    found = raw.get("hooks")
    hooks: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    pre = raw.get("pre_traffic", hooks.get("PreTraffic"))
    post = raw.get("post_traffic", hooks.get("PostTraffic"))
    for key, value in (("pre_traffic", pre), ("post_traffic", post)):
        if value is not None and not isinstance(value, str):
            problems.append(Problem(f"{path}.{key}", "must be a function name or ARN"))
    conditions, more = parse_conditions(raw.get("rollback", raw.get("alarms")), f"{path}.rollback")
    problems += more
    return Preference(kind, _text(pre), _text(post), conditions), problems


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_conditions(raw: Any, path: str) -> tuple[tuple[Condition, ...], list[Problem]]:
    """A list of {metric, threshold, window_min, min_invocations}."""
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), [Problem(path, "must be a list of conditions")]
    found: list[Condition] = []
    problems: list[Problem] = []
    for i, item in enumerate(raw):
        condition, problem = _condition(item, f"{path}[{i}]")
        if condition is not None:
            found.append(condition)
        if problem is not None:
            problems.append(problem)
    return tuple(found), problems


def _condition(raw: Any, path: str) -> tuple[Condition | None, Problem | None]:
    if not isinstance(raw, Mapping) or raw.get("metric") not in METRICS:
        return None, Problem(path, f"must be a mapping with metric: one of {', '.join(METRICS)}")
    unknown = [k for k in raw if k not in _CONDITION_KEYS]
    if unknown:
        return None, Problem(f"{path}.{unknown[0]}", f"unknown key (known: {_CONDITION_KEYS})")
    try:
        condition = Condition(
            raw["metric"],
            float(raw["threshold"]),
            float(raw.get("window_min", 1.0)),
            int(raw.get("min_invocations", MIN_INVOCATIONS)),
        )
    except (KeyError, TypeError, ValueError):
        return None, Problem(path, "threshold must be a number; window_min a number of minutes")
    if condition.metric == "error_rate" and not 0 < condition.threshold <= 1:
        return None, Problem(f"{path}.threshold", "an error_rate is a fraction in (0, 1]")
    if condition.window_min <= 0:
        return None, Problem(f"{path}.window_min", "must be more than 0")
    return condition, None


# -- one deployment's lifecycle ----------------------------------------------------------------
@dataclass(frozen=True)
class Deployment:
    """A traffic shift of one alias from `old` to `new`. Times are on the caller's clock."""

    id: str
    function: str
    alias: str
    old: str  # the version the alias pointed to (its routing is dropped, as CodeDeploy does)
    new: str
    type: DeploymentType
    time_scale: float = 1.0
    pre_traffic: str | None = None
    post_traffic: str | None = None
    rollback: tuple[Condition, ...] = ()
    phase: Phase = "BeforeAllowTraffic"
    status: Status = "InProgress"
    traffic_start_s: float | None = None  # when traffic started moving
    reason: str = ""
    old_weights: Mapping[str, float] = field(default_factory=dict)
    origin: str = "shift"  # what asked for it: shift | publish --alias | lambda api

    def minutes(self, now_s: float) -> float:
        """Deployment minutes since traffic started moving (0 before)."""
        if self.traffic_start_s is None:
            return 0.0
        return (now_s - self.traffic_start_s) / (60 * self.time_scale)

    def weight(self, now_s: float) -> float:
        """The new version's share the schedule asks for now."""
        if self.phase == "BeforeAllowTraffic":
            return 0.0
        if self.phase == "AfterAllowTraffic" or self.status == "Succeeded":
            return 1.0
        if self.status == "RolledBack":
            return 0.0
        return weight_at(self.type, self.minutes(now_s))

    def hook(self) -> str | None:
        """The hook function the current phase waits for, if any."""
        if self.phase == "BeforeAllowTraffic":
            return self.pre_traffic
        if self.phase == "AfterAllowTraffic":
            return self.post_traffic
        return None


def advance(d: Deployment, now_s: float) -> Deployment:
    """Move past phases that have nothing left to wait for: a phase without a hook, traffic
    whose last step is due. Hooks are passed by `hook_done`."""
    while d.status == "InProgress":
        if d.phase in HOOK_PHASES and d.hook() is not None:
            return d
        if d.phase == "BeforeAllowTraffic":
            d = replace(d, phase="AllowTraffic", traffic_start_s=now_s)
        elif d.phase == "AllowTraffic":
            if d.weight(now_s) < 1.0:
                return d
            d = replace(d, phase="AfterAllowTraffic")
        else:
            d = replace(d, phase="End", status="Succeeded")
    return d


def hook_done(d: Deployment, succeeded: bool, reason: str, now_s: float) -> Deployment:
    """The current phase's hook reported (or failed): on to the next phase, or rolled back."""
    if not succeeded:
        return roll_back(d, f"{d.phase} hook {d.hook()} failed: {reason}")
    following: Phase = "AllowTraffic" if d.phase == "BeforeAllowTraffic" else "End"
    if following == "End":
        return replace(d, phase="End", status="Succeeded")
    return advance(replace(d, phase=following, traffic_start_s=now_s), now_s)


def roll_back(d: Deployment, reason: str) -> Deployment:
    return replace(d, phase="End", status="RolledBack", reason=reason)


def alias_target(d: Deployment, now_s: float) -> tuple[str, dict[str, float]]:
    """What the alias points to at this point of the deployment: (version, weights)."""
    if d.status == "RolledBack":
        return d.old, dict(d.old_weights)
    weight = d.weight(now_s)
    if weight >= 1.0:
        return d.new, {}
    if weight <= 0.0:
        return d.old, dict(d.old_weights)
    return d.old, {d.new: round(weight, 6)}
