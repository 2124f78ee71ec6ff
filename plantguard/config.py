"""Loading the site file: YAML in, a validated :class:`~plantguard.model.Site` out.

Every error names the file, the line and the field (``site.yaml:14:
areas[0].devices[1].driver: unknown driver 'modbuss' (known: modbus, sim)``),
because the people who edit site files are plant engineers at a terminal, not
Python programmers reading a traceback.  Errors are collected, not stopped at
the first, so one run shows everything to fix.

Validation has two layers: the core schema (:class:`Site` and its parts), then
each plugin's own models for the mappings it owns (a device's ``connection``
and its points' ``address`` by the driver type, ``rules.<name>`` by the rule
type, ``services.<name>`` by the service type).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
import yaml_rs
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from . import yamlsafe
from .model import Site

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "LoadedSite",
    "Location",
    "error_message",
    "format_path",
    "load_site",
    "parse_site",
]

PathPart = str | int
FieldPath = tuple[PathPart, ...]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a site file."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(Exception):
    """The site file is invalid; :attr:`issues` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def format_path(path: Iterable[PathPart]) -> str:
    """``("areas", 0, "devices")`` → ``areas[0].devices``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(slots=True)
class Location:
    """Line numbers of every node of a YAML document, by field path.

    Only an invalid site needs them, so they are worked out when first asked for
    (from ``text``, with PyYAML's composer), not while every site is parsed.
    """

    file: str
    text: str | None = None
    _lines: dict[FieldPath, int] | None = None

    @property
    def lines(self) -> dict[FieldPath, int]:
        if self._lines is None:
            self._lines = {}
            if self.text is not None:
                try:
                    node = _compose(self.text)
                except yaml.YAMLError:
                    node = None  # YAML 1.2 that PyYAML (1.1) cannot read: no line numbers
                if node is not None:
                    _index_lines(node, (), self._lines)
                self.text = None
        return self._lines

    def line_of(self, path: Sequence[PathPart]) -> int | None:
        """Line of the deepest node on ``path`` that exists in the file (1-based)."""
        lines = self.lines
        path = tuple(path)
        while path:
            if path in lines:
                return lines[path]
            path = path[:-1]
        return lines.get((), None)

    def issue(self, path: Sequence[PathPart], message: str) -> ConfigIssue:
        return ConfigIssue(self.file, self.line_of(path), format_path(path), message)


def _index_lines(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a complex key: refused by validation, never a field path
            key = key_node.value
            # The key's own line is where a user looks for a field, also for nested blocks.
            _index_lines(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), lines)


# libyaml's parser when PyYAML was built with it: the pure-Python one takes ~1 s per
# thousand points of a site file.
if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):
    """SafeLoader that rejects duplicate keys: YAML silently keeps the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _compose(text: str) -> yaml.Node | None:
    loader = _UniqueKeyLoader(text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def _parse_with_pyyaml(text: str, file: str) -> Any:
    """The slow, exact parse: PyYAML's messages for syntax errors and duplicate keys."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        return loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigIssue(file, line, "", f"YAML: {exc.problem or exc}")]) from exc
    except (ValueError, OverflowError) as exc:
        # PyYAML's timestamp and number constructors ("2023-13-45"); no mark to give.
        raise ConfigError([ConfigIssue(file, None, "", f"YAML: {exc}")]) from exc
    finally:
        loader.dispose()


def parse_yaml(text: str, file: str) -> tuple[Any, Location]:
    """Parse YAML (1.2 core schema), keeping what is needed for line numbers.

    A site of 100,000 points is an 11 MB file: PyYAML spends ~10 s and ~1 GB
    building its node tree, so documents are read with yaml-rs (a Rust YAML 1.2
    parser, ~15x faster).  A document it refuses (a syntax error, a duplicate
    key) is parsed again with PyYAML, whose errors name the line and the problem;
    line numbers for validation errors come from PyYAML too, only when needed.
    The limits of :mod:`plantguard.yamlsafe` are checked first.
    """
    location = Location(file, text)
    try:
        yamlsafe.check_text(text)
        yamlsafe.check_aliases(text)
        try:
            data = yaml_rs.loads(text)
        except (yaml_rs.YAMLDecodeError, ValueError, TypeError, RecursionError):
            data = None
        if not isinstance(data, dict):
            # Not a site (or several documents, which yaml-rs returns as a list):
            # PyYAML says exactly what is wrong.
            data = _parse_with_pyyaml(text, file)
        yamlsafe.check_numbers(text, data)
    except yamlsafe.UnsafeYaml as exc:
        raise ConfigError([_unsafe_issue(exc, location)]) from None
    return data, location


def _unsafe_issue(exc: yamlsafe.UnsafeYaml, location: Location) -> ConfigIssue:
    if exc.path:
        return location.issue(exc.path, exc.message)
    return ConfigIssue(location.file, exc.line, "", exc.message)


def validation_issues(
    exc: ValidationError, location: Location, prefix: Sequence[PathPart] = ()
) -> list[ConfigIssue]:
    """Map pydantic errors to file/line/field issues."""
    issues = []
    for err in exc.errors():
        loc = [*prefix, *(p for p in err["loc"] if not _is_pydantic_tag(p))]
        issues.append(location.issue(loc, error_message(err)))
    return issues


def error_message(err: ErrorDetails) -> str:
    """A pydantic error in the words a plant engineer reads (site files and imports)."""
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return err["msg"]


def _is_pydantic_tag(part: object) -> bool:
    # Validators in "before" mode may add function names to loc; keep only data paths.
    return isinstance(part, str) and part.startswith("function-")


@dataclass(frozen=True, slots=True)
class LoadedSite:
    """A validated site with the plugins' validated settings, ready for the engine."""

    site: Site
    location: Location
    connections: Mapping[str, BaseModel]
    addresses: Mapping[str, Mapping[str, BaseModel]]
    rule_configs: Mapping[str, Sequence[tuple[str, BaseModel]]]
    services: Mapping[str, BaseModel]
    #: Validated site-level ``rules.<name>`` settings, by rule name.
    site_rule_configs: Mapping[str, BaseModel] = field(default_factory=dict)


def load_site(
    path: str | Path, host: PluginRegistry, overrides: Mapping[str, Any] | None = None
) -> LoadedSite:
    """Read, parse and validate a site file with the plugins of ``host``."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            text = yamlsafe.decode(f.read(yamlsafe.MAX_BYTES + 1))
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(str(path), None, "", f"cannot read: {exc.strerror}")]
        ) from exc
    except yamlsafe.UnsafeYaml as exc:
        raise ConfigError([ConfigIssue(str(path), exc.line, "", exc.message)]) from None
    return parse_site(text, str(path), host, overrides)


def parse_site(
    text: str, file: str, host: PluginRegistry, overrides: Mapping[str, Any] | None = None
) -> LoadedSite:
    data, location = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise ConfigError([location.issue((), "the site file must be a mapping")])
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, location)) from exc
    loaded = _validate_plugins(site, location, host)
    _share_fields_sets([*site.points, *(a for d in loaded.addresses.values() for a in d.values())])
    return loaded


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class PluginRegistry:
    """The registries the plugin host fills; config validation only needs these."""

    def __init__(self) -> None:
        from .drivers import DriverType
        from .rules import RuleType
        from .services import ServiceType

        self.drivers: dict[str, DriverType] = {}
        self.rules: dict[str, RuleType] = {}
        self.services: dict[str, ServiceType] = {}


def _validate_plugins(site: Site, location: Location, host: PluginRegistry) -> LoadedSite:
    issues: list[ConfigIssue] = []
    connections: dict[str, BaseModel] = {}
    addresses: dict[str, dict[str, BaseModel]] = {}
    rule_configs: dict[str, list[tuple[str, BaseModel]]] = {}
    services: dict[str, BaseModel] = {}

    def check(model: type[BaseModel], data: Any, path: FieldPath) -> BaseModel | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            issues.extend(validation_issues(exc, location, path))
            return None

    for a_i, area in enumerate(site.areas):
        for d_i, device in enumerate(area.devices):
            dpath: FieldPath = ("areas", a_i, "devices", d_i)
            driver = host.drivers.get(device.driver)
            if device.poll_group not in site.poll_groups:
                issues.append(
                    location.issue(
                        (*dpath, "poll_group"),
                        f"unknown poll group {device.poll_group!r} "
                        f"(defined: {', '.join(sorted(site.poll_groups))})",
                    )
                )
            if driver is None:
                issues.append(
                    location.issue(
                        (*dpath, "driver"),
                        f"unknown driver {device.driver!r} (known: {_known(host.drivers)})",
                    )
                )
            else:
                conn = check(driver.connection_model, device.connection, (*dpath, "connection"))
                if conn is not None:
                    connections[device.id] = conn
            device_addresses: dict[str, BaseModel] = {}
            for p_i, point in enumerate(device.points):
                ppath: FieldPath = (*dpath, "points", p_i)
                if point.poll_group is not None and point.poll_group not in site.poll_groups:
                    issues.append(
                        location.issue(
                            (*ppath, "poll_group"), f"unknown poll group {point.poll_group!r}"
                        )
                    )
                if driver is not None:
                    addr = check(driver.address_model, point.address, (*ppath, "address"))
                    if addr is not None:
                        device_addresses[point.id] = addr
                for rule_name, rule_data in point.rules.items():
                    rule_type = host.rules.get(rule_name)
                    if rule_type is None:
                        issues.append(
                            location.issue(
                                (*ppath, "rules", rule_name),
                                f"unknown rule {rule_name!r} (known: {_known(host.rules)})",
                            )
                        )
                        continue
                    cfg = check(rule_type.config_model, rule_data, (*ppath, "rules", rule_name))
                    if cfg is not None:
                        rule_configs.setdefault(rule_name, []).append((point.id, cfg))
            addresses[device.id] = device_addresses
            if (
                driver is not None
                and device.id in connections
                and len(device_addresses) == len(device.points)
            ):
                try:
                    driver.validate_device(connections[device.id], device_addresses)
                except ValueError as exc:
                    issues.append(location.issue(dpath, str(exc)))

    for name, options in site.services.items():
        service_type = host.services.get(name)
        if service_type is None:
            issues.append(
                location.issue(
                    ("services", name), f"unknown service {name!r} (known: {_known(host.services)})"
                )
            )
            continue
        opts = check(service_type.options_model, options or {}, ("services", name))
        if opts is not None:
            services[name] = opts

    site_rule_configs = _validate_site_rules(site, location, host, check, issues)

    if issues:
        raise ConfigError(issues)
    return LoadedSite(
        site, location, connections, addresses, rule_configs, services, site_rule_configs
    )


def _share_fields_sets(models: Iterable[BaseModel]) -> None:
    """Let models that were given the same fields share one ``model_fields_set``.

    pydantic keeps, per instance, the set of fields the input named: ~730 bytes
    per point, more than the point's values, and the same few sets over and over
    (a site of 100,000 points has a handful).  Only frozen models share: nothing
    adds to their sets after validation (``model_copy`` copies its own).
    """
    shared: dict[tuple[type[BaseModel], frozenset[str]], set[str]] = {}
    for model in models:
        if not model.model_config.get("frozen"):
            continue
        fields = model.__pydantic_fields_set__
        one = shared.setdefault((type(model), frozenset(fields)), fields)
        if one is not fields:
            object.__setattr__(model, "__pydantic_fields_set__", one)


def _validate_site_rules(
    site: Site,
    location: Location,
    host: PluginRegistry,
    check: Callable[[type[BaseModel], Any, FieldPath], BaseModel | None],
    issues: list[ConfigIssue],
) -> dict[str, BaseModel]:
    """Site-level ``rules.<name>`` settings, validated by each rule type's site schema."""
    configs: dict[str, BaseModel] = {}
    for name, rule_data in site.rules.items():
        rule_type = host.rules.get(name)
        site_model = rule_type.site_config_model if rule_type is not None else None
        if site_model is None:
            why = "has no site-level settings" if rule_type else "is unknown"
            issues.append(
                location.issue(
                    ("rules", name), f"rule {name!r} {why} (known: {_known(host.rules)})"
                )
            )
            continue
        cfg = check(site_model, rule_data or {}, ("rules", name))
        if cfg is not None:
            configs[name] = cfg
    return configs


def _known(registry: Mapping[str, object]) -> str:
    return ", ".join(sorted(registry)) or "none loaded"
