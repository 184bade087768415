"""Recursive-loop detection: the `Lineage` field of the X-Ray trace header.

Lambda tracks a chain of invocations (an event, the writes its handler makes, the events
those fire, ...) in the trace header it hands each invocation: `Lineage=<hash>:<count>`, one
entry per function the chain has invoked, joined by `|`. The AWS SDKs copy `_X_AMZN_TRACE_ID`
into the `X-Amzn-Trace-Id` header of every request a handler makes (botocore's recursion
detection handler), so the S3 API reads the chain from the write, and the invocation that
write fires counts one more. Lambda stops a function's chain after about 16 invocations.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from simulator.core.arn import FunctionArn
    from simulator.core.config import Config

LIMIT = 16  # invocations of one function in one chain; the next one is stopped
_ENTRY = re.compile(r"^([0-9a-f]{8}):(\d{1,9})$")
MAX_ENTRIES = 32  # a hostile header cannot grow the journal row without bound


@dataclass(frozen=True)
class Step:
    """The chain as the next invocation of one function carries it."""

    lineage: str  # the header value for that invocation: `hash:count|...`
    count: int  # how many times the chain has invoked the function before this one
    stopped: bool = False  # a loop its recursive_loop setting stops (next_invocation)

    @property
    def loops(self) -> bool:
        return self.count >= LIMIT


def function_hash(function_arn: str) -> str:
    """8 hex digits naming a function in a lineage (AWS's own hash is not documented)."""
    return hashlib.sha256(function_arn.encode()).hexdigest()[:8]


def from_trace_header(header: str | None) -> str:
    """The Lineage field of an X-Amzn-Trace-Id header ("" when absent or malformed);
    botocore percent-encodes the `|` between entries."""
    for part in unquote(header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "Lineage":
            return value if parse(value) or not value else ""
    return ""


def parse(lineage: str) -> dict[str, int]:
    """hash -> count; a malformed entry makes the whole field void ({})."""
    counts: dict[str, int] = {}
    for entry in lineage.split("|")[:MAX_ENTRIES] if lineage else []:
        m = _ENTRY.match(entry)
        if m is None:
            return {}
        counts[m.group(1)] = int(m.group(2))
    return counts


def step(lineage: str, function_arn: str) -> Step:
    """The chain `lineage` extended by one invocation of `function_arn` (unqualified)."""
    counts = parse(lineage)
    h = function_hash(function_arn)
    count = counts[h] + 1 if h in counts else 0
    counts[h] = count
    return Step("|".join(f"{k}:{v}" for k, v in counts.items()), count)


def next_invocation(config: Config, arn: FunctionArn, chain: str) -> Step:
    """`chain` extended by one invocation of `arn`, stopped when it loops and the function
    keeps Lambda's default, `recursive_loop: Terminate`."""
    found = step(chain, str(arn.unqualified))
    fn = config.functions.get(arn.function)
    if found.loops and fn is not None and fn.recursive_loop == "Terminate":
        return Step(found.lineage, found.count, stopped=True)
    return found
