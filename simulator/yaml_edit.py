"""Round-trip edits of config.yaml that keep the user's comments and layout (ruamel.yaml).

The edited document is validated exactly like a hand edit before it replaces the file, and
the replacement is atomic (temp file + rename), so a running simulator reloads it once.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from simulator.config import Config, check_published
from simulator.versions import VersionStore


def _yaml() -> YAML:
    handler = YAML()
    handler.preserve_quotes = True
    handler.indent(mapping=2, sequence=4, offset=2)
    return handler


def set_alias(path: Path, function: str, alias: str, value: Any, store: VersionStore) -> None:
    handler = _yaml()
    document = handler.load(path.read_text(encoding="utf-8"))
    fn = document["functions"][function]
    if fn is None:
        fn = document["functions"][function] = {}
    if fn.get("aliases") is None:
        fn["aliases"] = {}
    fn["aliases"][alias] = value
    buffer = io.StringIO()
    handler.dump(document, buffer)
    text = buffer.getvalue()
    config = Config.from_mapping(yaml.safe_load(text))  # the same rules as a hand edit
    check_published(config, store.published())
    _replace(path, text)


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
