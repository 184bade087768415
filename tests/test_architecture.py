"""The layout is the architecture: who may import whom, checked on every import statement in
the package (deferred ones inside functions included), and the tools that keep the code
clean (mypy strict, ruff lint and format) run as tests."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "simulator"

# Each layer and the simulator modules it may import (besides itself).
LEAVES = {"simulator.errors", "simulator.serving"}
ALLOWED: dict[str, set[str]] = {
    "simulator.core": LEAVES,  # pure: the standard library and nothing else
    "simulator.store": {"simulator.core", *LEAVES},
    "simulator.s3": {"simulator.core", "simulator.store", "simulator.logs", *LEAVES},
    "simulator.lambdas": {"simulator.core", "simulator.store", "simulator.logs", *LEAVES},
    # Deployments drive aliases (store) from invocation outcomes (lambdas); nothing below
    # imports them.
    "simulator.promotion": {
        "simulator.core",
        "simulator.store",
        "simulator.lambdas",
        "simulator.logs",
        *LEAVES,
    },
    "simulator.errors": set(),
    "simulator.logs": set(),
    "simulator.serving": set(),
}
# The composition root, the commands, the CLI and the test helpers wire the layers together.
WIRING = {
    "simulator.runtime",
    "simulator.cli_requests",
    "simulator.commands",
    "simulator.cli",
    "simulator.testing",
    "simulator.pytest_plugin",
    "simulator.__main__",
    "simulator",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module an import statement in the file names, at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def layer(module: str) -> str:
    for name in sorted(ALLOWED, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return module


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: module_name(p))
def test_imports_follow_the_layers(path: Path) -> None:
    own = layer(module_name(path))
    if own in WIRING:
        return
    assert own in ALLOWED, f"{own} belongs to no layer: add it to a subpackage"
    wanted = {layer(m) for m in imports(path) if m.startswith("simulator")} - {own}
    wanted = {m for m in wanted if m in ALLOWED or m in WIRING}
    assert wanted <= ALLOWED[own], f"{module_name(path)} imports {sorted(wanted - ALLOWED[own])}"


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "core").rglob("*.py")), ids=lambda p: module_name(p)
)
def test_the_core_uses_only_the_standard_library(path: Path) -> None:
    outside = {m.split(".")[0] for m in imports(path)} - set(sys.stdlib_module_names)
    assert outside <= {"simulator", "__future__"}, f"{module_name(path)} imports {outside}"


def test_the_launcher_imports_nothing_but_the_standard_library_and_the_runtime_client() -> None:
    """launcher.py runs inside the execution environment as a script (`python -I -S`): the
    handler's process must not see the simulator or its dependencies, only AWS's runtime."""
    launcher = PACKAGE / "lambdas" / "launcher.py"
    outside = {m.split(".")[0] for m in imports(launcher)} - set(sys.stdlib_module_names)
    assert outside <= {"__future__", "awslambdaric"}, outside


def test_the_s3_side_and_the_lambda_side_never_meet() -> None:
    for side, other in (("s3", "simulator.lambdas"), ("lambdas", "simulator.s3")):
        for path in (PACKAGE / side).rglob("*.py"):
            assert not any(layer(m) == other for m in imports(path)), module_name(path)


def test_importing_the_cli_loads_no_runtime_and_no_watchdog() -> None:
    probe = (
        "import sys, simulator.cli; print(sorted(m for m in sys.modules if m.startswith("
        "('watchdog', 'simulator.runtime', 'simulator.lambdas', 'simulator.s3.watching'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "mypy"],  # strict, on the package, the tests and the benchmarks (pyproject.toml)
        ["-m", "ruff", "check", "."],
        ["-m", "ruff", "format", "--check", "."],
    ],
    ids=["mypy-strict", "ruff-check", "ruff-format"],
)
def test_tooling_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
