"""Limits a YAML document must keep before PlantGuard parses it.

A site file is edited by people, copied between machines and sometimes
produced by tools; a parser will happily spend minutes and gigabytes on a few
hundred hostile bytes (nested aliases, "billion laughs"), recurse forever on an
alias inside its own anchor, or carry a control character or an undecodable
byte that later shows up in an HMI.  These checks run before the real parse, on
the raw bytes or text, and cost nothing for an ordinary file: each slow check
runs only when a cheap scan finds what it looks for.

Limits (also in docs/site-file.md, "Limits")::

    file size            64 MiB  (a 100,000-point site is ~11 MB)
    encoding             UTF-8 (a leading byte-order mark is allowed)
    characters           no C0/C1 control characters but tab, LF and CR
    aliases              none refers to its own anchor; expanded, the document
                         holds at most 10x its own nodes (at least 100,000)
    nesting              at most 64 levels
    numbers              finite: .nan, .inf and overflowing exponents refused

Every refusal is an :class:`UnsafeYaml` naming the line (and the field path
where there is one), so the caller reports it as ``file:line: field: message``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import yaml

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "UnsafeYaml",
    "check_aliases",
    "check_numbers",
    "check_text",
    "decode",
]

MAX_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64
_MIN_EXPANSION_BUDGET = 100_000
_EXPANSION_FACTOR = 10

# YAML 1.2 §5.1: printable characters are tab, LF, CR, 0x20-0x7E, NEL and U+00A0 up
# (less surrogates and U+FFFE/U+FFFF).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x84\x86-\x9f\ufffe\uffff]")
# A possible anchor or alias: '&' or '*' at a token start.  False positives only
# send the document through the exact check.
_ANCHOR_OR_ALIAS = re.compile(r"(?:^|[\s\[{,:-])[&*][^\s\[\]{},]", re.MULTILINE)
# YAML's explicit key indicator, the usual way to write a list or mapping as a key.
_EXPLICIT_KEY = re.compile(r"^[\s-]*\?(?:\s|$)", re.MULTILINE)
# A possible non-finite float in YAML 1.2's core schema, or an exponent past a double's.
_NON_FINITE = re.compile(r"\.(?:nan|inf)\b|\d[eE]\+?\d{3}", re.IGNORECASE)

if TYPE_CHECKING:
    _Loader = yaml.SafeLoader
else:
    _Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UnsafeYaml(Exception):
    """A document outside PlantGuard's limits: what is wrong, and where."""

    def __init__(
        self, message: str, line: int | None = None, path: tuple[str | int, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.path = path


def decode(data: bytes) -> str:
    """UTF-8 text of ``data``, or :class:`UnsafeYaml` naming the first bad byte's line."""
    if len(data) > MAX_BYTES:
        raise UnsafeYaml(f"file is larger than the limit of {MAX_BYTES:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UnsafeYaml(
            f"not UTF-8: byte 0x{data[exc.start]:02X} at column {column} (save the file as UTF-8)",
            line,
        ) from None


def check_text(text: str) -> None:
    """Size and characters of an already decoded document."""
    if len(text) > MAX_BYTES:
        raise UnsafeYaml(f"document is {len(text):,} characters; the limit is {MAX_BYTES:,}")
    bad = _CONTROL.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise UnsafeYaml(
            f"control character U+{ord(bad.group()):04X} at column {column} is not allowed",
            line,
        )


def check_aliases(text: str) -> None:
    """Refuse recursive aliases, alias expansion past the budget, deep nesting, and keys
    that are lists or mappings.

    Runs the C composer only when the text may hold an anchor: a composed
    document shares each anchored node, so its expanded size is counted without
    building the expansion.
    """
    if _ANCHOR_OR_ALIAS.search(text) is None and _EXPLICIT_KEY.search(text) is None:
        return
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError:
        return  # a syntax error: the parser that follows reports it with its line
    finally:
        loader.dispose()
    if root is not None:
        _Expansion(root).check()


class _Expansion:
    """Expanded size of a composed node graph, memoised per shared node."""

    def __init__(self, root: yaml.Node) -> None:
        self.root = root
        self.sizes: dict[int, int] = {}
        self.open: set[int] = set()
        self.physical = 0

    def check(self) -> None:
        expanded = self._size(self.root, 0)
        budget = max(_MIN_EXPANSION_BUDGET, _EXPANSION_FACTOR * self.physical)
        if expanded > budget:
            raise UnsafeYaml(
                f"aliases expand the document to {expanded:,} nodes, over the limit of "
                f"{budget:,} (nested aliases?)",
                1,
            )

    def _size(self, node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in self.open:
            raise UnsafeYaml("an alias refers to its own anchor", node.start_mark.line + 1)
        known = self.sizes.get(key)
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            raise UnsafeYaml(f"nested deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
        self.physical += 1
        self.open.add(key)
        size = 1
        for child in _children(node):
            size += self._size(child, depth + 1)
        self.open.discard(key)
        self.sizes[key] = size
        return size


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise UnsafeYaml(
                    "a mapping key must be a plain value, not a list or mapping",
                    key_node.start_mark.line + 1,
                )
            yield key_node
            yield value_node
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def check_numbers(text: str, data: Any) -> None:
    """Refuse NaN and infinities anywhere in the parsed ``data``, and nesting past the limit.

    Skipped unless the text spells a non-finite value (or an overflowing
    exponent): PlantGuard has no setting where one means anything.
    """
    if _NON_FINITE.search(text) is None:
        return
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise UnsafeYaml(f"{value} is not a finite number", None, path)
        if len(path) > MAX_DEPTH:
            raise UnsafeYaml(f"nested deeper than {MAX_DEPTH} levels", None, path)
        if isinstance(value, dict):
            stack.extend((v, (*path, str(k))) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))
