"""The plugin host: entry points, check_pending, registration checks."""

from __future__ import annotations

import types

import pytest

from plantguard import hookimpl
from plantguard.hookspecs import RegisterRule
from plantguard.host import BUILTIN_PLUGINS, ENV_PLUGINS, PluginError, PluginHost
from plantguard_rules.limits import LimitRuleType


def _plugin(**functions: object) -> types.SimpleNamespace:
    return types.SimpleNamespace(**functions)


def test_misspelt_hook_fails_at_start_up() -> None:
    @hookimpl
    def plantguard_register_rule(register: RegisterRule) -> None:  # missing "s"
        register("never", LimitRuleType())

    host = PluginHost()
    host.register(_plugin(plantguard_register_rule=plantguard_register_rule), "typo")
    with pytest.raises(
        PluginError, match=r"plugin 'typo' implements an unknown hook.*plantguard_register_rule"
    ):
        host.start()
    assert "never" not in host.rules


def test_duplicate_names_name_both_plugins() -> None:
    @hookimpl
    def plantguard_register_rules(register: RegisterRule) -> None:
        register("limit", LimitRuleType())

    host = PluginHost()
    host.register("plantguard_rules.plugin", "rules")
    host.register(_plugin(plantguard_register_rules=plantguard_register_rules), "mine")
    with pytest.raises(PluginError, match="RuleType 'limit' registered by both 'rules' and 'mine'"):
        host.start()


@pytest.mark.parametrize(
    ("name", "obj", "message"),
    [
        ("Bad-Name", LimitRuleType(), "invalid name 'Bad-Name'"),
        ("ok", object(), "registered 'ok' as RuleType, got object"),
    ],
)
def test_registrations_are_validated(name: str, obj: object, message: str) -> None:
    @hookimpl
    def plantguard_register_rules(register: RegisterRule) -> None:
        register(name, obj)  # type: ignore[arg-type]

    host = PluginHost()
    host.register(_plugin(plantguard_register_rules=plantguard_register_rules), "mine")
    with pytest.raises(PluginError, match=message):
        host.start()


def test_builtins_come_from_the_entry_point_group() -> None:
    host = PluginHost()
    host.load_entry_points()
    host.start()
    names = {name for name, _, _ in host.describe()}
    assert set(BUILTIN_PLUGINS) <= names
    assert "limit" in host.rules
    rows = {name: (hooks, provided) for name, hooks, provided in host.describe()}
    hooks, provided = rows["rules"]
    assert hooks == ["plantguard_register_commands", "plantguard_register_rules"]
    assert {"ruletype:limit", "ruletype:multivariate", "command:detect"} <= set(provided)
    assert rows["maintenance"] == (["plantguard_register_rules"], ["ruletype:maintenance"])


def test_environment_restricts_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PLUGINS, "rules")
    host = PluginHost()
    host.load_entry_points()
    host.start()
    assert "limit" in host.rules
    assert "maintenance" not in host.rules  # another plugin, not loaded
    assert host.drivers == {}
    monkeypatch.setenv(ENV_PLUGINS, "rules,nosuch")
    with pytest.raises(PluginError, match="names unknown plugins: nosuch"):
        PluginHost().load_entry_points()
