"""The pure retry decision for asynchronous invocations (reference §5.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Lambda waits about one minute before the first retry and two before the second.
RETRY_DELAYS_S = (60.0, 120.0)
# A throttled asynchronous event goes back on Lambda's queue: 1 s, doubling, at most 5 minutes.
THROTTLE_BACKOFF_S = (1.0, 300.0)


@dataclass(frozen=True)
class RetryAt:
    due_s: float  # epoch seconds
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    # RecursiveInvocationDetected: stopped by loop detection (AWS's record condition for it
    # is undocumented; this name is the simulator's choice, see the README).
    condition: Literal["RetriesExhausted", "EventAgeExceeded", "RecursiveInvocationDetected"]


Decision = RetryAt | GiveUp


def after_failure(
    attempts_made: int,
    max_retries: int,
    accepted_s: float,
    now_s: float,
    max_event_age_s: float,
    time_scale: float = 1.0,
) -> Decision:
    """What to do after attempt number `attempts_made` (1-based) failed.

    `time_scale` compresses every delay and the event age alike (0.01: a minute becomes 0.6 s).
    If the next attempt would start after the event's maximum age, Lambda gives up at once.
    """
    if attempts_made > max_retries:
        return GiveUp("RetriesExhausted")
    delay_s = RETRY_DELAYS_S[min(attempts_made, len(RETRY_DELAYS_S)) - 1] * time_scale
    due_s = now_s + delay_s
    if due_s - accepted_s > max_event_age_s * time_scale:
        return GiveUp("EventAgeExceeded")
    return RetryAt(due_s, delay_s)


def throttle_delay_s(throttles_so_far: int, time_scale: float = 1.0) -> float:
    """How long an event throttled `throttles_so_far` times before waits now."""
    low, high = THROTTLE_BACKOFF_S
    return min(low * 2.0**throttles_so_far, high) * time_scale
