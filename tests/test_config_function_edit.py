"""The splices behind the Lambda API's writes: a key removed takes only its own lines, an
emptied mapping stays a mapping, new functions go where the file has room for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.errors import ConfigError
from simulator.store.config_edit import set_in_text
from simulator.store.config_function_edit import REMOVE, edit_function, remove_in_text

FILE = "functions:\n  f:\n    handler: h.handler  # main\n    aliases:\n      live: 1   # only one\n  g: {}\n"


def test_removing_the_last_alias_leaves_an_empty_mapping() -> None:
    assert remove_in_text(FILE, ["functions", "f", "aliases", "live"]) == (
        "functions:\n  f:\n    handler: h.handler  # main\n    aliases: {}\n  g: {}\n"
    )


def test_removing_a_function_takes_its_lines_only() -> None:
    assert remove_in_text(FILE, ["functions", "f"]) == "functions:\n  g: {}\n"
    assert remove_in_text(FILE, ["functions", "absent"]) == FILE


def test_new_functions_in_flow_block_and_missing_sections() -> None:
    assert set_in_text("functions: {}\n", ["functions", "f", "handler"], "a.b") == (
        "functions: {f: {handler: a.b}}\n"
    )
    assert set_in_text("region: us-east-1\n", ["functions", "f", "timeout"], 5) == (
        "region: us-east-1\nfunctions:\n  f:\n    timeout: 5\n"
    )


def test_an_edit_that_would_not_validate_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(FILE)
    with pytest.raises(ConfigError) as error:
        edit_function(path, tmp_path / "lock", "f", [(("timeout",), 0), (("memory",), REMOVE)])
    assert [str(p) for p in error.value.problems] == [
        "functions.f.timeout: 1 validation error detected: Value '0' at 'timeout' failed to "
        "satisfy constraint: Member must have value greater than or equal to 1"
    ]
    assert path.read_text() == FILE
