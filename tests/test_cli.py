"""The command line: check, plugins, run, alarms and trend, as a user types them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from plantguard.cli import demo_site_text, main
from plantguard.testing import free_tcp_port


def _demo_site(tmp_path: Path, *, scenario: str = "none") -> Path:
    site = tmp_path / "site.yaml"
    site.write_text(
        demo_site_text(
            opcua_port=free_tcp_port(),
            modbus_port=free_tcp_port(),
            db=str(tmp_path / "site.db"),
            scenario=scenario,
        ),
        encoding="utf-8",
    )
    return site


def test_check_accepts_the_demo_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _demo_site(tmp_path)
    assert main(["check", str(site)]) == 0
    out = capsys.readouterr().out
    assert f"{site}: OK — site 'demo': 2 areas, 3 devices, 7 points" in out
    assert "services: sim, opcua" in out


def test_check_reports_every_error_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _demo_site(tmp_path)
    text = site.read_text(encoding="utf-8")
    text = text.replace("driver: modbus", "driver: modbuss", 1).replace("unit: 3", "unit: 300")
    site.write_text(text, encoding="utf-8")
    assert main(["check", str(site)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "plantguard: invalid configuration:"
    lines = text.splitlines()
    driver_line = next(i for i, line in enumerate(lines, 1) if "modbuss" in line)
    assert err[1].startswith(
        f"{site}:{driver_line}: areas[0].devices[0].driver: unknown driver 'modbuss'"
    )
    assert any(".connection.unit: Input should be less than or equal to 255" in e for e in err[2:])


def test_plugins_lists_builtins_with_hooks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    plugins = {
        lines[i]: (lines[i + 1].split(":", 1)[1].strip(), lines[i + 2].split(":", 1)[1].strip())
        for i, line in enumerate(lines)
        if not line.startswith(" ")
    }
    assert plugins["modbus"] == ("plantguard_register_drivers", "drivertype:modbus")
    hooks, provided = plugins["rules"]
    assert hooks == "plantguard_register_commands, plantguard_register_rules"
    assert "ruletype:limit" in provided.split(", ")
    assert "command:detect" in provided.split(", ")
    assert plugins["maintenance"] == ("plantguard_register_rules", "ruletype:maintenance")
    assert plugins["sim"] == (
        "plantguard_demo_site, plantguard_register_services",
        "servicetype:sim",
    )
    assert plugins["opcua"] == ("plantguard_register_services", "servicetype:opcua")


def test_run_for_a_duration_then_read_alarms_and_trend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _demo_site(tmp_path)
    # Without the OPC UA service (tested elsewhere) the run polls from its first second.
    data = yaml.safe_load(site.read_text(encoding="utf-8"))
    del data["services"]["opcua"]
    site.write_text(yaml.safe_dump(data), encoding="utf-8")
    db = tmp_path / "run.db"
    assert (
        main(
            [
                "--log-level",
                "warning",
                "run",
                str(site),
                "--db",
                str(db),
                "--duration",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "PlantGuard: site 'demo' — 3 devices, 7 points" in out
    assert "stopped cleanly" in out
    assert main(["alarms", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "tank1.level.limit" in out
    assert "normal" in out
    assert main(["trend", "tank1.level", "--db", str(db), "--last", "600"]) == 0
    captured = capsys.readouterr()
    n = int(captured.err.split()[0])
    assert n >= 1  # at least the first value (history keeps changes only)
    assert len(captured.out.splitlines()) == n


def test_missing_site_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert (
        f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"
        in capsys.readouterr().err
    )
