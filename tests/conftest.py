import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def recorded() -> Any:
    return fixture


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with one function `fn` (the recording handler, alias `live` -> $LATEST)."""
    from tests.helpers import handler_source, make_workspace, simple_config

    out = tmp_path / "out"
    out.mkdir()
    return make_workspace(tmp_path / "ws", simple_config(out), {"fn": {"handler.py": handler_source()}})
