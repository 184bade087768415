"""Edits of config.yaml by commands: only the text of the value being set changes.

A full re-dump (even a round-tripping one) restyles what it did not mean to touch: it quotes
versions, expands flow maps, re-wraps long ARNs. The trigger configuration must not move when
an alias is repointed (that is what aliases are for), so edits here are splices: compose the
text with PyYAML, locate the node of the value being set by its marks, and replace just that
span, writing the new value in the style of the old one. New entries are inserted as lines
indented like their siblings.

Every edit is checked twice before it is written: the spliced text must parse to exactly the
document that was intended (else the splicer is wrong and nothing is written), and it must
pass the same validation as a hand edit. Writers are serialised by a lock file and the file
is compared before it is replaced, so concurrent commands and hand edits are never lost.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from simulator.core import config_parse
from simulator.core.config import check_published, only_alias
from simulator.errors import ConfigError, Problem, SimulatorError
from simulator.store import files
from simulator.store.versions import VersionStore

T = TypeVar("T")
Edit = tuple[int, int, str]  # (start, end, replacement): character offsets in the text
EDIT_ATTEMPTS = 5  # re-reads when the file changes under an edit, before giving up
_ROUTING_KEYS = ("version", "weights")


# The loader validation uses (libyaml where PyYAML has it), so both read a file alike.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SpliceError(SimulatorError):
    """The file's layout is one the in-place editor does not handle; nothing was written."""


# -- `s3sim alias set` ---------------------------------------------------------------------------
def set_alias(
    path: Path,
    lock_path: Path,
    function: str,
    alias: str,
    version: str,
    weights: Mapping[int, float],
    store: VersionStore,
    before_replace: Callable[[], None] | None = None,
) -> list[Problem]:
    """Point an alias at a version in config.yaml. Returns the problems the config still has
    elsewhere (a missing version another alias names): the edit does not fix them, but must
    not be blocked by them either, since it may be the first step of the repair."""

    def change(text: str) -> tuple[str, list[Problem]]:
        old = aliases_in(yaml.load(text, Loader=LOADER), function).get(alias)
        value = alias_value(old, version, weights)
        new_text = set_in_text(text, ["functions", function, "aliases", alias], value)
        return new_text, _validate(new_text, function, alias, store)

    return edit_file(path, lock_path, change, before_replace)


def aliases_in(raw: Any, function: str) -> Mapping[str, Any]:
    functions = raw.get("functions") if isinstance(raw, Mapping) else None
    fn = functions.get(function) if isinstance(functions, Mapping) else None
    aliases = fn.get("aliases") if isinstance(fn, Mapping) else None
    return aliases if isinstance(aliases, Mapping) else {}


def _validate(text: str, function: str, alias: str, store: VersionStore) -> list[Problem]:
    """The checks of a hand edit. The alias being set must name versions that exist; other
    references to missing versions were there before and are returned, not raised."""
    config = config_parse.parse(yaml.load(text, Loader=LOADER))
    published, last = store.published(), store.last_numbers()
    check_published(only_alias(config, function, alias), published, last)
    try:
        check_published(config, published, last)
    except ConfigError as exc:
        return list(exc.problems)
    return []


# -- the alias value a command asks for ---------------------------------------------------------
def alias_value(old: Any, version: str, weights: Mapping[int, float]) -> Any:
    """The alias's new value: version and routing replaced, the alias's own settings
    (description, retries, destinations) kept, as `update-alias` keeps what it is not given.
    A plain version when nothing else remains."""
    kept = (
        {k: v for k, v in old.items() if k not in _ROUTING_KEYS} if isinstance(old, Mapping) else {}
    )
    if not kept and not weights:
        return version
    value: dict[str, Any] = {"version": version}
    if weights:
        value["weights"] = dict(weights)
    return _in_old_order(old, value, kept) if isinstance(old, Mapping) else value


def _in_old_order(
    old: Mapping[Any, Any], routing: dict[str, Any], kept: dict[Any, Any]
) -> dict[Any, Any]:
    merged = {
        k: (routing[k] if k in routing else kept[k]) for k in old if k in routing or k in kept
    }
    merged.update({k: v for k, v in routing.items() if k not in merged})
    return merged


def set_in_text(text: str, path: list[str], value: Any) -> str:
    """`text` with the value at `path` (mapping keys from the root) set to `value`, touching
    nothing else. Raises SpliceError when the result would not be exactly that document."""
    root = yaml.compose(text, Loader=LOADER)
    if not isinstance(root, MappingNode):
        raise SpliceError("config.yaml is not a mapping")
    editor = _Editor(text, _version_quote(root), _indent_unit(root), _shared(root))
    new_text = _apply(text, editor.set_path(root, path, value))
    _check_result(text, new_text, path, value)
    return new_text


def _shared(root: Node) -> set[int]:
    """Nodes reached more than once: an anchor (&name) and its aliases (*name) compose to the
    same node object."""
    seen: set[int] = set()
    shared: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            shared.add(id(node))
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            stack += [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return shared


def _check_result(old_text: str, new_text: str, path: list[str], value: Any) -> None:
    expected = yaml.load(old_text, Loader=LOADER)
    node = expected
    for key in path[:-1]:
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    try:
        actual = yaml.load(new_text, Loader=LOADER)
    except yaml.YAMLError as exc:
        raise SpliceError(
            f"editing {'.'.join(path)} in place produced invalid YAML ({exc}); "
            f"nothing was written, edit config.yaml by hand"
        ) from None
    if _norm(actual) != _norm(expected):
        raise SpliceError(
            f"cannot edit {'.'.join(path)} in place in this layout; nothing was "
            f"written, edit config.yaml by hand"
        )


def _norm(value: Any) -> Any:
    """Values compared as the config reads them: a version is the same as 5 or '5'."""
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _apply(text: str, edits: list[Edit]) -> str:
    # From the end, so earlier offsets stay valid; spans never overlap.
    for edit in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        start, end, replacement = _keep_comment_column(text, edit)
        text = text[:start] + replacement + text[end:]
    return text


def _keep_comment_column(text: str, edit: Edit) -> Edit:
    """A value that grows or shrinks on a line with a trailing comment takes or gives back
    the spaces before the comment, so the comment stays in its column where it can."""
    start, end, replacement = edit
    line_end = _line_end(text, end)
    rest = text[end:line_end]
    if "\n" in replacement or "\n" in text[start:end] or not rest.lstrip().startswith("#"):
        return edit
    gap = len(rest) - len(rest.lstrip())
    if gap == 0:
        return edit
    column = end + gap - _line_start(text, start)  # where the comment starts now
    line_start = _line_start(text, start)
    width = start - line_start + len(replacement)
    spaces = max(column - width, min(gap, 2))
    return start, end + gap, replacement + " " * spaces


# -- locating text ------------------------------------------------------------------------------
def _span_end(node: Node) -> int:
    """Where a node's own text ends. A block collection's end mark lies at the next token
    (after trailing comments and blank lines), so it is taken from its last item."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _span_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _span_end(node.value[-1])
    return int(node.end_mark.index)


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_end(text: str, pos: int) -> int:
    """The offset of the newline ending the line that holds `pos` (or the end of the text)."""
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _insert_after_line(text: str, pos: int, lines: str) -> Edit:
    """New lines after the line holding `pos`: at the start of the next line, so the edit
    never overlaps the removal of that line."""
    end = _line_end(text, pos)
    if end == len(text):
        return end, end, "\n" + lines
    return end + 1, end + 1, lines + "\n"


def _comment_after(text: str, pos: int) -> str:
    """The trailing comment on pos's line, with the spaces before it ('' when none)."""
    rest = text[pos : _line_end(text, pos)]
    return rest if rest.strip().startswith("#") else ""


def _is_implicit_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.start_mark.index == node.end_mark.index


def _version_quote(root: MappingNode) -> str:
    """How this file writes version numbers ('' plain, or a quote), for values it has no
    old style to copy from. Files without a precedent get quotes, as earlier s3sim wrote."""
    for node in _alias_scalars(root):
        if node.value.isdigit():
            return node.style or ""
    return "'"


def _alias_scalars(root: MappingNode) -> Iterator[ScalarNode]:
    functions = _child(root, "functions")
    for _, fn in functions.value if isinstance(functions, MappingNode) else []:
        aliases = _child(fn, "aliases") if isinstance(fn, MappingNode) else None
        for _, alias in aliases.value if isinstance(aliases, MappingNode) else []:
            version = _child(alias, "version") if isinstance(alias, MappingNode) else alias
            if isinstance(version, ScalarNode):
                yield version


def _child(node: MappingNode, key: str) -> Node | None:
    entry = _entry(node, key)
    return entry[1] if entry else None


def _entry(node: MappingNode, key: str) -> tuple[ScalarNode, Node] | None:
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def _construct(node: Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


# -- rendering new values -----------------------------------------------------------------------
def render(value: Any, quote: str) -> str:
    """A value as one line of flow YAML; version numbers (digit strings) quoted with `quote`."""
    if isinstance(value, Mapping):
        return (
            "{" + ", ".join(f"{render(k, '')}: {render(v, quote)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(render(v, quote) for v in value) + "]"
    if isinstance(value, str) and value.isdigit():
        return f"{quote}{value}{quote}"
    dumped = yaml.safe_dump(value, default_flow_style=True, width=1 << 30)
    return dumped.removesuffix("\n").removesuffix("\n...").strip()


def _quote_of(node: Node, default: str) -> str:
    """The quoting of the old version number, which the new one copies."""
    if isinstance(node, MappingNode):
        version = _child(node, "version")
        return _quote_of(version, default) if version is not None else default
    if isinstance(node, ScalarNode) and node.value.isdigit():
        return node.style or ""
    return default


def _indent_unit(root: MappingNode) -> int:
    """The file's indentation step, read off `functions:` (2 when there is nothing to copy)."""
    functions = _entry(root, "functions")
    if (
        functions
        and isinstance(functions[1], MappingNode)
        and not functions[1].flow_style
        and functions[1].value
    ):
        step = functions[1].value[0][0].start_mark.column - functions[0].start_mark.column
        return step if step > 0 else 2
    return 2


class _Editor:
    def __init__(self, text: str, quote: str, unit: int, shared: set[int]) -> None:
        self.text, self.quote, self.unit = text, quote, unit
        self.shared = shared  # ids of nodes that appear in more than one place

    def set_path(self, node: MappingNode, path: list[str], value: Any) -> list[Edit]:
        key, rest = path[0], path[1:]
        if id(node) in self.shared:  # an anchor used elsewhere: an edit would change all
            raise SpliceError(
                f"cannot edit {'.'.join(path)} in place: the mapping holding it is a YAML "
                f"anchor that other places share through an alias; nothing was written, "
                f"edit config.yaml by hand"
            )
        entry = _entry(node, key)
        if entry is None:
            return [self._insert(node, path, value)]
        key_node, child = entry
        if not rest:
            return self._replace(key_node, child, value)
        if isinstance(child, MappingNode):
            return self.set_path(child, rest, value)
        if isinstance(child, ScalarNode) and _construct(child) is None:
            return [self._fill_null(key_node, child, rest, value)]
        raise SpliceError(f"cannot set {'.'.join(path)}: {key} is not a mapping")

    # -- new entries
    def _insert(self, mapping: MappingNode, path: list[str], value: Any) -> Edit:
        if mapping.flow_style:
            close = mapping.end_mark.index - 1  # the '}'
            sep = ", " if mapping.value else ""
            return (
                close,
                close,
                f"{sep}{render(path[0], '')}: {render(_nested(path[1:], value), self.quote)}",
            )
        first_key = mapping.value[0][0]
        return _insert_after_line(
            self.text,
            _span_end(mapping.value[-1][1]),
            self._block_lines(first_key.start_mark.column, path, value),
        )

    def _fill_null(
        self, key_node: ScalarNode, null: ScalarNode, path: list[str], value: Any
    ) -> Edit:
        """`aliases:` with nothing under it: block lines below; `aliases: ~`: a flow map."""
        if not _is_implicit_null(null):
            return (
                null.start_mark.index,
                null.end_mark.index,
                render(_nested(path, value), self.quote),
            )
        indent = key_node.start_mark.column + self.unit
        return _insert_after_line(
            self.text, null.end_mark.index, self._block_lines(indent, path, value)
        )

    def _block_lines(self, indent: int, path: list[str], value: Any) -> str:
        """`a:` / `  b: value` lines for a path not in the file yet (no trailing newline)."""
        lines = [
            " " * (indent + i * self.unit) + f"{render(k, '')}:" for i, k in enumerate(path[:-1])
        ]
        pad = " " * (indent + (len(path) - 1) * self.unit)
        lines.append(f"{pad}{render(path[-1], '')}: {render(value, self.quote)}")
        return "\n".join(lines)

    # -- changed values
    def _replace(self, key_node: ScalarNode, old: Node, value: Any) -> list[Edit]:
        if _norm(_construct(old)) == _norm(value):
            return []  # unchanged: not even its spelling moves
        if isinstance(value, Mapping) and value and isinstance(old, MappingNode) and old.value:
            return self._merge(old, value)  # (an empty map is written `{}`, below)
        quote = _quote_of(old, self.quote)
        if isinstance(old, MappingNode) and not old.flow_style:
            return [self._collapse(key_node, old, render(value, quote))]
        if _is_implicit_null(old):
            return [(old.start_mark.index, old.end_mark.index, " " + render(value, quote))]
        return [(old.start_mark.index, _span_end(old), render(value, quote))]

    def _collapse(self, key_node: ScalarNode, old: MappingNode, rendered: str) -> Edit:
        """A block mapping becomes a one-line value after its key; the key line's comment
        stays in its column, the lines of the old mapping go."""
        colon = self.text.index(":", key_node.end_mark.index) + 1
        value = f" {rendered}"
        comment = _comment_after(self.text, colon)
        if comment:
            column = colon + len(comment) - len(comment.lstrip())  # offset of the '#'
            pad = max(column - colon - len(value), 2)
            value += " " * pad + comment.lstrip()
        return colon, _line_end(self.text, _span_end(old)), value

    def _merge(self, old: MappingNode, value: Mapping[Any, Any]) -> list[Edit]:
        """Mapping to mapping: in block style, changed leaves are replaced where they are and
        entries that come or go are inserted or removed as lines; a flow map is rewritten on
        its line, its unchanged entries copied as they were written."""
        entries = {str(k.value): (k, v) for k, v in old.value if isinstance(k, ScalarNode)}
        wanted = {str(k): v for k, v in value.items()}
        if old.flow_style:  # one edit for the whole map, so a comment after it keeps its column
            return [(old.start_mark.index, old.end_mark.index, self._flow(entries, value))]
        if set(entries) == set(wanted):
            edits: list[Edit] = []
            for name, (k, v) in entries.items():
                edits += self._replace(k, v, wanted[name])
            return edits
        edits = [self._remove_line(k, v) for name, (k, v) in entries.items() if name not in wanted]
        for name, (k, v) in entries.items():
            if name in wanted:
                edits += self._replace(k, v, wanted[name])
        added = [(k, v) for k, v in value.items() if str(k) not in entries]
        column = old.value[0][0].start_mark.column
        lines = "\n".join(
            " " * column + f"{render(k, '')}: {render(v, self.quote)}" for k, v in added
        )
        if lines:
            edits.append(_insert_after_line(self.text, _span_end(old.value[-1][1]), lines))
        return edits

    def _flow(self, entries: dict[str, tuple[ScalarNode, Node]], value: Mapping[Any, Any]) -> str:
        parts = []
        for k, v in value.items():
            old = entries.get(str(k))
            if old is not None and _norm(_construct(old[1])) == _norm(v):
                parts.append(self.text[old[0].start_mark.index : old[1].end_mark.index])
            else:
                quote = _quote_of(old[1], self.quote) if old is not None else self.quote
                parts.append(f"{render(k, '')}: {render(v, quote)}")
        return "{" + ", ".join(parts) + "}"

    def _remove_line(self, key_node: ScalarNode, value_node: Node) -> Edit:
        start = _line_start(self.text, key_node.start_mark.index)
        if self.text[start : key_node.start_mark.index].strip():
            raise SpliceError(f"cannot remove {key_node.value!r} in place")
        end = _line_end(self.text, _span_end(value_node))
        return start, min(end + 1, len(self.text)), ""


def _nested(path: list[str], value: Any) -> Any:
    for key in reversed(path):
        value = {key: value}
    return value


# -- writing ------------------------------------------------------------------------------------
@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Serialises config.yaml edits by commands, across processes (held across the whole
    read-modify-write, so one command never overwrites another's change)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def edit_file(
    path: Path,
    lock_path: Path,
    change: Callable[[str], tuple[str, T]],
    before_replace: Callable[[], None] | None = None,
) -> T:
    """Apply `change` (old text -> new text, result) to the file, under the lock.

    Hand edits do not take the lock, so right before the atomic rename the file is read again:
    if it changed since it was read, the change is redone on the new text (a bounded number
    of times), so the hand edit survives. `before_replace` lets tests change the file there.
    """
    with locked(lock_path):
        for _ in range(EDIT_ATTEMPTS):
            original = path.read_bytes()
            new_text, result = change(original.decode("utf-8"))
            if before_replace is not None:
                before_replace()
            if path.read_bytes() != original:
                continue  # edited meanwhile: redo the change on what is there now
            _replace(path, new_text)
            return result
    raise SimulatorError(
        f"{path} kept changing while this command edited it ({EDIT_ATTEMPTS} "
        f"attempts); nothing was written, try again"
    )


def _replace(path: Path, text: str) -> None:
    try:
        files.write_atomic(path, text, keep_mode=True)
    except OSError as exc:  # e.g. a full disk: config.yaml is untouched, no temp file stays
        raise SimulatorError(
            f"could not write {path}: {exc.strerror or exc}; nothing was changed"
        ) from None


# -- block-style values and removals (the S3 API's bucket and notification writes) --------------
def set_block(text: str, path: list[str], value: Any) -> str:
    """`text` with the value at `path` set to `value` written in block style (a list of
    notification rules reads better as lines than as one flow line): the key's own lines are
    replaced, or new lines inserted beside its siblings. Where the layout is flow style or
    empty, falls back to `set_in_text`. Raises SpliceError when the result would not be
    exactly that document."""
    root = yaml.compose(text, Loader=LOADER)
    if not isinstance(root, MappingNode) or root.flow_style or not root.value:
        return set_in_text(text, path, value)
    parent = root
    for depth, key in enumerate(path):
        entry = _entry(parent, key)
        if entry is None:
            column = parent.value[0][0].start_mark.column
            lines = _block_value(column, path[depth:], value)
            edit = _insert_after_line(text, _span_end(parent.value[-1][1]), lines)
            return _checked(text, _apply(text, [edit]), path, value)
        key_node, child = entry
        empty = _is_empty(child)
        if depth == len(path) - 1 or empty:
            start = _line_start(text, key_node.start_mark.index)
            if text[start : key_node.start_mark.index].strip():
                return set_in_text(text, path, value)  # `- key:` or `{key: ...}` on one line
            end = _line_end(text, _span_end(child))
            lines = _block_value(key_node.start_mark.column, path[depth:], value)
            return _checked(text, text[:start] + lines + text[end:], path, value)
        if not isinstance(child, MappingNode) or child.flow_style or not child.value:
            return set_in_text(text, path, value)
        parent = child
    raise SpliceError("an empty path")  # unreachable: the loop returns


def remove_in_text(text: str, path: list[str]) -> str:
    """`text` without the entry at `path` (its lines, in block style); unchanged when there
    is no such entry. Raises SpliceError when the result would not be exactly that document."""
    raw = yaml.load(text, Loader=LOADER)
    parent_value = raw
    for key in path[:-1]:
        parent_value = parent_value.get(key) if isinstance(parent_value, Mapping) else None
    if not isinstance(parent_value, Mapping) or path[-1] not in parent_value:
        return text
    kept = {k: v for k, v in parent_value.items() if k != path[-1]}
    root = yaml.compose(text, Loader=LOADER)
    parent: Node | None = root
    for key in path[:-1]:
        parent = _child(parent, key) if isinstance(parent, MappingNode) else None
    if not isinstance(parent, MappingNode) or parent.flow_style:
        return set_in_text(text, path[:-1], kept)
    entry = _entry(parent, path[-1])
    assert entry is not None  # the loaded value holds it
    key_node, child = entry
    start = _line_start(text, key_node.start_mark.index)
    if text[start : key_node.start_mark.index].strip():
        return set_in_text(text, path[:-1], kept)
    end = min(_line_end(text, _span_end(child)) + 1, len(text))
    new_text = text[:start] + text[end:]
    actual = yaml.load(new_text, Loader=LOADER)
    for key in path[:-1]:
        actual = actual.get(key) if isinstance(actual, Mapping) else None
    if _norm(actual or {}) != _norm(kept):
        raise SpliceError(
            f"cannot remove {'.'.join(path)} in place in this layout; nothing was written, "
            f"edit config.yaml by hand"
        )
    return new_text


def _block_value(column: int, path: list[str], value: Any) -> str:
    """`key:` and the value below it as block YAML (leaf lists and maps in flow style),
    indented to `column`; no trailing newline."""
    dumped = yaml.safe_dump(
        {path[0]: _nested(path[1:], value)},
        sort_keys=False,
        default_flow_style=None,
        width=1 << 30,
        allow_unicode=True,
    )
    return "\n".join(" " * column + line for line in dumped.rstrip("\n").split("\n"))


def _is_empty(node: Node) -> bool:
    """`{}`, `~` or nothing: a value whose line can be rewritten whole."""
    if isinstance(node, MappingNode):
        return not node.value
    return isinstance(node, ScalarNode) and _construct(node) is None


def _checked(old_text: str, new_text: str, path: list[str], value: Any) -> str:
    _check_result(old_text, new_text, path, value)
    return new_text
