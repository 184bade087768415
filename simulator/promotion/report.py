"""The picture of a shift: the traffic split the schedule set and each version's invocations
and error rate over the shift's time line, drawn with plotext (in the terminal, and as an HTML
file). The figures come from the journal: the alias changes of the deployment and the
outcomes the shifter sampled.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import SimulatorError
from simulator.promotion import records
from simulator.store import alias_history
from simulator.store.journal import Journal
from simulator.store.workspace import Workspace

BUCKETS = 20  # points on the time line
_MARKERS = ("*", "o", "x", "+")  # without colours, the marker tells the lines apart
_PLOT_LOCK = threading.Lock()  # plotext draws on one module-level figure


@dataclass(frozen=True)
class Bucket:
    start_s: float  # seconds since the deployment was created
    weight: float  # the new version's share the alias had (at the bucket's end)
    calls: dict[str, int]  # version -> invocations
    errors: dict[str, int]


@dataclass(frozen=True)
class Summary:
    row: records.Row
    buckets: list[Bucket]
    totals: dict[str, tuple[int, int]]  # version -> (invocations, errors)

    def lines(self) -> list[str]:
        d = self.row.deployment
        head = (
            f"deployment {d.id} {d.function}:{d.alias} {d.old} -> {d.new} {d.type.name}: "
            f"{self.row.state}" + (f" ({d.reason})" if d.reason else "")
        )
        lines = [head]
        for version, (calls, errors) in sorted(self.totals.items()):
            rate = errors / calls if calls else 0.0
            lines.append(f"  version {version}: {calls} invocations, {errors} errors ({rate:.0%})")
        return lines


def summarize(journal: Journal, row: records.Row, end_s: float) -> Summary:
    d = row.deployment
    start = row.created_s
    span = max(end_s - start, 1e-3)
    width = span / BUCKETS
    steps = [
        (c.at_s, _weight_of(c.new, d.new))
        for c in alias_history.changes(journal, d.function, d.alias)
        if c.detail.startswith(f"deployment {d.id}")
    ]
    samples = records.samples(journal, d.id)
    buckets = []
    for i in range(BUCKETS):
        lo, hi = start + i * width, start + (i + 1) * width
        seen = [s for s in samples if lo <= s[0] < hi or (i == BUCKETS - 1 and s[0] == hi)]
        weight = next((w for at, w in reversed(steps) if at <= hi), 0.0)
        calls: dict[str, int] = {}
        errors: dict[str, int] = {}
        for _, version, ok, _ in seen:
            calls[version] = calls.get(version, 0) + 1
            errors[version] = errors.get(version, 0) + (0 if ok else 1)
        buckets.append(Bucket(lo - start, weight, calls, errors))
    totals = {
        v: (sum(1 for s in samples if s[1] == v), sum(1 for s in samples if s[1] == v and not s[2]))
        for v in {s[1] for s in samples}
    }
    return Summary(row, buckets, totals)


def _weight_of(routing: alias_history.Routing, new: str) -> float:
    version, weights = routing
    if version == new:
        return 1.0
    return float(weights.get(new, 0.0))


def chart(summary: Summary, html: Path | None = None) -> str:
    """The chart as terminal text (no colours); also written to `html` when given."""
    d = summary.row.deployment
    xs = [round(b.start_s, 2) for b in summary.buckets]
    split = [
        (f"% of traffic to {d.new} (alias)", [100 * b.weight for b in summary.buckets]),
        (f"% of invocations seen on {d.new}", [_share(b, d.new) for b in summary.buckets]),
    ]
    calls: list[tuple[str, list[float]]] = []
    for version in (d.old, d.new):
        counts = [float(b.calls.get(version, 0)) for b in summary.buckets]
        calls.append((f"{version}: invocations", counts))
        calls.append((f"{version}: error %", [_rate(b, version) for b in summary.buckets]))
    title = f"{d.function}:{d.alias} {d.old} -> {d.new} ({d.type.name})"
    with _PLOT_LOCK:
        first = _figure(f"{title}: traffic split", xs, split, html, append=False)
        second = _figure("invocations and error rate per version", xs, calls, html, append=True)
    return f"{first}\n{second}"


def _figure(
    title: str,
    xs: list[float],
    series: list[tuple[str, list[float]]],
    html: Path | None,
    append: bool,
) -> str:
    import plotext as plt  # type: ignore[import-untyped]

    plt.clear_figure()
    plt.theme("clear")  # no colours: the text goes to logs, files and pipes too
    plt.plotsize(100, 16)
    plt.title(title)
    for (label, ys), marker in zip(series, _MARKERS, strict=False):
        plt.plot(xs, ys, label=label, marker=marker)
    plt.xlabel("seconds since the shift was requested")
    text: str = plt.build()
    if html is not None:
        with contextlib.redirect_stdout(io.StringIO()):  # it announces the file on stdout
            plt.save_fig(str(html), append=append)
    plt.clear_figure()
    return str(plt.uncolorize(text))


def _share(b: Bucket, version: str) -> float:
    total = sum(b.calls.values())
    return 100 * b.calls.get(version, 0) / total if total else 0.0


def _rate(b: Bucket, version: str) -> float:
    calls = b.calls.get(version, 0)
    return 100 * b.errors.get(version, 0) / calls if calls else 0.0


def show(ws_root: Path, function: str | None = None, alias: str | None = None,
         html: Path | None = None) -> str:  # fmt: skip
    """`s3sim shift report`: the last deployment (of the function / alias), charted."""
    ws = Workspace(ws_root)
    if not ws.journal.exists():
        raise SimulatorError(f"no journal yet at {ws.journal}; nothing was shifted")
    journal = Journal(ws.journal)
    try:
        records.ensure_schema(journal)
        alias_history.ensure_schema(journal)
        row = records.latest(journal, function, alias)
        if row is None:
            raise SimulatorError("no deployment recorded yet (start one with `s3sim shift`)")
        end = row.updated_s if row.state not in records.OPEN_STATES else _now()
        summary = summarize(journal, row, end)
    finally:
        journal.close()
    text = chart(summary, html)
    tail = [f"chart written to {html}"] if html is not None else []
    return "\n".join([text, *summary.lines(), *tail])


def write(journal: Journal, row: records.Row, folder: Path) -> tuple[Path, Sequence[str]]:
    """At the end of a shift: the chart as HTML in the state folder, and the summary lines."""
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(journal, row, row.updated_s)
    path = folder / f"{row.deployment.id}.html"
    chart(summary, path)
    return path, summary.lines()


def _now() -> float:
    import time

    return time.time()
