"""Hook implementations of plantguard_risk (registered through the ``plantguard`` entry-point group).

* commands: ``plantguard risks …``, ``plantguard hazards …``, ``plantguard index``;
* the ``hazards`` rule (alarms for major and overdue hidden dangers, candidates
  from failed inspections, chattering and standing alarms, detection flags and
  overdue plans), which runs without settings wherever there is a store;
* the ``safety_index`` driver and service: the early-warning index and its
  components as points of a virtual device, so history, OPC UA and Home
  Assistant get them the way they get any point.
"""

from __future__ import annotations

from plantguard.plugin import (
    RegisterCommand,
    RegisterDriver,
    RegisterRule,
    RegisterService,
    hookimpl,
)

from . import cli
from .device import DRIVER, IndexDriverType, IndexServiceType
from .rules import HazardRuleType


@hookimpl
def plantguard_register_commands(register: RegisterCommand) -> None:
    register("risks", "the risk register (安全风险分级管控)", cli.configure_risks, cli.run)
    register(
        "hazards",
        "hidden dangers from report to verified closure (隐患排查治理)",
        cli.configure_hazards,
        cli.run,
    )
    register(
        "index",
        "the early-warning index and its components now",
        cli.configure_index,
        cli.run_index,
    )


@hookimpl
def plantguard_register_rules(register: RegisterRule) -> None:
    register("hazards", HazardRuleType())


@hookimpl
def plantguard_register_drivers(register: RegisterDriver) -> None:
    register(DRIVER, IndexDriverType())


@hookimpl
def plantguard_register_services(register: RegisterService) -> None:
    register(DRIVER, IndexServiceType())
