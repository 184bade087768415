"""Which notification configurations of one bucket overlap (S3's PutBucketNotification rule).

Pure. Two configurations overlap iff they share an event type (wildcards included), one prefix
is a prefix of the other, and one suffix is a suffix of the other. Testing every pair is
quadratic (4,000 rules took seconds), so this finds the pairs by sorting instead:

- per event type that occurs in the bucket, the rules that cover it;
- among those, sorted by prefix, the rules whose prefixes form a chain are on a stack (every
  string that has `p` as a prefix sorts right after `p`, so a scan sees them contiguously);
- the suffixes of the rules on the stack sit in two indexes, so a rule finds the ones whose
  suffix is related to its own by dictionary look-ups instead of comparisons with each.

The work is proportional to the rules plus the overlapping pairs found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from simulator.core.s3_events import events_intersect


class Rule(Protocol):
    @property
    def events(self) -> tuple[str, ...]: ...

    @property
    def prefix(self) -> str: ...

    @property
    def suffix(self) -> str: ...


def overlapping_pairs(rules: Sequence[Rule], limit: int | None = None) -> list[tuple[int, int]]:
    """Index pairs (i < j) of the rules that overlap, in the order a pairwise loop finds them.

    With `limit`, the search stops once that many pairs are found (those returned are real
    overlaps, though not necessarily the first a pairwise loop would meet): 1,000 identical
    rules overlap in 499,500 pairs, and nobody reads past the first few."""
    prefixes = [rule.prefix for rule in rules]
    suffixes = [rule.suffix for rule in rules]
    order = sorted(range(len(rules)), key=prefixes.__getitem__)
    kinds = {rule.events for rule in rules}  # few distinct event lists, however many rules
    found: set[tuple[int, int]] = set()
    for event in {e for events in kinds for e in events}:
        covering = {events for events in kinds if any(_covers(e, event) for e in events)}
        group = [i for i in order if rules[i].events in covering]
        if len(group) > 1:
            _scan(prefixes, suffixes, group, found, limit)
        if limit is not None and len(found) >= limit:
            return sorted(found)[:limit]
    return sorted(found)


def _covers(spec: str, event: str) -> bool:
    """Whether configured type `spec` matches every event of type `event` (a wildcard covers
    its family). Two types intersect iff some type occurring in the bucket is covered by both,
    so grouping by covered type finds every intersecting pair and no other."""
    if spec == event:
        return True
    return spec.endswith(":*") and event.startswith(spec[:-1]) and events_intersect(spec, event)


@dataclass
class _Suffixes:
    """The suffixes of the rules whose prefixes are on the stack, indexed both ways."""

    exact: dict[str, set[int]] = field(default_factory=dict)  # suffix -> rules
    ending: dict[str, set[int]] = field(default_factory=dict)  # s -> rules whose suffix ends with s
    size: int = 0

    def add(self, i: int, suffix: str) -> None:
        self.exact.setdefault(suffix, set()).add(i)
        for k in range(len(suffix) + 1):
            self.ending.setdefault(suffix[k:], set()).add(i)
        self.size += 1

    def remove(self, i: int, suffix: str) -> None:
        self.exact[suffix].discard(i)
        for k in range(len(suffix) + 1):
            self.ending[suffix[k:]].discard(i)
        self.size -= 1

    def related(self, suffix: str) -> set[int]:
        """Rules whose suffix is a suffix of `suffix`, or has `suffix` as a suffix."""
        hits = set(self.ending.get(suffix, ()))
        for k in range(1, len(suffix) + 1):
            hits.update(self.exact.get(suffix[k:], ()))
        return hits


def _runs(prefixes: list[str], group: list[int]) -> list[tuple[str, list[int]]]:
    """The group (sorted by prefix) cut into runs of rules with equal prefixes."""
    runs: list[tuple[str, list[int]]] = []
    for i in group:
        if runs and runs[-1][0] == prefixes[i]:
            runs[-1][1].append(i)
        else:
            runs.append((prefixes[i], [i]))
    return runs


def _scan(
    prefixes: list[str],
    suffixes: list[str],
    group: list[int],
    found: set[tuple[int, int]],
    limit: int | None = None,
) -> None:
    """Add the pairs of `group` (rule indexes sorted by prefix) whose prefixes and suffixes
    are related."""
    index = _Suffixes()
    stack: list[tuple[str, list[int]]] = []  # prefix chain: each a prefix of the next
    runs = _runs(prefixes, group)
    for n, (prefix, members) in enumerate(runs):
        while stack and not prefix.startswith(stack[-1][0]):
            for i in stack.pop()[1]:
                index.remove(i, suffixes[i])
        # A run needs indexing only if a later run extends its prefix, or it has several rules.
        extended = n + 1 < len(runs) and runs[n + 1][0].startswith(prefix)
        for k, j in enumerate(members):
            if index.size:
                found.update((min(i, j), max(i, j)) for i in index.related(suffixes[j]))
                if limit is not None and len(found) >= limit:
                    return
            if extended or k + 1 < len(members):
                index.add(j, suffixes[j])
        if extended:
            stack.append((prefix, members))
        else:  # the run's own rules were indexed only to meet each other
            for i in members[:-1]:
                index.remove(i, suffixes[i])
