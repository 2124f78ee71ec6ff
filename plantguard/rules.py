"""What a rule plugin provides: a rule type with a configuration schema, and rules
that evaluate whole arrays of the value table per scan.

A rule type is registered once (``plantguard_register_rules``).  Points opt in
through their ``rules:`` mapping in the site file (``rules: {limit: {hh: 90}}``);
the host validates each mapping with the type's :attr:`RuleType.config_model`
and hands the type every (point, config) pair at once, so the rule can lay the
configuration out as arrays and stay vectorised.

Some rules apply to the whole site without per-point settings (maintenance and
inspection due dates, read from the store's plans): a rule type provides them
from :meth:`RuleType.create_site_rule`, which receives a :class:`RuleContext`
with the store and the clock.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from .model import AlarmDefinition, Finding, Point, Site
from .table import ValueTable

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Rule", "RuleContext", "RuleType"]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a site-wide rule may use besides the value table."""

    site: Site
    table: ValueTable
    store: Store
    clock: Callable[[], float]


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

    def create_site_rule(self, context: RuleContext) -> Rule | None:
        """A rule that applies without per-point settings, or None (the default).

        Called once at start-up for every registered rule type, after the
        per-point rules are created.
        """
        return None
