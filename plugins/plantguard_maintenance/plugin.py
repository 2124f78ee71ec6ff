"""Registers the maintenance-due rule, like any third-party rule plugin."""

from __future__ import annotations

from plantguard.plugin import RegisterRule, hookimpl

from .rule import MaintenanceRuleType


@hookimpl
def plantguard_register_rules(register: RegisterRule) -> None:
    register("maintenance", MaintenanceRuleType())
