"""Edits of a function's entry in config.yaml by the Lambda API (CreateFunction,
UpdateFunctionConfiguration, event-invoke config, concurrency, recursion, DeleteAlias,
DeleteFunction): the splices of `config_edit`, one per key, under its lock and its re-read
before replace, then the whole file's validation, as a hand edit gets it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from simulator.core import config_parse
from simulator.store.config_edit import LOADER, edit_file, set_in_text


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Final = _Remove()  # a change that deletes the key
Change = tuple[Sequence[str], Any]  # (keys under functions.<name>, new value or REMOVE)


def edit_function(path: Path, lock_path: Path, function: str, changes: Sequence[Change]) -> None:
    """Applies `changes` to `functions.<function>` (keys () is the entry itself). Raises
    ConfigError when the result does not validate; nothing is written then."""

    def change(text: str) -> tuple[str, None]:
        for keys, value in changes:
            where = ["functions", function, *keys]
            text = (
                remove_in_text(text, where) if value is REMOVE else set_in_text(text, where, value)
            )
        config_parse.parse(yaml.load(text, Loader=LOADER))
        return text, None

    edit_file(path, lock_path, change)


def remove_in_text(text: str, path: list[str]) -> str:
    """`text` without the key at `path` (unchanged when it is not there): its parent mapping
    is set to the rest, so only the key's own lines go."""
    parent = entry(yaml.load(text, Loader=LOADER), path[:-1])
    if not isinstance(parent, Mapping) or path[-1] not in parent:
        return text
    rest = {k: v for k, v in parent.items() if k != path[-1]}
    return set_in_text(text, path[:-1], rest)


def entry(raw: Any, keys: Sequence[str]) -> Any:
    """The value at `keys` in a loaded document (None when any step is missing)."""
    for key in keys:
        raw = raw.get(key) if isinstance(raw, Mapping) else None
    return raw


def function_entry(path: Path, function: str) -> Mapping[str, Any]:
    """The function's mapping as written in config.yaml ({} when absent or not a mapping):
    tells a key that is set from one that falls back to a default."""
    found = entry(yaml.load(path.read_text(), Loader=LOADER), ["functions", function])
    return found if isinstance(found, Mapping) else {}
