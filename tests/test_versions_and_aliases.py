"""Publishing, immutability, live alias repointing through config.yaml, hot reload."""

import os
from pathlib import Path

import pytest
import yaml

from simulator.core import config_parse
from simulator.core.activity import Invocation
from simulator.core.config import Config
from simulator.errors import VersionIntegrityError
from simulator.pytest_plugin import Launcher
from simulator.store.versions import VersionStore
from tests.helpers import (
    ARN,
    drop,
    handler_source,
    make_workspace,
    results,
    running,
    simple_config,
    write_config,
)

pytestmark = pytest.mark.integration


def fn_config(out: Path) -> Config:
    return config_parse.parse(simple_config(out))


def test_publish_snapshots_and_returns_last_version_when_unchanged(tmp_path: Path) -> None:
    src = tmp_path / "fn"
    src.mkdir()
    (src / "handler.py").write_text("x = 1\n")
    store = VersionStore(tmp_path / "versions")
    function = fn_config(tmp_path).functions["fn"]
    v1, created1 = store.publish(function, src)
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"cache")  # not code
    (src / ".handler.py.swp").write_text("noise")
    again, created_again = store.publish(function, src, description="ignored: nothing changed")
    assert (v1.number, created1, again.number, created_again) == (1, True, 1, False)
    (src / "handler.py").write_text("x = 2\n")
    v2, _ = store.publish(function, src)
    assert v2.number == 2 and v2.code_sha256 != v1.code_sha256
    assert (store.load("fn", 1).code_dir / "handler.py").read_text() == "x = 1\n"
    assert not os.access(store.load("fn", 1).code_dir / "handler.py", os.W_OK) or os.geteuid() == 0


def test_configuration_only_change_is_a_new_version(tmp_path: Path) -> None:
    src = tmp_path / "fn"
    src.mkdir()
    (src / "handler.py").write_text("x = 1\n")
    store = VersionStore(tmp_path / "versions")
    raw = simple_config(tmp_path)
    store.publish(config_parse.parse(raw).functions["fn"], src)
    raw["functions"]["fn"]["timeout"] = 9
    v2, created = store.publish(config_parse.parse(raw).functions["fn"], src)
    assert (v2.number, created, v2.settings["timeout"]) == (2, True, 9)


def test_altered_version_is_refused_naming_the_file(tmp_path: Path) -> None:
    src = tmp_path / "fn"
    src.mkdir()
    (src / "handler.py").write_text("x = 1\n")
    store = VersionStore(tmp_path / "versions")
    version, _ = store.publish(fn_config(tmp_path).functions["fn"], src)
    target = version.code_dir / "handler.py"
    os.chmod(target, 0o644)
    target.write_text("x = 'tampered'\n")
    with pytest.raises(VersionIntegrityError) as info:
        store.load("fn", 1)
    assert str(target) in str(info.value)


def test_numbers_are_never_reused(tmp_path: Path) -> None:
    src = tmp_path / "fn"
    src.mkdir()
    store = VersionStore(tmp_path / "versions")
    function = fn_config(tmp_path).functions["fn"]
    for i in range(2):
        (src / "handler.py").write_text(f"x = {i}\n")
        store.publish(function, src)
    import shutil

    from simulator.store.versions import _make_writable

    _make_writable(tmp_path / "versions" / "fn" / "2")
    shutil.rmtree(tmp_path / "versions" / "fn" / "2")
    (src / "handler.py").write_text("x = 9\n")
    assert store.publish(function, src)[0].number == 3


def published_workspace(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    ws = make_workspace(
        tmp_path / "ws",
        simple_config(out, aliases={"live": "$LATEST"}),
        {"fn": {"handler.py": handler_source("v1")}},
    )
    store = VersionStore(ws / "versions")
    function = config_parse.parse(yaml.safe_load((ws / "config.yaml").read_text())).functions["fn"]
    store.publish(function, ws / "functions" / "fn")
    (ws / "functions/fn/handler.py").write_text(handler_source("v2"))
    store.publish(function, ws / "functions" / "fn")
    return ws


def set_alias(ws: Path, value: object) -> None:
    raw = yaml.safe_load((ws / "config.yaml").read_text())
    raw["functions"]["fn"]["aliases"]["live"] = value
    write_config(ws, raw)


def alias_text(ws: Path, value: object) -> str:
    raw = yaml.safe_load((ws / "config.yaml").read_text())
    raw["functions"]["fn"]["aliases"]["live"] = value
    return yaml.safe_dump(raw, sort_keys=False)


def test_repointing_alias_in_config_runs_new_version_without_restart(
    tmp_path: Path, s3sim: Launcher
) -> None:
    ws = published_workspace(tmp_path)
    set_alias(ws, 1)
    sim = s3sim.start(copy_from=ws)
    sim.put("uploads", "a.txt")
    a = sim.settle().only()
    sim.write("config.yaml", alias_text(sim.workspace, 2))  # a hand edit, saved
    sim.put("uploads", "b.txt")
    run = sim.settle()
    b = run.only()

    (reload,) = run.named("config.reloaded")
    assert "functions.fn.aliases.live: 1 -> 2" in reload["changes"]
    assert (a.result["tag"], a.executed_version, a.attempts[0].version) == ("v1", "1", "1")
    assert (b.result["tag"], b.executed_version, b.attempts[0].version) == ("v2", "2", "2")
    assert (b.target, b.alias) == (f"{ARN}:fn:live", "live")
    by_key = {r["event"]["Records"][0]["s3"]["object"]["key"]: r for r in results(tmp_path / "out")}
    assert by_key["b.txt"]["context"]["invoked_function_arn"] == f"{ARN}:fn:live"
    assert by_key["b.txt"]["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "2"


def test_invalid_reload_keeps_last_good_config(tmp_path: Path) -> None:
    ws = published_workspace(tmp_path)
    set_alias(ws, 1)
    good = yaml.safe_load((ws / "config.yaml").read_text())
    with running(ws) as (_, log):
        (ws / "config.yaml").write_text("functions: [this is: not valid\n")
        (bad_yaml,) = log.wait_for(log.named("config.rejected"))
        good["functions"]["fn"]["aliases"]["live"] = 7  # a version that does not exist
        write_config(ws, good)
        rejected = log.wait_for(log.named("config.rejected"), count=2)
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report"))
    assert bad_yaml["problems"][0].startswith("config.yaml: line 2, column 1: invalid YAML")
    assert rejected[1]["problems"] == [
        f"config.yaml: functions.fn.aliases.live: Function not found: "
        f"{ARN}:fn:7 (publish it first: s3sim publish fn)"
    ]
    (result,) = results(tmp_path / "out")
    assert result["context"]["function_version"] == "1"


def test_weighted_alias_runs_both_versions_in_separate_environments(
    tmp_path: Path, s3sim: Launcher
) -> None:
    ws = published_workspace(tmp_path)
    set_alias(ws, {"version": 1, "weights": {2: 0.5}})
    sim = s3sim.start(copy_from=ws)
    for i in range(30):
        sim.put("uploads", f"k{i}.txt")
    runs = sim.settle().invocations

    assert len(runs) == 30 and all(r.ok for r in runs)
    assert {r.executed_version for r in runs} == {"1", "2"}
    for r in runs:  # each environment ran exactly one version's code
        assert r.result["tag"] == f"v{r.executed_version}"
    pid = {r["context"]["aws_request_id"]: r["pid"] for r in results(tmp_path / "out")}
    by_version = {v: {pid[r.request_id] for r in runs if r.executed_version == v} for v in "12"}
    assert not by_version["1"] & by_version["2"]


def edit_latest_between_two_events(
    s3sim: Launcher, ws: Path, tag: str
) -> tuple[Invocation, Invocation]:
    """a.txt fires, $LATEST's code is edited to `tag`, then b.txt fires."""
    sim = s3sim.start(copy_from=ws)
    sim.put("uploads", "a.txt")
    a = sim.settle().only()
    sim.write("functions/fn/handler.py", handler_source(tag))  # returns once taken in
    sim.put("uploads", "b.txt")
    return a, sim.settle().only()


def test_latest_edit_recycles_warm_environment_but_not_versions(
    tmp_path: Path, s3sim: Launcher
) -> None:
    ws = published_workspace(tmp_path)
    a, b = edit_latest_between_two_events(s3sim, ws, "v3")
    assert (a.result["tag"], b.result["tag"]) == ("v2", "v3")
    assert b.attempts[0].cold  # the warm $LATEST environment was recycled
    store = VersionStore(ws / "versions")
    assert "TAG = 'v1'" in (store.load("fn", 1).code_dir / "handler.py").read_text()


def test_latest_edit_keeps_published_versions_warm(tmp_path: Path, s3sim: Launcher) -> None:
    ws = published_workspace(tmp_path)
    set_alias(ws, 1)
    a, b = edit_latest_between_two_events(s3sim, ws, "v9")
    assert (a.attempts[0].cold, b.attempts[0].cold) == (True, False)  # version 1 stayed warm
