"""What a rule plugin provides: a rule type with a configuration schema, and rules
that evaluate whole arrays of the value table per scan.

A rule type is registered once (``plantguard_register_rules``).  Points opt in
through their ``rules:`` mapping in the site file (``rules: {limit: {hh: 90}}``);
the host validates each mapping with the type's :attr:`RuleType.config_model`
and hands the type every (point, config) pair at once, so the rule can lay the
configuration out as arrays and stay vectorised.

Some rules are not about one point — a failed-login burst, a point group's
multivariate model.  Their settings live in the site file's top-level
``rules.<name>`` mapping, validated with :attr:`RuleType.site_config_model`,
and reach the rule through the :class:`RuleContext` that
:meth:`RuleType.create` receives, together with what the engine provides beyond
the value table (the security event bus, the store, the clock, the directory
that relative paths such as model files are resolved against).  A rule that
needs none of it ignores the context; code outside the engine (tests, offline
replay) passes ``RuleContext()``.

A setting a rule cannot work with is refused by raising
:class:`~plantguard.build.SettingError` from :meth:`RuleType.create` (naming the
point and the field, so ``plantguard check`` shows its line); a setting that works
but cannot do everything yet (a model not trained) is reported with
:meth:`RuleContext.warn`.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import BaseModel

from .events import EventBus, default_bus
from .model import AlarmDefinition, Finding, Point, Site
from .table import ValueTable

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Rule", "RuleContext", "RuleType", "SettingWarning"]

log = logging.getLogger(__name__)


class SettingWarning(Protocol):
    """How a rule reports a setting that works but will not do all it should yet."""

    def __call__(
        self, message: str, *, point: str | None = None, field: Sequence[str | int] = ()
    ) -> None: ...


def _log_warning(
    message: str, *, point: str | None = None, field: Sequence[str | int] = ()
) -> None:
    where = ".".join(str(f) for f in field)
    prefix = f"point {point}: " if point else ""
    log.warning("%s%s%s", prefix, f"{where}: " if where else "", message)


class Rule(abc.ABC):
    """A configured rule over a set of points; keeps its own state between scans."""

    @abc.abstractmethod
    def alarms(self) -> Sequence[AlarmDefinition]:
        """Every alarm this rule can raise, declared before the first scan."""

    @abc.abstractmethod
    def evaluate(self, table: ValueTable, now: float) -> Sequence[Finding]:
        """One scan: return findings only for alarms whose state changed."""


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What the engine gives a rule besides the site and the value table.

    ``site_config`` is the validated site-level ``rules.<name>`` mapping of this
    rule type (``None`` when the site file has none); ``base_dir`` is the site
    file's directory, against which rules resolve relative paths.
    """

    site_config: BaseModel | None = None
    base_dir: Path = field(default_factory=Path)
    events: EventBus = field(default_factory=default_bus)
    #: The gateway's store, for rules that read records or history (maintenance due).
    store: Store | None = None
    clock: Callable[[], float] = time.time
    #: Report a setting that works but will not do all the user expects yet (a model
    #: file not trained): ``warn(message, point=…, field=(…))``, ``point`` and
    #: ``field`` as for :class:`~plantguard.build.SettingError`.  The engine shows
    #: it at its line in the site file (``plantguard check`` prints it, ``run`` logs
    #: it); the default logs it.
    warn: SettingWarning = _log_warning

    def resolve(self, path: str | Path) -> Path:
        """``path`` relative to the site file's directory (absolute paths unchanged)."""
        return self.base_dir / Path(path).expanduser()


class RuleType(abc.ABC):
    #: Schema of the per-point ``rules.<name>`` mapping.
    config_model: ClassVar[type[BaseModel]]
    #: Schema of the site-level ``rules.<name>`` mapping; ``None``: the rule has none.
    site_config_model: ClassVar[type[BaseModel] | None] = None

    @abc.abstractmethod
    def create(
        self,
        site: Site,
        table: ValueTable,
        configs: Sequence[tuple[Point, BaseModel]],
        context: RuleContext,
    ) -> Rule:
        """Build the rule for all points that configured it.

        ``configs`` holds every (point, validated ``config_model``) pair, in site
        order; it may be empty for a rule configured only at site level
        (``context.site_config``).  Must not open devices, ports or the store
        beyond reading ``context.store``: ``plantguard check`` calls it too.

        Raise :class:`~plantguard.build.SettingError` for a setting the rule cannot
        work with (a limit its point does not set, a file that cannot be read),
        naming the point and the field: ``check`` and ``run`` show it at its line
        in the site file and the gateway does not start.  Any other exception
        refuses the site as well, placed less precisely.
        """

    def create_site_rule(self, context: RuleContext) -> Rule | None:
        """A rule that applies without any settings in the site file, or None (the default).

        Called once at start-up for every registered rule type that no point and
        no site-level mapping configured — e.g. maintenance-due checks, whose plans
        are records in ``context.store``.
        """
        return None
