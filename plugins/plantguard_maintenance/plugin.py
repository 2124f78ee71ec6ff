"""Registers the maintenance-due rule, like any third-party rule plugin."""

from __future__ import annotations

from plantguard import hookimpl
from plantguard.hookspecs import RegisterRule

from .rule import MaintenanceRuleType


@hookimpl
def plantguard_register_rules(register: RegisterRule) -> None:
    register("maintenance", MaintenanceRuleType())
