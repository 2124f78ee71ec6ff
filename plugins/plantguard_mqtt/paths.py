"""JSON paths into device payloads: ``$.sensors[0].co``, ``data.temp``, ``$['a b']``.

Why a small parser of our own and not a JSONPath library: a point needs one value
at one place, never a query; the subset (keys, quoted keys, list indexes) is
parsed once, at site load, into a tuple the per-message path walks with plain
``dict``/``list`` indexing — no per-message interpretation.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["JsonPath", "PathMissing", "extract", "parse_path"]

JsonPath = tuple[str | int, ...]

_TOKEN = re.compile(
    r"""\.(?P<key>[^.\[\]'"]+)      # .key
      | \[(?P<index>-?\d+)\]         # [0]
      | \['(?P<quoted>[^']*)'\]      # ['key with spaces']
      | \["(?P<dquoted>[^"]*)"\]     # ["key"]
    """,
    re.VERBOSE,
)


class PathMissing(LookupError):
    """The payload has nothing at the path (its message says where it stopped)."""


@lru_cache(maxsize=4096)
def parse_path(text: str) -> JsonPath:
    """``$.a[0].b`` → ``("a", 0, "b")``; raises ValueError naming what does not parse."""
    rest = text.strip()
    if rest.startswith("$"):
        rest = rest[1:]
    elif rest and rest[0] not in ".[":
        rest = "." + rest  # a bare first key: ``a.b``
    parts: list[str | int] = []
    position = 0
    while position < len(rest):
        match = _TOKEN.match(rest, position)
        if match is None:
            raise ValueError(f"JSON path {text!r} does not parse at {rest[position:]!r}")
        if match.group("index") is not None:
            parts.append(int(match.group("index")))
        else:
            parts.append(match.group("key") or match.group("quoted") or match.group("dquoted"))
        position = match.end()
    return tuple(parts)


def extract(document: object, path: JsonPath) -> object:
    """The value at ``path`` in a decoded JSON ``document``.

    :raises PathMissing: a key or index is not there, or a step meets a scalar.
    """
    value = document
    for depth, step in enumerate(path):
        try:
            if isinstance(value, list) and isinstance(step, int):  # noqa: SIM114 (types differ)
                value = value[step]
            elif isinstance(value, dict) and isinstance(step, str):
                value = value[step]
            else:
                raise PathMissing(f"no {_show(path[: depth + 1])}: {_kind(value)} there")
        except (KeyError, IndexError):
            raise PathMissing(f"no {_show(path[: depth + 1])} in the payload") from None
    return value


def _show(path: JsonPath) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"the {type(value).__name__} {value!r:.40}"
