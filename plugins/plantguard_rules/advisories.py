"""Vulnerability advisory files: which firmware versions of which devices are affected.

The format (YAML or JSON, documented in ``docs/rules.md``)::

    advisories:
      - id: PGSA-2025-001              # required, unique
        title: Modbus stack overflow   # required
        severity: high                 # low | medium | high | critical
        manufacturer: Acme             # optional; case-insensitive, * and ? globs
        model: "PX-1*"                 # optional; same matching
        affected: ["<2.4.1", ">=3.0,<3.0.7", "==4.1.*"]   # any one range matches
        fixed: "2.4.1"                 # optional, shown in the alarm
        url: https://example.com/psirt/PGSA-2025-001      # optional

A range is comma-separated clauses that must all hold; a clause is an operator
(``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``; none means ``==``) and a version.
Versions compare by their numeric parts (``v2.4.1-rc1`` is 2.4.1); ``==4.1.*``
matches every 4.1 release.  A file that does not parse is rejected whole at
start-up, with the entry and field that are wrong.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "Advisory",
    "AdvisoryError",
    "AdvisoryFile",
    "load_advisories",
    "parse_version",
    "version_matches",
]

_CLAUSE = re.compile(r"^\s*(<=|>=|==|!=|<|>)?\s*([0-9][0-9A-Za-z.\-+_]*?)(\.\*)?\s*$")


class AdvisoryError(ValueError):
    """An advisory file that cannot be used."""


def parse_version(text: str) -> tuple[int, ...]:
    """Numeric parts of a version string: ``"v2.4.1-rc1"`` → ``(2, 4, 1)``."""
    head = re.match(r"^\D*([0-9]+(?:\.[0-9]+)*)", text.strip())
    if head is None:
        raise ValueError(f"version {text!r} has no numeric part")
    return tuple(int(p) for p in head.group(1).split("."))


def _pad(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = max(len(a), len(b))
    return a + (0,) * (n - len(a)), b + (0,) * (n - len(b))


def _clause_holds(version: tuple[int, ...], clause: str) -> bool:
    m = _CLAUSE.match(clause)
    if m is None:
        raise ValueError(f"cannot read version clause {clause!r}")
    op, text, wildcard = m.group(1) or "==", m.group(2), m.group(3)
    target = parse_version(text)
    if wildcard:
        if op not in ("==", "!="):
            raise ValueError(f"wildcard only with == or != in {clause!r}")
        prefix = version[: len(target)] == target
        return prefix if op == "==" else not prefix
    a, b = _pad(version, target)
    return {
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
        "==": a == b,
        "!=": a != b,
    }[op]


def version_matches(version: str, ranges: Sequence[str]) -> bool:
    """Whether ``version`` is in any of ``ranges`` (comma = and, list = or)."""
    parsed = parse_version(version)
    return any(all(_clause_holds(parsed, c) for c in r.split(",")) for r in ranges)


def _glob(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.casefold(), pattern.casefold())


class Advisory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    severity: Literal["low", "medium", "high", "critical"] = "high"
    manufacturer: str | None = None
    model: str | None = None
    affected: list[str] = Field(min_length=1)
    fixed: str | None = None
    url: str | None = None

    @field_validator("affected")
    @classmethod
    def _ranges_parse(cls, ranges: list[str]) -> list[str]:
        for r in ranges:
            for clause in r.split(","):
                _clause_holds((0,), clause)  # raises on a malformed clause
        return ranges

    def applies(self, manufacturer: str, model: str, firmware: str) -> bool:
        if not firmware:
            return False
        if self.manufacturer is not None and not _glob(self.manufacturer, manufacturer):
            return False
        if self.model is not None and not _glob(self.model, model):
            return False
        try:
            return version_matches(firmware, self.affected)
        except ValueError:
            return False  # a device firmware string without a version number


class AdvisoryFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    advisories: list[Advisory] = Field(default_factory=list)

    @field_validator("advisories")
    @classmethod
    def _unique(cls, items: list[Advisory]) -> list[Advisory]:
        seen: set[str] = set()
        for a in items:
            if a.id in seen:
                raise ValueError(f"advisory id {a.id!r} is used twice")
            seen.add(a.id)
        return items

    def matching(self, manufacturer: str, model: str, firmware: str) -> list[Advisory]:
        return [a for a in self.advisories if a.applies(manufacturer, model, firmware)]


def load_advisories(path: Path) -> AdvisoryFile:
    """Read and validate an advisory file (``.json``, else YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AdvisoryError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise AdvisoryError(f"{path}:{exc.lineno}: JSON: {exc.msg}") from exc
    except yaml.MarkedYAMLError as exc:  # one line: where, and what is wrong
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise AdvisoryError(f"{where}: YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise AdvisoryError(f"{path}: YAML: {exc}") from exc
    try:
        return AdvisoryFile.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise AdvisoryError(f"{path}: {problems}") from exc
