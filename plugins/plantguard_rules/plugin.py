"""Built-in rule types and the ``detect`` / ``train`` commands, registered like any
third-party plugin."""

from __future__ import annotations

from plantguard.plugin import RegisterCommand, RegisterRule, hookimpl

from . import detect_cli, train_cli
from .drift import CusumRuleType, EwmaRuleType
from .forecast import ForecastRuleType
from .limits import LimitRuleType
from .multivariate import MultivariateRuleType
from .rate import RateRuleType
from .security import security_rule_types
from .sensor_range import RangeRuleType
from .stale import StaleRuleType
from .stuck import StuckRuleType


@hookimpl
def plantguard_register_rules(register: RegisterRule) -> None:
    register("limit", LimitRuleType())
    register("rate", RateRuleType())
    register("stuck", StuckRuleType())
    register("stale", StaleRuleType())
    register("range", RangeRuleType())
    register("ewma", EwmaRuleType())
    register("cusum", CusumRuleType())
    register("multivariate", MultivariateRuleType())
    register("forecast", ForecastRuleType())
    for name, rule_type in security_rule_types().items():
        register(name, rule_type)


@hookimpl
def plantguard_register_commands(register: RegisterCommand) -> None:
    register(
        "detect",
        "fit and score multivariate detection models on CSV files (offline analysis)",
        detect_cli.configure,
        detect_cli.run,
    )
    register(
        "train",
        "fit the multivariate and drift models of a site from the store's history",
        train_cli.configure,
        train_cli.run,
    )
