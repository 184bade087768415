"""The command line: `main(argv) -> exit code`. The only place that prints for humans.

Exit codes, the same for every command (README, "Exit codes"):
  0    success
  1    failed: the function returned an error, a check failed (a version's seal, an event
       dead-lettered under `run --exit-when-idle`), or the operation could not complete
       (I/O, the journal, no simulator running for `env`)
  2    usage or configuration: bad arguments or values, an invalid config.yaml, the
       workspace in use by another simulator
  3    not found: a function, alias, version, bucket or dead letter that does not exist
       (Lambda's 404, ResourceNotFoundException)
  130  interrupted (Ctrl-C)
  141  the output was closed early (`s3sim logs | head`), as for a tool killed by SIGPIPE
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

from simulator import commands
from simulator.errors import (
    ConfigError,
    InvalidParameterValue,
    LambdaApiError,
    NotFound,
    ResourceNotFound,
    SimulatorError,
    UsageError,
    ValidationFailed,
    WorkspaceLocked,
)
from simulator.promotion import actions

OK, FAILED, USAGE, NOT_FOUND, INTERRUPTED, PIPE_CLOSED = 0, 1, 2, 3, 130, 141
WORKSPACE_ENV = "S3SIM_WORKSPACE"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="s3sim",
        description="Local S3 event notifications -> "
        "AWS Lambda simulator, with versions and aliases.",
    )
    p.add_argument(
        "-w",
        "--workspace",
        type=Path,
        default=Path(os.environ.get(WORKSPACE_ENV) or "."),
        help=f"workspace folder holding config.yaml (default: ${WORKSPACE_ENV}, else the "
        "current folder)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="write a small commented workspace to start from")
    init.add_argument("dir", nargs="?", type=Path, help="where (default: the workspace)")
    run = sub.add_parser("run", help="watch the buckets and run handlers (Ctrl-C stops)")
    run.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="stop when nothing is pending; exit 1 if any event was dead-lettered",
    )
    run.add_argument("--json", action="store_true", help="JSON lines on the console")
    run.add_argument(
        "-v", "--verbose", action="store_true", help="every field of every event on the console"
    )
    sub.add_parser("validate", help="check config.yaml and the published versions")
    pub = sub.add_parser("publish", help="publish $LATEST of a function as a new version")
    pub.add_argument("function")
    pub.add_argument("--description", default=None)
    pub.add_argument(
        "--alias",
        help="then move this alias to the new version (through its deployment preference, "
        "if config.yaml declares one)",
    )
    ver = sub.add_parser("versions", help="list the published versions of a function")
    ver.add_argument("function")
    alias = sub.add_parser("alias", help="read or change aliases in config.yaml")
    alias_sub = alias.add_subparsers(dest="alias_command", required=True)
    aset = alias_sub.add_parser("set", help="point an alias at a version (creates it)")
    aset.add_argument("function")
    aset.add_argument("alias")
    aset.add_argument("version", help="a published version number or $LATEST")
    aset.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="VERSION=WEIGHT",
        help="route WEIGHT (0-1) of invocations to another published version",
    )
    alist = alias_sub.add_parser("list", help="list a function's aliases")
    alist.add_argument("function")
    ahist = alias_sub.add_parser("history", help="every change of an alias, with its cause")
    ahist.add_argument("function")
    ahist.add_argument("alias", nargs="?")
    _promotion_parsers(sub)
    lg = sub.add_parser("logs", help="read (and follow) the log stream")
    lg.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="show the last 10 events (or -n N), then new ones as they come, like tail -f",
    )
    lg.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N events")
    lg.add_argument("--since", help="events since a duration ago (30s, 10m, 2h, 1d) or a time")
    lg.add_argument(
        "--level",
        choices=("debug", "info", "warning", "error", "critical"),
        help="only events at this level or above",
    )
    for name in ("function", "alias", "version", "bucket", "request-id"):
        lg.add_argument(f"--{name}")
    lg.add_argument("--json", action="store_true", help="print the raw JSON lines")
    lg.add_argument("-v", "--verbose", action="store_true", help="every field of every event")
    ex = sub.add_parser("explain", help="why does (or doesn't) a key fire a notification?")
    ex.add_argument("bucket")
    ex.add_argument("key")
    ex.add_argument("--event", default="s3:ObjectCreated:Put")
    dl = sub.add_parser("dead-letters", help="list events that failed every attempt")
    dl.add_argument("--function")
    dl.add_argument("--json", action="store_true")
    dl.add_argument(
        "--replayed",
        action="store_true",
        help="also list dead letters already replayed (REPLAYED AS: the request id "
        "of their replay)",
    )
    rp = sub.add_parser("replay", help="re-deliver dead letters, or re-fire existing objects")
    rp.add_argument("ids", nargs="*", type=int, help="dead-letter ids (see dead-letters)")
    rp.add_argument("--all", action="store_true", help="every dead letter (of --function)")
    rp.add_argument("--function")
    rp.add_argument("--bucket", help="re-fire events for the objects in this bucket")
    rp.add_argument("--prefix", default="", help="with --bucket: only keys with this prefix")
    rp.add_argument(
        "--again",
        action="store_true",
        help="replay dead letters that were replayed already (once each is the rule)",
    )
    st = sub.add_parser("status", help="pending, in-flight, retrying and dead events")
    st.add_argument("--json", action="store_true")
    sub.add_parser(
        "env", help="shell exports that point AWS SDKs and the aws CLI at the running simulator"
    )
    inv = sub.add_parser("invoke", help="invoke a function synchronously once")
    inv.add_argument("arn", help="function ARN (unqualified, :N, :$LATEST or :alias) or name")
    inv.add_argument("--event", type=Path, help="JSON file holding the event")
    inv.add_argument("--bucket")
    inv.add_argument("--key")
    return p


def _promotion_parsers(sub: Any) -> None:
    pro = sub.add_parser("promote", help="point TO-ALIAS at the version FROM-ALIAS points at")
    pro.add_argument("function")
    pro.add_argument("from_alias", metavar="from-alias")
    pro.add_argument("to_alias", metavar="to-alias")
    rb = sub.add_parser("rollback", help="return an alias to what it was before its last change")
    rb.add_argument("function")
    rb.add_argument("alias")
    sh = sub.add_parser(
        "shift",
        help="shift an alias's traffic to a version (CodeDeploy's canary / linear types); "
        "`shift report [FUNCTION [ALIAS]]` charts the last shift",
    )
    sh.add_argument("words", nargs="+", metavar="FUNCTION ALIAS | report [FUNCTION [ALIAS]]")
    sh.add_argument("--to", help="the version to shift to")
    sh.add_argument(
        "--type",
        help="e.g. Canary10Percent5Minutes (default: the alias's deployment preference in "
        "config.yaml, else AllAtOnce)",
    )
    sh.add_argument("--pre-traffic", help="hook function run before any traffic moves")
    sh.add_argument("--post-traffic", help="hook function run after all traffic moved")
    sh.add_argument(
        "--rollback-if",
        action="append",
        default=[],
        metavar="METRIC>=THRESHOLD[/MINUTES]",
        help="roll back when the new version's error_rate, errors or timeouts reach this",
    )
    sh.add_argument("--stop", action="store_true", help="stop the shift: roll back")
    sh.add_argument("--html", type=Path, help="shift report: also write the chart here")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # here, not at exit: a reader gone (`| head`) is handled below
        return code
    except BrokenPipeError:
        return _pipe_closed()
    except (ConfigError, WorkspaceLocked, UsageError) as exc:
        _err(str(exc))
        return USAGE
    except NotFound as exc:
        _err(str(exc))
        return NOT_FOUND
    except LambdaApiError as exc:
        _err(f"{exc.code}: {exc.message}")
        if isinstance(exc, ResourceNotFound):
            return NOT_FOUND
        return USAGE if isinstance(exc, (ValidationFailed, InvalidParameterValue)) else FAILED
    except SimulatorError as exc:
        _err(str(exc))
        return FAILED
    except sqlite3.Error as exc:
        _err(f"the journal (.s3sim/journal.sqlite3) cannot be used: {exc}")
        return FAILED
    except OSError as exc:  # a full disk, a permission: say what and where, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        _err(f"{exc.strerror or exc}{where}")
        return FAILED
    except KeyboardInterrupt:
        return INTERRUPTED


def _pipe_closed() -> int:
    """The reader went away (`| head`): stop quietly. Python would report the broken pipe
    again when it flushes stdout at exit, so stdout is pointed at /dev/null first."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return PIPE_CLOSED


def _dispatch(args: argparse.Namespace) -> int:
    ws: Path = args.workspace
    if args.command == "init":
        _out(commands.init(args.dir or ws))
        return OK
    if args.command == "run":
        return _run(ws, args.exit_when_idle, args.json, args.verbose)
    if args.command == "validate":
        _out(commands.validate(ws))
        return OK
    if args.command == "publish":
        version = commands.publish(ws, args.function, args.description)
        _out(version)
        if args.alias is not None:
            _out(actions.publish_alias(ws, args.function, args.alias, version))
        return OK
    if args.command == "versions":
        _out(commands.versions(ws, args.function))
        return OK
    if args.command == "alias":
        if args.alias_command == "set":
            _out(commands.alias_set(ws, args.function, args.alias, args.version, args.weight))
        elif args.alias_command == "history":
            _out(actions.history(ws, args.function, args.alias))
        else:
            _out(commands.alias_list(ws, args.function))
        return OK
    if args.command in ("promote", "rollback", "shift"):
        _out(_promotion(ws, args))
        return OK
    if args.command == "logs":
        filters = {
            k: getattr(args, k.replace("-", "_"))
            for k in ("function", "alias", "version", "bucket", "request-id")
        }
        view = commands.LogView(
            follow=args.follow,
            lines=args.lines if args.lines is not None else (10 if args.follow else None),
            since=args.since,
            level=args.level,
            as_json=args.json,
            verbose=args.verbose,
        )
        return commands.show_logs(ws, view, filters, sys.stdout)
    if args.command == "explain":
        _out(commands.explain(ws, args.bucket, args.key, args.event))
        return OK
    if args.command == "dead-letters":
        _out(commands.dead_letters(ws, args.function, args.json, args.replayed))
        return OK
    if args.command == "replay":
        _out(
            commands.replay(
                ws, args.ids, args.all, args.function, args.bucket, args.prefix, args.again
            )
        )
        return OK
    if args.command == "status":
        _out(commands.show_status(ws, args.json))
        return OK
    if args.command == "env":
        _out(commands.env(ws))
        return OK
    if args.command == "invoke":
        text, ok = commands.invoke(ws, args.arn, args.event, args.bucket, args.key)
        _out(text)
        return OK if ok else FAILED
    raise AssertionError(args.command)


def _promotion(ws: Path, args: argparse.Namespace) -> str:
    from simulator.promotion import report

    if args.command == "promote":
        return actions.promote(ws, args.function, args.from_alias, args.to_alias)
    if args.command == "rollback":
        return actions.rollback(ws, args.function, args.alias)
    words: list[str] = args.words
    if words[0] == "report" and len(words) <= 3:
        named: list[str | None] = [*words[1:], None, None]
        return report.show(ws, named[0], named[1], html=args.html)
    if len(words) != 2:
        raise UsageError("usage: s3sim shift FUNCTION ALIAS --to VERSION [--type TYPE]")
    function, alias = words
    if args.stop:
        return actions.stop(ws, function, alias)
    if args.to is None:
        raise UsageError("s3sim shift: --to VERSION is required (or --stop)")
    return actions.shift(
        ws,
        function,
        alias,
        args.to,
        args.type,
        args.pre_traffic,
        args.post_traffic,
        args.rollback_if,
    )


def _run(ws: Path, exit_when_idle: bool, as_json: bool, verbose: bool) -> int:
    from simulator.lambdas import processes
    from simulator.runtime import Runtime

    # This process runs nothing but the simulator: it may adopt and sweep orphans (a test
    # or an embedding program running a Runtime in its own process must not).
    processes.become_subreaper()
    runtime = Runtime(ws, console=sys.stderr, console_json=as_json, verbose=verbose)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())  # only hands off; the main thread stops
    from simulator.runtime import StartCancelled

    try:
        runtime.start(cancel=stop)
    except StartCancelled:
        return OK  # stopped as asked, before it was ready: nothing runs on
    try:
        runtime.supervise(stop, exit_when_idle)
    finally:
        runtime.stop()
    if runtime.fatal.is_set():
        _err(f"stopped: {runtime.fatal_reason}")
        return FAILED
    return FAILED if exit_when_idle and runtime.deliverer.dead_lettered else OK


def _out(text: str | dict[str, Any] | list[Any]) -> None:
    from simulator.logs import printable

    if not isinstance(text, str):
        text = json.dumps(text, indent=2, ensure_ascii=False)
    print("\n".join(printable(line) for line in text.split("\n")))


def _err(text: str) -> None:
    from simulator.logs import printable

    # A message may span lines (one per config problem); what is inside a line may not.
    lines = [printable(line) for line in text.split("\n")]
    print(f"s3sim: {chr(10).join(lines)}", file=sys.stderr)
