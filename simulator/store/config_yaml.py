"""config.yaml text -> plain Python values, refusing what a YAML loader would silently accept.

Pure (text in, values out). The document is first composed into YAML's node graph, where an
alias is the very node its anchor names. That graph is checked before any Python value is
built:

- alias expansion is bounded. Nested anchors ("billion laughs": 9 aliases of 9 aliases of ...)
  are a few lines of text but billions of nodes once walked; each check or message that walks
  the values would then take gigabytes and minutes.
- a key given twice in one mapping is an error; YAML loaders keep the last one silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from simulator.errors import ConfigError, Problem

# libyaml's safe loader when PyYAML was built with it: a reload parses 10x faster.
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_ALIASES = 1_000  # references to anchored lists and mappings
MAX_EXPANSION = 100_000  # nodes that aliases add to the document once expanded
_MERGE = "tag:yaml.org,2002:merge"


def load(text: str, source: str = "config.yaml") -> tuple[Any, list[Problem]]:
    """The document's value (None when empty) and the problems that still let it be read
    (duplicate keys), so they are listed with the rest; raises ConfigError when the text
    cannot be read safely at all (syntax, alias bombs)."""
    loader = LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        duplicates = _check(node, source)
        return loader.construct_document(node), duplicates
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", _yaml_problem(exc))], source) from None
    except RecursionError:
        raise ConfigError([Problem("", "the YAML is nested too deeply")], source) from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}invalid YAML ({getattr(exc, 'problem', None) or exc})"


# A path is built only for a message: (parent path, key or index) links, None at the top.
_Path = tuple[Any, str | int] | None


@dataclass
class _Walk:
    """One pass over the node graph; each list or mapping node is entered once."""

    sizes: dict[int, int] = field(default_factory=dict)  # id -> expanded node count
    entered: set[int] = field(default_factory=set)  # being walked: met again = a cycle
    distinct: int = 0  # nodes in the graph, aliases not expanded
    aliases: int = 0
    duplicates: list[tuple[int, Problem]] = field(default_factory=list)  # (line, problem)

    def size(self, node: Node, path: _Path) -> int:
        """Nodes in `node` once every alias inside it is expanded. Scalars are counted by
        their parent (a call per scalar would cost a tenth of the load time)."""
        if isinstance(node, ScalarNode):
            self.distinct += 1
            return 1
        key = id(node)
        known = self.sizes.get(key)
        if known is not None:
            self.aliases += 1
            return known
        if key in self.entered:
            raise ConfigError(
                [
                    Problem(
                        "",
                        f"line {node.start_mark.line + 1}: a YAML alias "
                        f"refers to a list or mapping that contains it",
                    )
                ]
            )
        self.entered.add(key)
        total = 1
        scalars = 1  # this node
        if isinstance(node, MappingNode):
            self._duplicates(node, path)
            for k, v in node.value:
                if k.__class__ is ScalarNode:
                    scalars += 1
                    total += 1
                else:
                    total += self.size(k, path)
                if v.__class__ is ScalarNode:
                    scalars += 1
                    total += 1
                else:
                    total += self.size(v, (path, _key_text(k)))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                if item.__class__ is ScalarNode:
                    scalars += 1
                    total += 1
                else:
                    total += self.size(item, (path, i))
        self.distinct += scalars
        self.sizes[key] = total
        return total

    def _duplicates(self, node: MappingNode, path: _Path) -> None:
        seen: set[tuple[str, str]] = set()
        for k, _ in node.value:
            if not isinstance(k, ScalarNode) or k.tag == _MERGE:
                continue  # merged keys may be overridden: that is what merging is for
            if (k.tag, k.value) in seen:
                where = _path_text(path) or "the top level"
                line = k.start_mark.line + 1
                self.duplicates.append(
                    (line, Problem("", f"line {line}: duplicate key {k.value!r} in {where}"))
                )
            seen.add((k.tag, k.value))


def _check(root: Node, source: str) -> list[Problem]:
    walk = _Walk()
    try:
        expanded = walk.size(root, None)
    except ConfigError as exc:
        raise ConfigError(list(exc.problems), source) from None
    if walk.aliases > MAX_ALIASES:
        raise ConfigError(
            [
                Problem(
                    "",
                    f"too many YAML aliases (anchors referenced "
                    f"{walk.aliases} times; at most {MAX_ALIASES}): a "
                    f'"billion laughs" expansion?',
                )
            ],
            source,
        )
    if expanded - walk.distinct > MAX_EXPANSION:
        raise ConfigError(
            [
                Problem(
                    "",
                    f"YAML aliases expand to {expanded - walk.distinct} "
                    f'more nodes (at most {MAX_EXPANSION}): a "billion '
                    f'laughs" expansion?',
                )
            ],
            source,
        )
    return [problem for _, problem in sorted(walk.duplicates, key=lambda d: d[0])]


def _key_text(node: Node) -> str:
    return str(node.value) if isinstance(node, ScalarNode) else "?"


def _path_text(path: _Path) -> str:
    parts: list[str | int] = []
    while path is not None:
        path, part = path
        parts.append(part)
    text = ""
    for part in reversed(parts):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
