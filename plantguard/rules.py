"""What a rule plugin provides: a rule type with a configuration schema, and rules
that evaluate whole arrays of the value table per scan.

A rule type is registered once (``plantguard_register_rules``).  Points opt in
through their ``rules:`` mapping in the site file (``rules: {limit: {hh: 90}}``);
the host validates each mapping with the type's :attr:`RuleType.config_model`
and hands the type every (point, config) pair at once, so the rule can lay the
configuration out as arrays and stay vectorised.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel

from .model import AlarmDefinition, Finding, Point, Site
from .table import ValueTable

__all__ = ["Rule", "RuleType"]


class Rule(abc.ABC):
    """A configured rule over a set of points; keeps its own state between scans."""

    @abc.abstractmethod
    def alarms(self) -> Sequence[AlarmDefinition]:
        """Every alarm this rule can raise, declared before the first scan."""

    @abc.abstractmethod
    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        """One scan: return findings only for alarms whose state changed."""


class RuleType(abc.ABC):
    #: Schema of the per-point ``rules.<name>`` mapping.
    config_model: ClassVar[type[BaseModel]]

    @abc.abstractmethod
    def create(
        self, site: Site, table: ValueTable, configs: Sequence[tuple[Point, BaseModel]]
    ) -> Rule:
        """Build the rule for all points that configured it (validated configs)."""
