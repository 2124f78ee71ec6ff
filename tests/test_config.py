"""Site-file errors name the file, the line and the field."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from plantguard.config import ConfigError, LoadedSite, load_site
from plantguard.host import PluginHost

GOOD = textwrap.dedent(
    """\
    id: plant
    name: Test plant
    poll_groups:
      default: {interval: 1.0}
    areas:
      - id: utilities
        devices:
          - id: tank1
            name: Tank 1
            driver: modbus
            connection: {host: 127.0.0.1, port: 5020, unit: 2}
            info: {manufacturer: Acme, serial_number: T-1}
            points:
              - id: level
                unit: "%"
                address: {register: 0, type: float32}
                rules:
                  limit: {hh: 90, h: 80, deadband: 1}
              - id: pressure
                unit: bar
                address: {register: 2}
    """
)


def _errors(load: Callable[[str], LoadedSite], text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [str(i) for i in info.value.issues]


def test_valid_site_loads_with_global_point_ids(
    load_site_text: Callable[[str], LoadedSite],
) -> None:
    loaded = load_site_text(GOOD)
    assert [p.id for p in loaded.site.points] == ["tank1.level", "tank1.pressure"]
    assert loaded.site.devices[0].area_id == "utilities"
    assert loaded.site.points[0].device_id == "tank1"
    assert [pid for pid, _ in loaded.rule_configs["limit"]] == ["tank1.level"]


def test_wrong_type_names_line_and_field(load_site_text: Callable[[str], LoadedSite]) -> None:
    text = GOOD.replace("unit: bar", "unit: [bar]")
    errors = _errors(load_site_text, text)
    assert errors == [
        "<test site>:20: areas[0].devices[0].points[1].unit: Input should be a valid string"
    ]


def test_missing_field_names_its_parent_line(load_site_text: Callable[[str], LoadedSite]) -> None:
    text = GOOD.replace("        driver: modbus\n", "")
    errors = _errors(load_site_text, text)
    assert errors == ["<test site>:8: areas[0].devices[0].driver: required field is missing"]


def test_unknown_driver_plugin_is_named(load_site_text: Callable[[str], LoadedSite]) -> None:
    errors = _errors(load_site_text, GOOD.replace("driver: modbus", "driver: modbuss"))
    assert len(errors) == 1
    assert errors[0].startswith(
        "<test site>:10: areas[0].devices[0].driver: unknown driver 'modbuss'"
    )
    assert "modbus" in errors[0].split("known:")[1]


def test_unknown_rule_plugin_is_named(load_site_text: Callable[[str], LoadedSite]) -> None:
    errors = _errors(load_site_text, GOOD.replace("limit: {hh", "limits: {hh"))
    assert errors[0].startswith(
        "<test site>:18: areas[0].devices[0].points[0].rules.limits: unknown rule"
    )


def test_plugin_schema_errors_are_located(load_site_text: Callable[[str], LoadedSite]) -> None:
    text = GOOD.replace("address: {register: 2}", "address: {register: -2}").replace(
        "hh: 90, h: 80", "hh: 70, h: 80"
    )
    errors = _errors(load_site_text, text)
    assert any(
        e.startswith("<test site>:21: areas[0].devices[0].points[1].address.register:")
        for e in errors
    )
    assert any(
        e.startswith("<test site>:18: areas[0].devices[0].points[0].rules.limit:") and "hh=70" in e
        for e in errors
    ), errors


def test_unknown_field_and_all_errors_reported_at_once(
    load_site_text: Callable[[str], LoadedSite],
) -> None:
    text = GOOD.replace("name: Tank 1", "name: Tank 1\n        colour: red").replace(
        "interval: 1.0", "interval: -1"
    )
    errors = _errors(load_site_text, text)
    assert "<test site>:4: poll_groups.default.interval: Input should be greater than 0" in errors
    assert "<test site>:10: areas[0].devices[0].colour: unknown field" in errors


def test_yaml_syntax_and_duplicate_keys(load_site_text: Callable[[str], LoadedSite]) -> None:
    errors = _errors(
        load_site_text, GOOD.replace("name: Tank 1", "name: Tank 1\n        name: again")
    )
    assert errors[0].startswith("<test site>:10: YAML: duplicate key 'name' (first on line 9)")
    errors = _errors(load_site_text, "id: x\nareas: [\n")
    assert errors[0].startswith("<test site>:3: YAML:")


def test_site_files_are_yaml_1_2_and_several_documents_are_refused(
    load_site_text: Callable[[str], LoadedSite],
) -> None:
    # YAML 1.2: "no" is a string, not false (the "Norway problem" of YAML 1.1).
    loaded = load_site_text(GOOD.replace("name: Tank 1", "name: no"))
    assert loaded.site.devices[0].name == "no"
    errors = _errors(load_site_text, GOOD + "---\nid: second\n")
    assert errors[0].startswith("<test site>:")
    assert "found another document" in errors[0]


def test_duplicate_device_ids_and_unknown_poll_group(
    load_site_text: Callable[[str], LoadedSite],
) -> None:
    text = GOOD.replace("poll_groups:\n  default:", "poll_groups:\n  slow:")
    errors = _errors(load_site_text, text)
    assert errors[0].startswith(
        "<test site>:8: areas[0].devices[0].poll_group: unknown poll group 'default'"
    )


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    host = PluginHost()
    host.load_entry_points()
    host.start()
    site = tmp_path / "site.yaml"
    site.write_text(GOOD.replace("port: 5020", "port: many"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_site(site, host)
    assert str(info.value) == (
        f"{site}:11: areas[0].devices[0].connection.port: "
        "Input should be a valid integer, unable to parse string as an integer"
    )
    with pytest.raises(ConfigError, match="cannot read"):
        load_site(tmp_path / "missing.yaml", host)


def test_points_named_with_the_same_fields_share_one_fields_set(
    load_site_text: Callable[[str], LoadedSite],
) -> None:
    points = "\n".join(
        f"          - id: p{i}\n            unit: bar\n            address: {{register: {10 + 2 * i}}}"
        for i in range(4)
    )
    text = GOOD.replace(
        "          - id: pressure",
        f"{points}\n          - id: pressure",
    )
    loaded = load_site_text(text)
    same = [p for p in loaded.site.points if p.id.split(".")[1].startswith("p")][:4]
    assert len({id(p.__pydantic_fields_set__) for p in same}) == 1
    assert same[0].model_fields_set == {"id", "unit", "address", "device_id"}
    level = loaded.site.points[0]
    assert level.__pydantic_fields_set__ is not same[0].__pydantic_fields_set__
    # What each model says it was given is unchanged, and a copy does not leak into others.
    assert same[1].model_dump(exclude_unset=True) == {
        "id": "tank1.p1", "unit": "bar", "address": {"register": 12}, "device_id": "tank1",
    }  # fmt: skip
    copied = same[0].model_copy(update={"name": "renamed"})
    assert "name" in copied.model_fields_set
    assert "name" not in same[1].model_fields_set
    addresses = list(loaded.addresses["tank1"].values())
    assert len({id(a.__pydantic_fields_set__) for a in addresses[1:5]}) == 1
