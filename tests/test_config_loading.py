"""Reading config.yaml: YAML that must not be trusted, every problem at once, and a running
simulator that keeps its last good config whatever goes wrong while loading a new one."""

from __future__ import annotations

import textwrap
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.core import config_parse
from simulator.errors import ConfigError
from simulator.store import config_source
from simulator.store.config_source import ConfigSource
from simulator.store.versions import VersionStore
from tests.helpers import ARN, drop, handler_source, make_workspace, running, simple_config

GOOD = f"""\
region: us-east-1
account: "123456789012"
functions:
  thumbnailer:
    handler: handler.handler
    aliases:
      dev: $LATEST
buckets:
  uploads:
    notifications:
      - events: ["s3:ObjectCreated:*"]
        function: {ARN}:thumbnailer:dev
"""


def read_problems(tmp_path: Path, text: str, host: dict[str, str] | None = None) -> list[str]:
    (tmp_path / "config.yaml").write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        config_source.read(
            tmp_path / "config.yaml", VersionStore(tmp_path / "versions"), host=host or {}
        )
    return str(info.value).splitlines()


def bomb(levels: int, width: int) -> str:
    """Nested anchors: `levels` lists of `width` aliases of the list before."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_nested_alias_bomb_is_refused_fast_and_small(tmp_path: Path) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        found = read_problems(
            tmp_path, GOOD + "simulator:\n  seed: 1\n  x:\n" + textwrap.indent(bomb(9, 9), "    ")
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == [
        "config.yaml: YAML aliases expand to 490329036 more nodes (at most 100000): "
        'a "billion laughs" expansion?'
    ]
    assert time.monotonic() - started < 5  # was minutes (and 1.4 GB)
    assert peak < 20 * 2**20


def test_too_many_alias_references_are_refused(tmp_path: Path) -> None:
    text = GOOD + "simulator:\n  ignore: &i [a]\n" + "".join(f"  k{n}: *i\n" for n in range(1001))
    assert read_problems(tmp_path, text) == [
        "config.yaml: too many YAML aliases (anchors referenced 1001 times; at most 1000): a "
        '"billion laughs" expansion?'
    ]


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = (
        GOOD.replace(
            "    handler: handler.handler\n",
            "    <<: &base {handler: h.fn, timeout: 5}\n    timeout: 6\n",
        )
        + "  other:\n    <<: *base\n"
    )
    text = text.replace("buckets:", "  other2: *base\nbuckets:").replace(
        "  other:\n    <<: *base\n", ""
    )
    (tmp_path / "config.yaml").write_text(text)
    config = config_source.read(tmp_path / "config.yaml", VersionStore(tmp_path / "versions"))
    assert (
        config.functions["thumbnailer"].handler,
        config.functions["thumbnailer"].timeout_s,
        config.functions["other2"].timeout_s,
    ) == ("h.fn", 6, 5)


def test_duplicate_keys_are_named_by_line_and_place(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      dev: $LATEST\n", "      prod: $LATEST\n      dev: $LATEST\n      prod: $LATEST\n"
    )
    text += "region: us-east-1\n"
    assert read_problems(tmp_path, text) == [
        "config.yaml: line 9: duplicate key 'prod' in functions.thumbnailer.aliases",
        "config.yaml: line 15: duplicate key 'region' in the top level",
    ]


def test_duplicate_keys_in_lists_are_named_with_their_index(tmp_path: Path) -> None:
    text = GOOD.replace("      - events:", "      - id: a\n        id: b\n        events:")
    assert read_problems(tmp_path, text) == [
        "config.yaml: line 12: duplicate key 'id' in buckets.uploads.notifications[0]"
    ]


def test_every_stage_reports_at_once(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      dev: $LATEST\n",
        "      dev: $LATEST\n      prod: 3\n"
        "    environment: {TOKEN: '${S3SIM_UNSET_TOKEN}'}\n    timeout: 0\n",
    )
    assert read_problems(tmp_path, text) == [
        "config.yaml: functions.thumbnailer.timeout: 1 validation error detected: Value '0' at "
        "'timeout' failed to satisfy constraint: Member must have value greater than or equal "
        "to 1",
        f"config.yaml: functions.thumbnailer.aliases.prod: Function not found: "
        f"{ARN}:thumbnailer:3 (publish it first: s3sim publish thumbnailer)",
        "config.yaml: functions.thumbnailer.environment.TOKEN: refers to ${S3SIM_UNSET_TOKEN}, "
        "which is not set in the simulator's environment",
    ]


# -- a running simulator: any failure while loading is a rejection, never a crash --


def workspace(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return make_workspace(
        tmp_path / "ws", simple_config(out), {"fn": {"handler.py": handler_source()}}
    )


@pytest.mark.integration
def test_wrong_types_on_reload_are_rejected_and_the_last_good_config_kept(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    raw = yaml.safe_load((ws / "config.yaml").read_text())
    raw["buckets"]["uploads"]["notifications"][0]["events"] = [["s3:ObjectCreated:*"]]
    with running(ws) as (_, log):
        (ws / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        (rejected,) = log.wait_for(log.named("config.rejected"))
        drop(ws / "buckets/uploads/a.txt")
        log.wait_for(log.named("invoke.report"))
    assert rejected["problems"] == [
        "config.yaml: buckets.uploads.notifications[0].events[0]: must be a string, got "
        "['s3:ObjectCreated:*']"
    ]
    assert log.matching(log.named("intake.error")) == []


def _failing_build(original: Any) -> Any:
    """config_parse.build with a bug that only a config naming region 'boom' trips."""

    def build(raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("region") == "boom":
            raise RuntimeError("a bug in a check")
        return original(raw)

    return build


@pytest.mark.integration
def test_any_failure_while_loading_is_a_rejection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path)
    monkeypatch.setattr(config_parse, "build", _failing_build(config_parse.build))
    text = (ws / "config.yaml").read_text()
    with running(ws) as (_, log):
        (ws / "config.yaml").write_text(text.replace("region: us-east-1", "region: boom"))
        (rejected,) = log.wait_for(log.named("config.rejected"))
    assert rejected["problems"] == [
        "config.yaml: could not be loaded: RuntimeError: a bug in a check"
    ]
    assert log.matching(log.named("intake.error")) == []


def test_start_falls_back_to_last_good_on_any_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path)
    store, last_good = VersionStore(ws / "versions"), tmp_path / "last-good-config.yaml"
    ConfigSource(ws / "config.yaml", store, last_good)  # a good start remembers the file
    monkeypatch.setattr(config_parse, "build", _failing_build(config_parse.build))
    text = (ws / "config.yaml").read_text()
    (ws / "config.yaml").write_text(text.replace("region: us-east-1", "region: boom"))
    assert ConfigSource(ws / "config.yaml", store, last_good).current.region == "us-east-1"
