"""Resolve an invoked ARN to the version that runs now; weighted aliases pick per invocation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from simulator.core.arn import LATEST, FunctionArn
from simulator.core.config import Config
from simulator.errors import ResourceNotFound


@dataclass(frozen=True)
class Resolution:
    invoked: FunctionArn  # what the caller named (context.invoked_function_arn)
    function: str
    version: str  # the executed version: "$LATEST" or "N"
    alias: str | None = None


def resolve(
    config: Config,
    published: Mapping[str, frozenset[int]],
    arn: FunctionArn,
    random: Callable[[], float],
) -> Resolution:
    """Map `arn` to a version using the config in force; `random` returns floats in [0, 1)."""
    function = config.functions.get(arn.function)
    if function is None or arn.region != config.region or arn.account != config.account:
        raise ResourceNotFound(f"Function not found: {arn}")
    kind = arn.kind
    if kind in ("unqualified", "latest"):
        return Resolution(arn, arn.function, LATEST)
    assert arn.qualifier is not None
    if kind == "version":
        if int(arn.qualifier) not in published.get(arn.function, frozenset()):
            raise ResourceNotFound(f"Function not found: {arn}")
        return Resolution(arn, arn.function, arn.qualifier)
    alias = function.aliases.get(arn.qualifier)
    if alias is None:
        raise ResourceNotFound(f"Function not found: {arn}")
    return Resolution(arn, arn.function, choose(alias.version, alias.weights, random), alias.name)


def choose(primary: str, weights: Mapping[str, float], random: Callable[[], float]) -> str:
    """AWS's "simple probabilistic model": the extra version with its weight, else the primary."""
    for version, weight in weights.items():
        if random() < weight:
            return version
    return primary
