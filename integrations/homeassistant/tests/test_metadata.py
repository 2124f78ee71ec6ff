"""Strings, translations, icons and actions name the same things, and the quality scale is
gold (what hassfest checks for integrations in Home Assistant core)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeassistant.util.yaml import load_yaml_dict

from custom_components.plantguard import services

COMPONENT = Path(__file__).parents[1] / "custom_components" / "plantguard"


def _json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((COMPONENT / name).read_text(encoding="utf-8"))
    return data


def _keys(tree: Any, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return {prefix}
    return {k for key, value in tree.items() for k in _keys(value, f"{prefix}/{key}")}


def test_english_translation_is_the_strings() -> None:
    assert _json("translations/en.json") == _json("strings.json")


def test_chinese_translation_is_complete() -> None:
    assert _keys(_json("translations/zh-Hans.json")) == _keys(_json("strings.json"))


def test_every_action_has_fields_strings_and_an_icon() -> None:
    described = load_yaml_dict(str(COMPONENT / "services.yaml"))
    strings = _json("strings.json")["services"]
    icons = _json("icons.json")["services"]
    assert set(described) == set(strings) == set(icons)
    for name, action in described.items():
        assert set(action["fields"]) == set(strings[name]["fields"]), name
    assert set(services.ALARM_ACTIONS) | {"record_maintenance", "report_hazard"} == set(described)


def test_every_refusal_has_a_message() -> None:
    exceptions = _json("strings.json")["exceptions"]
    for _cls, key in [*services._REFUSALS.values(), *services._HAZARD_REFUSALS.values()]:
        assert key in exceptions


def test_quality_scale_is_gold_but_for_brands() -> None:
    rules = load_yaml_dict(str(COMPONENT / "quality_scale.yaml"))["rules"]
    status = {
        name: rule if isinstance(rule, str) else rule["status"] for name, rule in rules.items()
    }
    assert {name for name, value in status.items() if value == "todo"} == {"brands"}
    assert all(rule.get("comment") for rule in rules.values() if isinstance(rule, dict))
    assert all(isinstance(rule, dict) for name, rule in rules.items() if status[name] != "done")
