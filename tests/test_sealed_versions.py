"""Published versions are sealed: code and settings against a record kept in the journal,
checked at every cold start; byte-code caches never stand in for the published source."""

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator import commands
from simulator.cli import main
from simulator.core import config_parse
from simulator.errors import VersionIntegrityError
from simulator.store.journal import Journal
from simulator.store.versions import VersionStore, code_sha256
from tests.helpers import drop, handler_source, make_workspace, results, running, simple_config

pytestmark = pytest.mark.integration


def workspace(tmp_path: Path, **function: Any) -> Path:
    """`fn` (the recording handler, tag v1) published as version 1 through the CLI (which
    seals it in the journal); alias `live` -> 1."""
    out = tmp_path / "out"
    out.mkdir()
    ws = make_workspace(
        tmp_path / "ws",
        simple_config(out, aliases={"live": 1}, **function),
        {"fn": {"handler.py": handler_source("v1")}},
    )
    assert commands.publish(ws, "fn", None) == "1"
    return ws


def edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit a read-only version.json in place, as a user with a text editor could."""
    os.chmod(path, 0o644)
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def redirect_output(to: Path) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        meta["Settings"]["environment"]["OUT"] = str(to)

    return edit


def rewrite_code_consistently(ws: Path, tag: str) -> Path:
    """Replace version 1's handler and fix up its file hash and CodeSha256 in version.json:
    version.json then agrees with the files, so only the journal's seal can tell."""
    folder = ws / "versions/fn/1"
    handler = folder / "code/handler.py"
    os.chmod(handler, 0o644)
    handler.write_text(handler_source(tag))

    def edit(meta: dict[str, Any]) -> None:
        meta["Files"]["handler.py"] = hashlib.sha256(handler.read_bytes()).hexdigest()
        meta["CodeSha256"] = code_sha256(meta["Files"])

    edit_json(folder / "version.json", edit)
    return handler


def test_edited_settings_refuse_the_cold_start_and_dead_letter(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    edit_json(ws / "versions/fn/1/version.json", redirect_output(elsewhere))
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        (dead,) = log.wait_for(log.named("event.dead_lettered"))
        failures = log.matching(log.named("version.integrity_failed"))
    assert len(failures) == 3  # the first attempt and both retries: none of them ran
    assert failures[0]["parts"] == ["settings"]
    assert failures[0]["path"] == str(ws / "versions/fn/1/version.json")
    assert "its settings changed" in failures[0]["error"]
    assert not log.matching(log.named("invoke.init_start"))
    assert results(elsewhere) == [] and results(tmp_path / "out") == []
    assert dead["condition"] == "RetriesExhausted"


def test_settings_edited_while_running_refuse_the_next_cold_start(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    (ws / "config.yaml").write_text(
        (ws / "config.yaml")
        .read_text()
        .replace("simulator:", "simulator:\n  force_cold_start: true")
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report", status="success"))
        edit_json(ws / "versions/fn/1/version.json", redirect_output(elsewhere))
        drop(ws / "buckets/uploads/b.txt")
        (failure,) = log.wait_for(log.named("version.integrity_failed"))
    assert failure["parts"] == ["settings"]
    assert [r["event"]["Records"][0]["s3"]["object"]["key"] for r in results(tmp_path / "out")] == [
        "a.txt"
    ]
    assert results(elsewhere) == []


def test_code_rewritten_with_its_hashes_is_caught_by_the_journal(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    handler = rewrite_code_consistently(ws, "rewritten")
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("event.dead_lettered"))
        (failure, *_) = log.matching(log.named("version.integrity_failed"))
    assert failure["parts"] == ["code"]
    assert failure["path"] == str(handler)
    assert str(ws / "versions/fn/1/version.json") in failure["error"]  # its claim changed too
    assert results(tmp_path / "out") == []


def test_validate_names_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = workspace(tmp_path)
    assert main(["-w", str(ws), "validate"]) == 0
    rewrite_code_consistently(ws, "rewritten")
    edit_json(ws / "versions/fn/1/version.json", redirect_output(tmp_path))
    assert main(["-w", str(ws), "validate"]) == 1
    err = capsys.readouterr().err
    assert "its code changed" in err and "its settings changed" in err
    assert str(ws / "versions/fn/1/code/handler.py") in err


def test_a_fresh_clone_seals_its_versions_on_first_sight(tmp_path: Path) -> None:
    """versions/ is committed, .s3sim/ is not: the first start records the seals it finds
    (trust on first use) and holds later starts to them."""
    ws = workspace(tmp_path)
    (ws / ".s3sim/journal.sqlite3").unlink()
    with running(ws) as (_, log):
        (sealed,) = log.wait_for(log.named("version.sealed"))
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report", status="success"))
    assert (sealed["function"], sealed["version"]) == ("fn", "1")
    journal = Journal(ws / ".s3sim/journal.sqlite3")
    try:
        seal = journal.version_seal("fn", 1)
    finally:
        journal.close()
    assert seal is not None
    assert (
        seal.code_sha256
        == json.loads((ws / "versions/fn/1/version.json").read_text())["CodeSha256"]
    )
    rewrite_code_consistently(ws, "rewritten")
    with pytest.raises(VersionIntegrityError):
        commands.validate(ws)


def test_publish_without_a_simulator_records_the_seal(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    db = sqlite3.connect(ws / ".s3sim/journal.sqlite3")
    try:
        rows = db.execute(
            "SELECT function, number, code_sha256, settings_sha256 FROM versions"
        ).fetchall()
    finally:
        db.close()
    meta = json.loads((ws / "versions/fn/1/version.json").read_text())
    assert rows == [("fn", 1, meta["CodeSha256"], meta["SettingsSha256"])]


def test_store_without_journal_still_checks_version_json_against_itself(tmp_path: Path) -> None:
    src = tmp_path / "fn"
    src.mkdir()
    (src / "handler.py").write_text("x = 1\n")
    store = VersionStore(tmp_path / "versions")
    function = config_parse.parse(simple_config(tmp_path)).functions["fn"]
    version, _ = store.publish(function, src)
    edit_json(version.meta_path, lambda meta: meta["Settings"].update(timeout=9))
    with pytest.raises(VersionIntegrityError) as info:
        VersionStore(tmp_path / "versions").verify("fn", 1)
    assert info.value.parts == ("settings",) and info.value.path == str(version.meta_path)


def planted_pyc(source: Path, kind: str, code: str) -> bytes:
    """A .pyc of other code that the default import system would accept for `source`:
    a timestamp pyc stamped with the source's mtime and size, or an unchecked-hash pyc
    carrying the source's own hash."""
    import marshal
    from importlib.util import MAGIC_NUMBER, source_hash

    body = marshal.dumps(compile(code, str(source), "exec"))
    if kind == "timestamp":
        st = source.stat()
        stamp = (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (
            st.st_size & 0xFFFFFFFF
        ).to_bytes(4, "little")
        return MAGIC_NUMBER + (0).to_bytes(4, "little") + stamp + body
    return MAGIC_NUMBER + (0b01).to_bytes(4, "little") + source_hash(source.read_bytes()) + body


def cache_file(ws: Path, source: Path, function: str = "fn", version: str = "1") -> Path:
    """Where the environment's interpreter looks for `source`'s byte-code
    (importlib.util.cache_from_source under the version's pycache prefix, for the code
    folder as the environment sees it: /var/task where it has Lambda's paths)."""
    import sys

    from tests.conftest import LAMBDA_PATHS

    code = ws / "versions" / function / version / "code"
    folder = Path("/var/task") if LAMBDA_PATHS else Path(os.path.realpath(code))
    folder = folder / source.parent.relative_to(code)
    return (
        ws
        / ".s3sim/pycache"
        / function
        / version
        / str(folder).lstrip(os.sep)
        / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
    )


@pytest.mark.parametrize("kind", ["timestamp", "unchecked-hash"])
def test_planted_byte_code_never_runs_instead_of_the_published_source(
    tmp_path: Path, kind: str
) -> None:
    ws = workspace(tmp_path)
    source = ws / "versions/fn/1/code/handler.py"
    pyc = cache_file(ws, source)
    pyc.parent.mkdir(parents=True, exist_ok=True)
    pyc.write_bytes(planted_pyc(source, kind, handler_source("planted")))
    with running(ws) as (_, log):
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report"))
    assert [r["tag"] for r in results(tmp_path / "out")] == ["v1"]
    assert pyc.read_bytes()[4:8] == (0b11).to_bytes(4, "little")  # compiled over, hash-checked
