"""Built-in rule types, registered like any third-party rule plugin."""

from __future__ import annotations

from plantguard import hookimpl
from plantguard.hookspecs import RegisterRule

from .limits import LimitRuleType


@hookimpl
def plantguard_register_rules(register: RegisterRule) -> None:
    register("limit", LimitRuleType())
