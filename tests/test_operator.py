"""Operator experience: config edits, editor saves, throttles, the `logs` command and its
rotated files, `explain`'s near misses, exit codes, `--workspace` / S3SIM_WORKSPACE and
`s3sim init`, as a user meets them (real folders, processes and files)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from simulator import commands, logs
from simulator.cli import main
from tests.helpers import ARN, drop, handler_source, make_workspace, running, simple_config

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[1]


def cli(ws: Path, *args: str) -> int:
    return main(["-w", str(ws), *args])


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


# -- config.yaml: the last word after a rejection ---------------------------------------------
def test_a_good_config_after_a_rejected_one_says_so_even_when_unchanged(ws: Path) -> None:
    good = (ws / "config.yaml").read_text()
    with running(ws) as (_, log):
        (ws / "config.yaml").write_text("functions: [\n")
        log.wait_for(log.named("config.rejected"))
        (ws / "config.yaml").write_text(good)  # equal to the config kept in force
        (back,) = log.wait_for(log.named("config.reloaded"))
        assert back["note"] == "config.yaml is valid again and in force"
        assert back["changes"] == []
        assert logs.render(back)[13:] == (
            'INFO    config.reloaded      note="config.yaml is valid again and in force"'
        )
        # An ordinary reload afterwards carries no such note.
        (ws / "config.yaml").write_text(good.replace("timeout: 3", "timeout: 4"))
        second = log.wait_for(log.named("config.reloaded"), count=2)[1]
        assert "note" not in second
        assert second["changes"] == ["functions.fn.timeout: 3 -> 4"]


# -- functions/: one save, one recycle -----------------------------------------------------
def vim_save(folder: Path, name: str, text: str) -> None:
    """What vim does on :w (backup by rename, probe file 4913, swap file), then the new file."""
    (folder / f".{name}.swp").write_text("swap")
    (folder / "4913").write_text("")
    (folder / "4913").unlink()
    (folder / name).rename(folder / f"{name}~")
    (folder / name).write_text(text)
    (folder / f"{name}~").unlink()
    (folder / f"{name}.tmp").write_text("t")
    (folder / f"{name}.tmp").unlink()
    (folder / f".{name}.swp").unlink()


def test_an_editor_save_recycles_latest_once(ws: Path) -> None:
    with running(ws) as (_, log):
        vim_save(ws / "functions/fn", "handler.py", handler_source("v2"))
        (changed,) = log.wait_for(log.named("function.code_changed"))
        assert changed["path"] == "functions/fn/handler.py"
        drop(ws / "buckets/uploads/a.txt")
        (report,) = log.wait_for(log.named("invoke.report"))
        assert report["status"] == "success"
        # Noise alone (swap and backup files) is not a change of code.
        (ws / "functions/fn/.handler.py.swp").write_text("swap")
        (ws / "functions/fn/handler.py~").write_text("old")
        drop(ws / "buckets/uploads/b.txt")
        log.wait_for(log.named("invoke.report"), count=2)
    assert len(log.matching(log.named("function.code_changed"))) == 1
    out = [json.loads(p.read_text()) for p in sorted((ws.parent / "out").glob("*.json"))]
    assert {r["tag"] for r in out} == {"v2"}


# -- throttles: name the real cause --------------------------------------------------------
def test_throttle_without_reserved_concurrency_names_the_simulators_cap(ws: Path) -> None:
    raw = yaml.safe_load((ws / "config.yaml").read_text())
    raw["simulator"]["concurrency"] = 1
    raw["functions"]["fn"]["timeout"] = 1
    raw["functions"]["fn"]["retries"] = 0
    (ws / "config.yaml").write_text(yaml.safe_dump(raw))
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/sleep.txt")  # holds the only slot for its 1 s timeout
        log.wait_for(log.named("invoke.start"))
        drop(ws / "buckets/uploads/a.txt")
        (throttled,) = log.wait_for(log.named("invoke.throttled"))
        log.wait_for(log.named("invoke.report"), count=2)
    assert throttled["reason"] == "ConcurrentInvocationLimitExceeded"
    assert logs.render(throttled)[13:] == (
        "INFO    invoke.throttled     function=fn queued=1 cap=1 "
        'reason=ConcurrentInvocationLimitExceeded cause="the simulator runs at most 1 '
        'invocations of a function at once; simulator.concurrency in config.yaml raises it"'
    )


def test_throttle_under_reserved_concurrency_keeps_lambdas_reason(ws: Path) -> None:
    raw = yaml.safe_load((ws / "config.yaml").read_text())
    raw["functions"]["fn"].update(timeout=1, retries=0, reserved_concurrency=1)
    (ws / "config.yaml").write_text(yaml.safe_dump(raw))
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/sleep.txt")
        log.wait_for(log.named("invoke.start"))
        drop(ws / "buckets/uploads/a.txt")
        (throttled,) = log.wait_for(log.named("invoke.throttled"))
        log.wait_for(log.named("invoke.report"), count=2)
    assert throttled["reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert throttled["cause"] == "functions.fn.reserved_concurrency is 1"


# -- the logs command ----------------------------------------------------------------------
def write_events(path: Path, events: list[dict[str, Any]]) -> None:
    """Append events through the real sinks (rotation included)."""
    logs.configure(path, None)
    log = structlog.get_logger("s3sim")
    for event in events:
        fields = dict(event)
        getattr(log, fields.pop("level", "info"))(fields.pop("event"), **fields)
    logs.close()


def numbered(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"event": "test.numbered", "n": i, **fields} for i in range(count)]


def shown(ws: Path, *args: str) -> list[str]:
    out = io.StringIO()
    parsed = [*args]
    view = commands.LogView(
        follow=False,
        lines=int(parsed[parsed.index("-n") + 1]) if "-n" in parsed else None,
        since=parsed[parsed.index("--since") + 1] if "--since" in parsed else None,
        level=parsed[parsed.index("--level") + 1] if "--level" in parsed else None,
        as_json=True,
    )
    assert commands.show_logs(ws, view, {}, out) == 0
    return [
        json.loads(line)["event"] + str(json.loads(line).get("n", ""))
        for line in out.getvalue().splitlines()
    ]


def test_logs_rotate_at_the_configured_size_and_are_read_across_files(tmp_path: Path) -> None:
    path = tmp_path / ".s3sim/logs/events.jsonl"
    logs.set_rotation(4096, 3)
    try:
        write_events(path, numbered(200))
    finally:
        logs.set_rotation(10 * 1024 * 1024, 5)
    sizes = [p.stat().st_size for p in logs.log_files(path)]
    assert [p.name for p in logs.log_files(path)] == [
        "events.3.jsonl",
        "events.2.jsonl",
        "events.1.jsonl",
        "events.jsonl",
    ]
    assert all(size <= 4096 + 200 for size in sizes)  # one line past the limit at most
    everything = shown(tmp_path)
    kept = [int(e.removeprefix("test.numbered")) for e in everything]
    assert kept == list(range(kept[0], 200))  # the oldest files dropped, nothing in between
    assert shown(tmp_path, "-n", "3") == [
        "test.numbered197",
        "test.numbered198",
        "test.numbered199",
    ]
    # -n reaches back into rotated files
    assert len(shown(tmp_path, "-n", str(len(everything)))) == len(everything)


def test_logs_level_and_since(tmp_path: Path) -> None:
    path = tmp_path / ".s3sim/logs/events.jsonl"
    path.parent.mkdir(parents=True)
    old = {"event": "test.old", "level": "error", "timestamp": "2020-01-01T00:00:00.000000Z"}
    path.write_text(json.dumps(old) + "\n")
    write_events(
        path,
        [
            {"event": "test.info", "level": "info"},
            {"event": "test.warning", "level": "warning"},
            {"event": "test.error", "level": "error"},
        ],
    )
    assert shown(tmp_path, "--level", "warning") == ["test.old", "test.warning", "test.error"]
    assert shown(tmp_path, "--since", "10m") == ["test.info", "test.warning", "test.error"]
    assert shown(tmp_path, "--since", "2019-12-31T23:59") == [
        "test.old",
        "test.info",
        "test.warning",
        "test.error",
    ]
    assert shown(tmp_path, "--since", "10m", "--level", "error") == ["test.error"]
    assert cli(tmp_path, "logs", "--since", "yesterday") == 2


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"s3sim logs ended early: {proc.stderr.read() if proc.stderr else ''}"
    return line


def test_logs_follow_starts_at_the_end_and_crosses_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / ".s3sim/logs/events.jsonl"
    write_events(path, numbered(50))
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "-w", str(tmp_path), "logs", "-f", "-n", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        # the last 2, not the history
        assert read_line(proc)[13:] == "INFO    test.numbered        n=48\n"
        assert read_line(proc)[13:] == "INFO    test.numbered        n=49\n"
        write_events(path, [{"event": "test.after", "n": 1}])
        assert read_line(proc)[13:] == "INFO    test.after           n=1\n"
        logs.set_rotation(4096, 2)  # the next lines rotate the file under the follower
        try:
            write_events(path, numbered(40, after=2))
        finally:
            logs.set_rotation(10 * 1024 * 1024, 5)
        assert path.with_name("events.1.jsonl").exists()
        followed = [read_line(proc) for _ in range(40)]
        assert [line.split("n=")[1].split()[0] for line in followed] == [str(i) for i in range(40)]
    finally:
        proc.kill()
        proc.wait()


def test_logs_follow_defaults_to_the_last_ten(tmp_path: Path) -> None:
    path = tmp_path / ".s3sim/logs/events.jsonl"
    write_events(path, numbered(30))
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "-w", str(tmp_path), "logs", "-f", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert [json.loads(read_line(proc))["n"] for _ in range(10)] == list(range(20, 30))
    finally:
        proc.kill()
        proc.wait()


def test_output_closed_early_ends_quietly(tmp_path: Path) -> None:
    write_events(tmp_path / ".s3sim/logs/events.jsonl", numbered(5000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "-w", str(tmp_path), "logs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == b""


def test_logs_json_keeps_non_ascii_as_text(tmp_path: Path) -> None:
    write_events(tmp_path / ".s3sim/logs/events.jsonl", [{"event": "test.key", "key": "été.jpg"}])
    out = io.StringIO()
    commands.show_logs(tmp_path, commands.LogView(as_json=True), {}, out)
    assert '"key": "été.jpg"' in out.getvalue()


# -- explain: near misses ------------------------------------------------------------------
def near_miss_workspace(tmp_path: Path) -> Path:
    config = simple_config(tmp_path / "out")
    config["buckets"]["uploads"]["notifications"] = [
        {
            "id": "jpegs",
            "events": ["s3:ObjectCreated:*"],
            "prefix": "images/",
            "suffix": ".jpg",
            "function": f"{ARN}:fn:live",
        },
        {
            "id": "albums",
            "events": ["s3:ObjectCreated:*"],
            "prefix": "my photos/",
            "function": f"{ARN}:fn:live",
        },
        {
            "id": "cafe",
            "events": ["s3:ObjectCreated:*"],
            "prefix": "caf%C3%A9/",
            "function": f"{ARN}:fn:live",
        },
    ]
    return make_workspace(tmp_path / "ws", config, {"fn": {"handler.py": handler_source()}})


def test_explain_points_out_case_and_encoding_near_misses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = near_miss_workspace(tmp_path)
    assert cli(ws, "explain", "uploads", "images/cat.JPG") == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        "    suffix '.jpg': no (differs only in case: the key has '.JPG', the rule '.jpg'; "
        "S3 compares suffixes case-sensitively)"
    ) in out
    assert cli(ws, "explain", "uploads", "my photos/a.jpg") == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        "    prefix 'my photos/': no (differs only in encoding: S3 compares prefixes with the "
        "URL-encoded key 'my+photos/a.jpg'; write the prefix as 'my+photos/')"
    ) in out
    decomposed = "cafe\u0301/menu.txt"  # é as e + combining accent (macOS file names)
    assert cli(ws, "explain", "uploads", decomposed) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        "    prefix 'caf%C3%A9/': no (differs only in Unicode normalization: the key's "
        "accented letters are decomposed (NFD), the rule's are composed; S3 compares the "
        "bytes)"
    ) in out


# -- commands: errors and exit codes ----------------------------------------------------------
def test_invoke_of_a_missing_function_is_a_not_found_error(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(ws, "invoke", "nosuchfn") == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"s3sim: ResourceNotFoundException: Function not found: {ARN}:nosuchfn\n"
    )
    assert cli(ws, "invoke", "fn:nosuchalias") == 3
    assert cli(ws, "invoke", "fn:7") == 3


def test_weight_on_latest_says_latest_cannot_carry_weight(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(ws, "publish", "fn")
    capsys.readouterr()
    before = (ws / "config.yaml").read_text()
    assert cli(ws, "alias", "set", "fn", "live", "1", "--weight", "$LATEST=0.5") == 2
    # AWS's text for a $LATEST key in AdditionalVersionWeights (recorded), then why.
    assert capsys.readouterr().err == (
        "s3sim: ValidationException: 1 validation error detected: Value '{$LATEST=0.5}' at "
        "'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys "
        "must satisfy constraint: [Member must have length less than or equal to 1024, "
        "Member must have length greater than or equal to 1, Member must satisfy regular "
        "expression pattern: [0-9]+] ($LATEST cannot carry weight: only a published version "
        "can; publish $LATEST and weight that version)\n"
    )
    assert (ws / "config.yaml").read_text() == before


@pytest.mark.parametrize(
    "args, code",
    [
        (("validate",), 0),
        (("versions", "nosuchfn"), 3),
        (("alias", "list", "nosuchfn"), 3),
        (("publish", "nosuchfn"), 3),
        (("alias", "set", "fn", "2024", "$LATEST"), 2),
        (("alias", "set", "fn", "x", "1", "--weight", "oops"), 2),
        (("explain", "uploads", "a.txt", "--event", "s3:ObjectCreated:Put"), 0),
        (("logs",), 1),  # no log yet: nothing has run
        (("env",), 1),  # no simulator running
        (("nosuchcommand",), 2),
    ],
)
def test_exit_codes_follow_the_table(ws: Path, args: tuple[str, ...], code: int) -> None:
    with pytest.raises(SystemExit) if args[0] == "nosuchcommand" else _no_raise() as info:
        assert cli(ws, *args) == code
    if args[0] == "nosuchcommand":
        assert info.value.code == code


class _no_raise:
    def __enter__(self) -> Any:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def test_replay_of_unknown_dead_letters_and_buckets_is_not_found(
    ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running(ws):
        pass  # creates the journal
    assert cli(ws, "replay", "42") == 3
    assert cli(ws, "replay", "--bucket", "nosuchbucket") == 3
    err = capsys.readouterr().err
    assert "s3sim: not dead letters: 42 (see `s3sim dead-letters`)" in err


# -- workspaces anywhere --------------------------------------------------------------------
def test_init_writes_a_workspace_that_runs(tmp_path: Path, simulator: Any) -> None:
    ws = tmp_path / "new"
    done = run_cli("init", str(ws))
    assert done.returncode == 0, done.stderr
    assert sorted(str(p.relative_to(ws)) for p in ws.rglob("*") if p.is_file()) == [
        ".gitignore",
        "config.yaml",
        "functions/hello/handler.py",
    ]
    again = run_cli("init", str(ws))
    assert again.returncode == 2
    assert (
        again.stderr
        == f"s3sim: {ws / 'config.yaml'} exists already: s3sim init writes new workspaces\n"
    )
    # Every command finds the workspace through S3SIM_WORKSPACE, from anywhere.
    checked = run_cli("validate", env={"S3SIM_WORKSPACE": str(ws)}, cwd=tmp_path)
    assert checked.stdout == (
        f"{ws / 'config.yaml'}: OK (1 functions, 1 buckets, 1 notification configurations)\n"
    )
    sim = simulator(ws).start()
    drop(ws / "buckets/inbox/incoming/hi.txt", "hi")
    drop(ws / "buckets/inbox/other.txt", "no rule for this one")
    (report,) = sim.wait_for(lambda e: e.get("event") == "invoke.report")
    assert report["status"] == "success"
    lines = [e["message"] for e in sim.events() if e.get("event") == "function.log"]
    assert "hello from version $LATEST: s3://inbox/incoming/hi.txt" in lines
    sim.stop()
    assert all(
        e.get("key") != "other.txt" for e in sim.events() if e.get("event") == "trigger.matched"
    )


def test_init_without_a_folder_uses_the_workspace_option(tmp_path: Path) -> None:
    done = run_cli("init", env={"S3SIM_WORKSPACE": str(tmp_path / "from-env")})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "from-env/config.yaml").exists()
    done = run_cli("-w", str(tmp_path / "from-flag"), "init")
    assert (tmp_path / "from-flag/config.yaml").exists()


def test_workspace_flag_wins_over_the_environment(tmp_path: Path) -> None:
    run_cli("init", str(tmp_path / "a"))
    run_cli("init", str(tmp_path / "b"))
    done = run_cli(
        "-w", str(tmp_path / "b"), "validate", env={"S3SIM_WORKSPACE": str(tmp_path / "a")}
    )
    assert done.stdout.startswith(f"{tmp_path / 'b' / 'config.yaml'}: OK")


# -- progress and summaries of long work --------------------------------------------------
def test_a_replay_of_many_dead_letters_ends_with_a_summary(ws: Path) -> None:
    raw = yaml.safe_load((ws / "config.yaml").read_text())
    raw["functions"]["fn"]["retries"] = 0
    (ws / "config.yaml").write_text(yaml.safe_dump(raw))
    with running(ws) as (_, log):
        for name in ("fail-1.txt", "fail-2.txt", "ok.txt"):
            drop(ws / "buckets/uploads" / name)
        log.wait_for(log.named("event.dead_lettered"), count=2)
        log.wait_for(log.named("invoke.report", status="success"))
        # the handler fails on keys with "fail": make one of them succeed this time
        (ws / "functions/fn/handler.py").write_text(
            handler_source().replace('if "fail" in key:', 'if key == "fail-1.txt":')
        )
        log.wait_for(log.named("function.code_changed"))
        commands.replay(ws, [], True, None, None, "")
        (finished,) = log.wait_for(log.named("replay.finished"))
    assert (finished["count"], finished["succeeded"], finished["dead_lettered"]) == (2, 1, 1)
    assert logs.render(finished)[13:].startswith(
        "INFO    replay.finished      count=2 succeeded=1 dead_lettered=1 duration_ms="
    )


def test_a_catch_up_summary_counts_what_it_walked(ws: Path) -> None:
    for i in range(30):
        drop(ws / f"buckets/uploads/old/{i}.txt")
    with running(ws) as (_, log):
        (first,) = log.matching(log.named("watch.rescanned"))
    for i in range(5):
        drop(ws / f"buckets/uploads/new/{i}.txt")
    with running(ws) as (_, log):
        (catch_up,) = log.matching(log.named("watch.rescanned"))
        log.wait_for(log.named("invoke.report"), count=5)
    assert (first["objects"], first["changed"], first["fired"]) == (30, 30, False)
    assert (catch_up["objects"], catch_up["changed"], catch_up["fired"]) == (35, 5, True)
    assert catch_up["per_s"] > 0


def test_explain_into_a_closed_pipe_ends_without_a_traceback(ws: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "-w", str(ws), "explain", "uploads", "a.txt"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line: `| head -0`
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == b""


def test_simulator_process_events_span_rotated_log_files(ws: Path, simulator: Any) -> None:
    raw = yaml.safe_load((ws / "config.yaml").read_text())
    raw["simulator"].update(log_rotate_bytes=4096, log_keep=100)
    (ws / "config.yaml").write_text(yaml.safe_dump(raw))
    sim = simulator(ws).start()
    for i in range(20):
        drop(ws / f"buckets/uploads/{i}.txt")
    reports = sim.wait_for(lambda e: e.get("event") == "invoke.report", count=20)
    assert len(reports) == 20
    rotated = logs.rotated_files(ws / ".s3sim/logs/events.jsonl")
    assert len(rotated) >= 3
    out = io.StringIO()
    commands.show_logs(ws, commands.LogView(as_json=True), {"function": "fn"}, out)
    keys = [json.loads(line).get("key") for line in out.getvalue().splitlines()]
    assert sorted({k for k in keys if k}, key=lambda k: int(k.split(".")[0])) == [
        f"{i}.txt" for i in range(20)
    ]


# -- the README's walkthrough: dev and beta ------------------------------------------------
def readme_block_after(marker: str, language: str) -> str:
    text = (REPO / "README.md").read_text()
    after = text[text.index(marker) :]
    start = after.index(f"```{language}\n") + len(language) + 4
    return after[start : after.index("```", start)]


def test_readme_beta_invoke_runs_version_2(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = readme_block_after("**Exercise `dev` and `beta`.**", "sh").splitlines()[0]
    args = command.split("s3sim ", 1)[1]
    assert args == 'invoke thumbnailer:beta --bucket uploads --key "images/red flower.jpg"'
    drop(demo / "buckets/uploads/images/red flower.jpg", "hello\n")
    assert (
        cli(
            demo,
            "invoke",
            "thumbnailer:beta",
            "--bucket",
            "uploads",
            "--key",
            "images/red flower.jpg",
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("ExecutedVersion: 2\nStatusCode: 200\n")


def test_readme_beta_rule_routes_gifs_to_version_2(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = readme_block_after("Or give it a rule", "yaml")
    text = (demo / "config.yaml").read_text()
    anchor = "  thumbnails:                   # written by thumbnailer $LATEST"
    (demo / "config.yaml").write_text(text.replace(anchor, rule + "\n" + anchor))
    assert cli(demo, "explain", "uploads", "images/a.gif") == 0
    out = capsys.readouterr().out
    assert "- beta-gifs: MATCH" in out
    assert f"    target {ARN}:thumbnailer:beta -> version 2" in out


def test_logs_read_events_with_non_utf8_file_names(tmp_path: Path) -> None:
    path = tmp_path / ".s3sim/logs/events.jsonl"
    write_events(path, [{"event": "test.odd", "key": "caf\udce9.txt"}, {"event": "test.next"}])
    out = io.StringIO()
    commands.show_logs(tmp_path, commands.LogView(), {}, out)
    assert [line[13:] for line in out.getvalue().splitlines()] == [
        "INFO    test.odd             key=caf\\xe9.txt",
        "INFO    test.next",
    ]
