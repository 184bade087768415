"""The reader behind config parsing: typed reads of raw YAML values, each naming its dotted
path, that collect problems instead of raising (every problem is reported at once)."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from simulator.errors import Problem

T = TypeVar("T")
_KINDS = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
}
# Values in messages are shown shortened: a wrong value may be large.
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 100
_SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxtuple = _SHOWN.maxset = 10


def shown(value: Any) -> str:
    return _SHOWN.repr(value)


class Reader:
    """Collects problems while reading; each read names its dotted path."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def mapping(self, value: Any, path: str) -> Mapping[Any, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(path, f"must be a mapping, got {shown(value)}")
            return {}
        return value

    def named(self, value: Any, path: str) -> dict[str, Any]:
        """A mapping keyed by names. A key YAML did not read as text (`yes` is true, `~` is
        null, `1.5` a number) is reported, not turned into text: `yes` must not silently
        become an alias called 'True'. Whole numbers are names (a function may be `123`)."""
        named: dict[str, Any] = {}
        for key, item in self.mapping(value, path).items():
            if isinstance(key, int) and not isinstance(key, bool):
                key = str(key)
            if not isinstance(key, str):
                self.fail(
                    f"{path}.{key}",
                    f"the key {shown(key)} is not text: unquoted yes, "
                    "no, on, off, true and false read as booleans and ~ "
                    "as null in YAML; quote the name",
                )
                continue
            named[key] = item
        return named

    def typed(self, value: Any, kind: type[T], path: str, default: T) -> T:
        """`value` if it is of `kind` (an int counts as a float; a bool is not a number)."""
        if value is None:
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)  # type: ignore[return-value]
            except OverflowError:
                pass
        elif isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool)):
            return value
        self.fail(path, f"must be {_KINDS[kind]}, got {shown(value)}")
        return default

    def ranged(self, value: Any, path: str, aws_name: str, lo: int, hi: int, default: int) -> int:
        number = self.typed(value, int, path, default)
        if number < lo:
            self.fail(path, _range(number, aws_name, "greater", lo))
        elif number > hi:
            self.fail(path, _range(number, aws_name, "less", hi))
        return number

    def strings(self, value: Any, path: str, default: list[str]) -> list[str]:
        """A list of strings; each wrong item is named by its index."""
        items = self.typed(value, list, path, default)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                self.fail(f"{path}[{i}]", f"must be a string, got {shown(item)}")
        return [item for item in items if isinstance(item, str)]

    def known(
        self,
        body: Mapping[Any, Any],
        keys: Collection[str],
        path: str,
        listed: Collection[str] | None = None,
    ) -> None:
        """Every key of `body` must be one of `keys`; a near miss names the likely intent."""
        for key in body:
            if key not in keys:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, unknown_setting(str(key), listed or keys))


def unknown_setting(key: str, keys: Collection[str]) -> str:
    close = difflib.get_close_matches(key, sorted(keys), n=1)
    if close:
        return f"unknown setting; did you mean {close[0]!r}?"
    return f"unknown setting (expected one of {', '.join(sorted(keys))})"


def _range(value: int, aws_name: str, side: str, bound: int) -> str:
    return (
        f"1 validation error detected: Value '{value}' at '{aws_name}' failed to satisfy "
        f"constraint: Member must have value {side} than or equal to {bound}"
    )
