"""What each CLI command does, as functions of the workspace returning text to print."""

from __future__ import annotations

import hashlib
import io
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from simulator import logs as logstream
from simulator.core import routing, s3_events
from simulator.core.arn import LATEST, FunctionArn
from simulator.core.config import Config, check_published, is_valid_alias_name
from simulator.errors import (
    ArnError,
    ConfigError,
    NotFound,
    Problem,
    ResourceNotFound,
    SimulatorError,
    UsageError,
)
from simulator.s3.staging import build_event
from simulator.store import config_source
from simulator.store.versions import VersionStore
from simulator.store.workspace import Workspace

if TYPE_CHECKING:
    import sqlite3

    from simulator.store.journal import Journal


def _load(ws_root: Path, check_versions: bool = True) -> tuple[Workspace, VersionStore, Config]:
    ws = Workspace(ws_root)
    store = VersionStore(ws.versions)
    return ws, store, config_source.read(ws.config, store, check_versions=check_versions)


def _load_reporting(ws_root: Path) -> tuple[Workspace, VersionStore, Config]:
    """For commands that read or repair the config: a reference to a missing version is
    reported on stderr, not fatal (refusing would block the very command that fixes it)."""
    ws, store, config = _load(ws_root, check_versions=False)
    try:
        check_published(config, store.published(), store.last_numbers())
    except ConfigError as exc:
        _warn(exc.problems)
    return ws, store, config


def _warn(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(f"s3sim: warning: config.yaml: {problem}", file=sys.stderr)


@contextmanager
def _sealed(
    ws_root: Path, check_versions: bool = True
) -> Iterator[tuple[Workspace, VersionStore, Config]]:
    """`_load` with the store checking versions against their seals in the journal. The
    journal is created if absent: `publish` must seal without a running simulator, and a
    fresh clone's versions are sealed on first use."""
    from simulator.store.journal import Journal

    ws = Workspace(ws_root)
    journal = Journal(ws.journal)
    try:
        store = VersionStore(ws.versions, journal)
        yield ws, store, config_source.read(ws.config, store, check_versions=check_versions)
    finally:
        journal.close()


def init(root: Path) -> str:
    from simulator.store import scaffold

    written = scaffold.create(root)
    listing = "\n".join(f"  {path.relative_to(root)}" for path in written)
    return (
        f"created a workspace in {root}:\n{listing}\n  buckets/inbox/incoming/\n"
        f"next: s3sim -w {root} run, then in another terminal:\n"
        f"  echo hi > {root / 'buckets/inbox/incoming/hi.txt'}"
    )


def validate(ws_root: Path) -> str:
    with _sealed(ws_root) as (ws, store, config):
        sealed, problems = store.seal_unseen()
        if problems:
            raise problems[0]
        for function, numbers in sorted(store.published().items()):
            for number in sorted(numbers):
                store.verify(function, number)  # code and settings against their seal
    notes = sum(len(b.notifications) for b in config.buckets.values())
    text = (
        f"{ws.config}: OK ({len(config.functions)} functions, {len(config.buckets)} "
        f"buckets, {notes} notification configurations)"
    )
    if sealed:
        text += "\nsealed on first sight (trust on first use): " + ", ".join(
            f"{v.function}:{v.number}" for v in sealed
        )
    return text


def publish(ws_root: Path, function: str, description: str | None) -> str:
    # Aliases may name the version about to be published, so they are not checked here.
    with _sealed(ws_root, check_versions=False) as (ws, store, config):
        fn = config.functions.get(function)
        if fn is None:
            raise ResourceNotFound(f"Function not found: {config.function_arn(function)}")
        from simulator.lambdas.builds import snapshot_parts

        build, layers = snapshot_parts(ws.root, fn)
        version, created = store.publish(fn, ws.functions / function, description, build, layers)
    arn = config.function_arn(function, str(version.number))
    note = "published" if created else "unchanged since last publish; returning"
    print(f"{note} {arn} (CodeSha256 {version.code_sha256})", file=sys.stderr)
    return str(version.number)


def versions(ws_root: Path, function: str) -> str:
    _, store, config = _load_reporting(ws_root)
    if function not in config.functions:
        raise ResourceNotFound(f"Function not found: {config.function_arn(function)}")
    rows = [
        ("VERSION", "CODESHA256", "CREATED", "DESCRIPTION"),
        (LATEST, "-", "-", config.functions[function].description),
    ]
    for number in store.numbers(function):
        v = store.load(function, number, verify=False)
        rows.append((str(number), v.code_sha256, v.created, v.description))
    return _table(rows)


def alias_list(ws_root: Path, function: str) -> str:
    _, _, config = _load_reporting(ws_root)
    fn = config.functions.get(function)
    if fn is None:
        raise ResourceNotFound(f"Function not found: {config.function_arn(function)}")
    rows = [("ALIAS", "VERSION", "ROUTING", "ARN")]
    for alias in fn.aliases.values():
        routing_text = ", ".join(f"{v}={w:g}" for v, w in alias.weights.items()) or "-"
        rows.append(
            (
                alias.name,
                alias.version,
                routing_text,
                str(config.function_arn(function, alias.name)),
            )
        )
    return _table(rows)


def alias_set(ws_root: Path, function: str, alias: str, version: str, weights: list[str]) -> str:

    # Not checked against the published versions: this command is how a reference to a
    # missing version gets fixed. The edited result is checked (config_edit.set_alias).
    ws, store, config = _load(ws_root, check_versions=False)
    if function not in config.functions:
        raise ResourceNotFound(f"Function not found: {config.function_arn(function)}")
    if not is_valid_alias_name(alias):
        from simulator.core.config import alias_name_error
        from simulator.errors import ValidationFailed

        raise ValidationFailed(alias_name_error(alias))
    parsed = _parse_weights(weights)
    remaining = _recorded_alias_edit(ws, store, function, alias, version, parsed)
    if remaining:
        _warn(remaining)
        print(
            "s3sim: warning: the alias was set, but config.yaml still refers to missing "
            "versions (above); a running simulator keeps its last good configuration "
            "until they are fixed",
            file=sys.stderr,
        )
    return f"{config.function_arn(function, alias)} -> {version}" + "".join(
        f" + {v} at {w:g}" for v, w in parsed.items()
    )


def _recorded_alias_edit(
    ws: Workspace,
    store: VersionStore,
    function: str,
    alias: str,
    version: str,
    weights: dict[int, float],
) -> list[Problem]:
    """The one-line edit, recorded in the alias history with its cause (`alias set`)."""
    from simulator.store import alias_history
    from simulator.store.journal import Journal

    journal = Journal(ws.journal)
    try:
        alias_history.ensure_schema(journal)
        new = (version, {str(k): w for k, w in weights.items()})
        return alias_history.set_alias(
            journal, ws.config, ws.state / "config-edit.lock", store, function, alias, new,
            "alias set",
        )[1]  # fmt: skip
    finally:
        journal.close()


def _parse_weights(items: list[str]) -> dict[int, float]:
    from simulator.core.config_parse import weight_problem
    from simulator.errors import ValidationFailed

    parsed: dict[int, float] = {}
    for item in items:
        version, _, weight = item.partition("=")
        if version.strip() == LATEST:  # AWS's key pattern is [0-9]+: say why, in its words
            raise ValidationFailed(
                f"{weight_problem(version.strip(), _float_or_none(weight))} ($LATEST cannot "
                "carry weight: only a published version can; publish $LATEST and weight "
                "that version)"
            )
        try:
            parsed[int(version)] = float(weight)
        except ValueError:
            raise UsageError(f"--weight takes VERSION=WEIGHT, got {item!r}") from None
    return parsed


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def explain(ws_root: Path, bucket: str, key: str, event: str) -> str:
    _, store, config = _load(ws_root)
    spec = bucket if bucket in config.buckets else None
    if spec is None:
        return f"bucket {bucket!r} has no notification configuration in config.yaml"
    event_name = event.removeprefix("s3:")
    lines = [f"s3://{bucket}/{key} ({event_name}); encoded key: {s3_events.encode_key(key)}"]
    if s3_keys_ignored(config, key):
        lines.append(
            "  note: the key matches an ignore pattern (simulator.ignore); the watcher "
            "never fires for it"
        )
    published = store.published()
    for v in routing.explain(config.buckets[bucket], key, event_name):
        n = v.notification
        mark = "MATCH" if v.matched else "no match"
        lines.append(f"- {n.id}: {mark}")
        lines.append(f"    events {list(n.events)}: {'ok' if v.event_ok else 'no'}")
        lines.append(_filter_line(key, "prefix", n.prefix, v.prefix_ok))
        lines.append(_filter_line(key, "suffix", n.suffix, v.suffix_ok))
        lines.append(
            f"    target {n.function_arn} -> {_resolves_to(config, published, n.function_arn)}"
        )
    if not config.buckets[bucket].notifications:
        lines.append("  (no notification configurations)")
    return "\n".join(lines)


def _filter_line(key: str, kind: Literal["prefix", "suffix"], value: str, ok: bool) -> str:
    """`prefix 'images/': ok`, or `no`, with the near miss a person would not spot."""
    why = None if ok else routing.near_miss(key, value, kind)
    return f"    {kind} {value!r}: {'ok' if ok else 'no'}" + (f" ({why})" if why else "")


def s3_keys_ignored(config: Config, key: str) -> bool:
    from simulator.core.keys import is_ignored

    return is_ignored(key, config.settings.ignore)


def _resolves_to(config: Config, published: Mapping[str, frozenset[int]], arn: FunctionArn) -> str:
    fn = config.functions.get(arn.function)
    if fn is None:
        return "function not defined"
    if arn.kind == "alias":
        alias = fn.aliases[arn.qualifier or ""]
        extra = "".join(f" ({1 - w:g}), version {v} ({w:g})" for v, w in alias.weights.items())
        return f"version {alias.version}{extra}"
    return f"version {arn.qualifier or LATEST}"


def logs_filter(event: Mapping[str, Any], filters: Mapping[str, str | None]) -> bool:
    for name, wanted in filters.items():
        if wanted is None:
            continue
        field = name.replace("-", "_")
        if str(event.get(field, "")) != wanted:
            return False
    return True


@dataclass(frozen=True)
class LogView:
    """What `s3sim logs` shows: the last `lines` events (None: all), since a time, at a
    level or above, as JSON or rendered, and whether it follows the stream."""

    follow: bool = False
    lines: int | None = None
    since: str | None = None
    level: str | None = None
    as_json: bool = False
    verbose: bool = False


def show_logs(ws_root: Path, view: LogView, filters: Mapping[str, str | None], out: IO[str]) -> int:
    path = Workspace(ws_root).log_file
    if not path.exists():
        print(f"s3sim: no log yet at {path}; start the simulator with `s3sim run`", file=sys.stderr)
        return 1
    wanted = _log_predicate(view, filters)
    try:
        for event in logstream.tail_events(path, view.lines, wanted, view.follow):
            text = (
                json.dumps(event, ensure_ascii=False)
                if view.as_json
                else logstream.render(event, view.verbose)
            )
            out.write(text + "\n")
            if view.follow:  # a follower shows each line as it comes; a reader gets blocks
                out.flush()
    except KeyboardInterrupt:
        pass
    return 0


def _log_predicate(
    view: LogView, filters: Mapping[str, str | None]
) -> Callable[[Mapping[str, Any]], bool]:
    since = None
    if view.since is not None:
        try:
            since = logstream.parse_since(view.since, time.time())
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    levels = logstream.LEVELS
    lowest = levels.index(view.level) if view.level else 0

    def wanted(event: Mapping[str, Any]) -> bool:
        level = str(event.get("level", "info"))
        if level in levels and levels.index(level) < lowest:
            return False
        if since is not None and str(event.get("timestamp", "")) < since:
            return False
        return logs_filter(event, filters)

    return wanted


def dead_letters(ws_root: Path, function: str | None, as_json: bool, replayed: bool = False) -> str:
    """Dead letters not yet replayed; with `replayed`, also those whose replay was queued,
    with the request id of that replay."""
    from simulator.store.journal import DEAD_LETTER_STATES

    journal = _journal(Workspace(ws_root))
    dead = journal.query(DEAD_LETTER_STATES if replayed else "dead", limit=10000, function=function)
    if as_json:
        return json.dumps(
            [
                {
                    "id": d.id,
                    "request_id": d.request_id,
                    "function": d.function,
                    "target": d.target,
                    "bucket": d.bucket,
                    "key": d.key,
                    "condition": d.condition,
                    "attempts": d.attempts,
                    "error": d.last_error,
                    "state": d.state,
                    "replayed_as": d.replayed_as,
                }
                for d in dead
            ],
            indent=2,
            ensure_ascii=False,
        )
    head = ("ID", "REQUEST ID", "TARGET", "OBJECT", "CONDITION", "ATTEMPTS", "ERROR")
    rows = [head + (("REPLAYED AS",) if replayed else ())]
    rows += [
        (
            str(d.id),
            d.request_id,
            _short_target(d.target),
            f"s3://{d.bucket}/{d.key}" if d.bucket else "-",
            d.condition or "",
            str(d.attempts),
            (d.last_error or "")[:80],
        )
        + (((d.replayed_as or "-") if d.state == "replayed" else "-",) if replayed else ())
        for d in dead
    ]
    return _table(rows) if dead else "no dead letters"


def _short_target(target: str) -> str:
    arn = FunctionArn.parse(target)
    return f"{arn.function}:{arn.qualifier}" if arn.qualifier else arn.function


def replay(
    ws_root: Path,
    ids: list[int],
    everything: bool,
    function: str | None,
    bucket: str | None,
    prefix: str,
    again: bool = False,
) -> str:
    ws = Workspace(ws_root)
    journal = _journal(ws)
    if bucket is not None:
        if not (ws.buckets / bucket).is_dir():
            raise NotFound(f"no bucket folder {ws.buckets / bucket}")
        journal.add_request("refire", {"bucket": bucket, "prefix": prefix})
        return (
            f"queued: re-fire events for s3://{bucket}/{prefix}* (a running simulator picks "
            f"it up within a second; otherwise the next `s3sim run` does)"
        )
    # Choosing, marking as replayed and queueing are one transaction: of several replays of
    # one dead letter at once, exactly one queues it.
    with journal.transaction() as db:
        chosen = _replayable(db, ids, everything, function, again)
        new_ids = {dead_id: str(uuid.uuid4()) for dead_id in chosen}
        for dead_id, request_id in new_ids.items():
            journal.mark_replayed(db, dead_id, request_id)
        if chosen:
            journal.insert_request(
                db,
                "replay",
                {"ids": chosen, "request_ids": {str(k): v for k, v in new_ids.items()}},
            )
    if not chosen:
        return "nothing to replay (name ids, or --all)"
    pairs = ", ".join(f"{k} -> {v}" for k, v in new_ids.items())
    return (
        f"queued: replay of {len(chosen)} dead letter(s) with new request ids ({pairs}), "
        f"through the current alias mapping (picked up by a running simulator within a "
        f"second, otherwise by the next `s3sim run`)"
    )


def _replayable(
    db: sqlite3.Connection, ids: list[int], everything: bool, function: str | None, again: bool
) -> list[int]:
    """The dead letters to replay; refuses (nothing queued) ids that are not dead letters,
    or were replayed already unless `again`."""
    from simulator.store.journal import DEAD_LETTER_STATES, Journal

    if everything:
        return Journal.dead_letter_ids(db, DEAD_LETTER_STATES if again else ("dead",), function)
    if not ids:
        return []
    states = Journal.dead_letter_states(db, ids, function)
    missing = sorted(set(ids) - set(states))
    if missing:
        raise NotFound(
            f"not dead letters: {', '.join(map(str, missing))} (see `s3sim dead-letters`)"
        )
    done = [(i, states[i][1]) for i in sorted(set(ids)) if states[i][0] == "replayed"]
    if done and not again:
        raise SimulatorError(
            "\n".join(
                f"dead letter {i} was already replayed as request {rid}; "
                f"`s3sim replay --again {i}` replays it once more"
                for i, rid in done
            )
        )
    return sorted(set(ids))


def show_status(ws_root: Path, as_json: bool) -> str:
    from simulator.store import status

    ws = Workspace(ws_root)
    report = status.report(_journal(ws), ws.status_file, time.time())
    if as_json:
        return json.dumps(report, indent=2, ensure_ascii=False)
    head = (
        f"simulator: running (pid {report['pid']})"
        if report["running"]
        else "simulator: not running"
    )
    rows = [("FUNCTION", "PENDING", "IN FLIGHT", "RETRYING", "NEXT RETRY", "DEAD", "DONE")]
    for name, f in sorted(report["functions"].items()):
        nxt = "-" if f["next_attempt_in_s"] is None else f"in {f['next_attempt_in_s']} s"
        rows.append(
            (
                name,
                str(f["pending"]),
                str(f["in_flight"]),
                str(f["retrying"]),
                nxt,
                str(f["dead"]),
                str(f["done"]),
            )
        )
    warm = ", ".join(f"{k}: {v}" for k, v in sorted(report["warm_environments"].items()))
    from simulator.promotion import actions

    shifts = actions.status_lines(_journal(ws))
    return "\n".join([head, _table(rows), f"warm environments: {warm or 'none'}", *shifts])


def _journal(ws: Workspace) -> Journal:
    from simulator.store.journal import Journal

    if not ws.journal.exists():
        raise SimulatorError(
            f"no journal yet at {ws.journal}; start the simulator with `s3sim run`"
        )
    return Journal(ws.journal)


def invoke(
    ws_root: Path, arn_text: str, event_file: Path | None, bucket: str | None, key: str | None
) -> tuple[str, bool]:
    """One synchronous invocation, outside any running simulator (its own environments)."""
    from simulator.core import aliases
    from simulator.lambdas.builds import Builds
    from simulator.lambdas.invoker import Invoker
    from simulator.lambdas.pool import Pool
    from simulator.lambdas.runtimes import Runtimes

    with _sealed(ws_root) as (ws, store, config):
        arn = _arn(config, arn_text)
        # A function, alias or version that does not exist is Lambda's 404, not a payload.
        aliases.resolve(config, store.published(), arn, lambda: 1.0)
        event = _event(ws, config, event_file, bucket, key)
        logstream.configure(None, sys.stderr)
        pool = Pool(ws.state / "tmp", config.settings.log_limit_bytes)
        runtimes = Runtimes(ws.state / "runtimes")
        invoker = Invoker(
            ws.root,
            pool,
            store,
            store.published,
            random.Random(config.settings.seed),
            runtimes,
            Builds(ws.state / "builds"),
        )
        try:
            inv = invoker.invoke(config, arn, event, str(uuid.uuid4()))
        finally:
            pool.close()
    head = f"ExecutedVersion: {inv.version}\nStatusCode: 200"
    if not inv.result.ok:
        head += "\nFunctionError: Unhandled"
    return (
        f"{head}\nPayload: {json.dumps(inv.result.payload, indent=2, ensure_ascii=False)}",
        inv.result.ok,
    )


def env(ws_root: Path) -> str:
    """`export` lines for the running simulator's endpoints and the workspace's credentials:
    what every execution environment gets, for a user's own terminal and scripts."""
    import shlex

    from simulator.core import lambda_env

    ws = Workspace(ws_root)
    try:
        endpoints = json.loads((ws.state / "endpoints.json").read_text())
    except (OSError, ValueError):
        raise SimulatorError(
            f"no simulator is running on {ws.root}: start it with `s3sim run`"
        ) from None
    config = _load_reporting(ws_root)[2]
    values = {
        "AWS_ENDPOINT_URL_S3": str(endpoints["s3"]),
        "AWS_ENDPOINT_URL_LAMBDA": str(endpoints["lambda"]),
        # the local CodeDeploy endpoint (PutLifecycleEventHookExecutionStatus, for hooks)
        **(
            {"AWS_ENDPOINT_URL_CODEDEPLOY": str(endpoints["codedeploy"])}
            if "codedeploy" in endpoints
            else {}
        ),
        **lambda_env.DUMMY_CREDENTIALS,
        "AWS_REGION": config.region,
        "AWS_DEFAULT_REGION": config.region,
    }
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())


def _arn(config: Config, text: str) -> FunctionArn:
    try:
        return FunctionArn.parse(text)
    except ArnError:
        name, _, qualifier = text.partition(":")
        try:
            return FunctionArn.parse(str(config.function_arn(name, qualifier or None)))
        except ArnError:
            raise ResourceNotFound(f"Function not found: {text}") from None


def _event(
    ws: Workspace, config: Config, event_file: Path | None, bucket: str | None, key: str | None
) -> Any:
    if event_file is not None:
        return json.loads(event_file.read_text())
    if bucket is None or key is None:
        return {}
    path = ws.buckets / bucket / key
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SimulatorError(f"cannot read s3://{bucket}/{key} ({path}): {exc.strerror}") from None
    st = path.stat()
    change = s3_events.ObjectChange(
        bucket,
        key,
        "put",
        len(data),
        hashlib.md5(data).hexdigest(),
        s3_events.format_sequencer(time.time_ns()),
        st.st_mtime_ns // 10**6,
    )
    notes = (
        routing.match(config.buckets[bucket], key, change.event_name)
        if bucket in config.buckets
        else []
    )
    return build_event(config, change, notes[0].id if notes else "s3sim-invoke")


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    rows = [tuple(logstream.printable(c) for c in row) for row in rows]  # names from files
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = io.StringIO()
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    return out.getvalue().rstrip("\n")
