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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
import yaml_rs
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from . import yamlsafe
from .errors import ConfigurationError
from .model import Device, Point, Site

if TYPE_CHECKING:
    from .host import PluginRegistry

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
_T = TypeVar("_T")
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


class ConfigError(ConfigurationError):
    """The site file is invalid; :attr:`issues` lists every problem found (exit status 2)."""

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
        # Every error at once: the plugins' checks run on the site without the
        # site-level settings that failed (a bad scan_interval must not hide the rest).
        issues = validation_issues(exc, location)
        if (partial := _without_failed_settings(data, exc)) is not None:
            try:
                _validate_plugins(partial, location, host)
            except ConfigError as more:
                issues += more.issues
        issues.sort(key=lambda i: (i.line is None, i.line or 0))
        raise ConfigError(issues) from exc
    if not site.devices:
        raise ConfigError([location.issue(("areas",), "the site has no devices")])
    loaded = _validate_plugins(site, location, host)
    _share_fields_sets([*site.points, *(a for d in loaded.addresses.values() for a in d.values())])
    return loaded


def _without_failed_settings(data: dict[str, Any], exc: ValidationError) -> Site | None:
    """The site of ``data`` with the top-level values that failed (``scan_interval:
    -1``) left at their defaults, if that validates.  None when an error is inside a
    mapping (its other entries would go too, and the issues they cause be misleading)
    or at the site's id or areas."""
    errors = exc.errors()
    if any(len(err["loc"]) != 1 for err in errors):
        return None
    failed = {err["loc"][0] for err in errors}
    if failed & {"id", "areas"}:
        return None
    try:
        return Site.model_validate({k: v for k, v in data.items() if k not in failed})
    except ValidationError:
        return None


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validate_plugins(site: Site, location: Location, host: PluginRegistry) -> LoadedSite:
    """The mappings plugins own, each validated by the plugin type that owns it;
    every problem is collected before one :class:`ConfigError` is raised."""
    check = _Checker(location)
    connections: dict[str, BaseModel] = {}
    addresses: dict[str, dict[str, BaseModel]] = {}
    rule_configs: dict[str, list[tuple[str, BaseModel]]] = {}
    for a_i, area in enumerate(site.areas):
        for d_i, device in enumerate(area.devices):
            connection, addresses[device.id] = _validate_device(
                site,
                device,
                ("areas", a_i, "devices", d_i),
                host,
                check=check,
                rule_configs=rule_configs,
            )
            if connection is not None:
                connections[device.id] = connection
    services = _validate_services(site, host, check)
    site_rule_configs = _validate_site_rules(site, host, check)
    if check.issues:
        raise ConfigError(check.issues)
    return LoadedSite(
        site, location, connections, addresses, rule_configs, services, site_rule_configs
    )


@dataclass(slots=True)
class _Checker:
    """Collects the issues of one site file."""

    location: Location
    issues: list[ConfigIssue] = field(default_factory=list)

    def add(self, path: Sequence[PathPart], message: str) -> None:
        self.issues.append(self.location.issue(path, message))

    def model(self, model: type[BaseModel], data: Any, path: FieldPath) -> BaseModel | None:
        """``data`` validated with ``model``, or None with its errors collected."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self.issues.extend(validation_issues(exc, self.location, path))
            return None

    def lookup(
        self, registry: Mapping[str, _T], what: str, name: str, path: FieldPath
    ) -> _T | None:
        """The plugin type registered as ``name``, or None with an "unknown" issue."""
        found = registry.get(name)
        if found is None:
            self.add(path, f"unknown {what} {name!r} (known: {_known(registry)})")
        return found


def _validate_device(
    site: Site,
    device: Device,
    path: FieldPath,
    host: PluginRegistry,
    *,
    check: _Checker,
    rule_configs: dict[str, list[tuple[str, BaseModel]]],
) -> tuple[BaseModel | None, dict[str, BaseModel]]:
    """One device: its poll group, its driver's ``connection``, its points, then the
    driver's checks across them.  Returns the connection and the points' addresses."""
    if device.poll_group not in site.poll_groups:
        check.add(
            (*path, "poll_group"),
            f"unknown poll group {device.poll_group!r} "
            f"(defined: {', '.join(sorted(site.poll_groups))})",
        )
    driver = check.lookup(host.drivers, "driver", device.driver, (*path, "driver"))
    connection = (
        check.model(driver.connection_model, device.connection, (*path, "connection"))
        if driver is not None
        else None
    )
    addresses: dict[str, BaseModel] = {}
    for p_i, point in enumerate(device.points):
        point_path: FieldPath = (*path, "points", p_i)
        if point.poll_group is not None and point.poll_group not in site.poll_groups:
            check.add((*point_path, "poll_group"), f"unknown poll group {point.poll_group!r}")
        if driver is not None:
            address = check.model(driver.address_model, point.address, (*point_path, "address"))
            if address is not None:
                addresses[point.id] = address
        _validate_point_rules(point, point_path, host, check, rule_configs)
    if driver is not None and connection is not None and len(addresses) == len(device.points):
        try:
            driver.validate_device(connection, addresses)
        except ValueError as exc:
            check.add(path, str(exc))
    return connection, addresses


def _validate_point_rules(
    point: Point,
    path: FieldPath,
    host: PluginRegistry,
    check: _Checker,
    rule_configs: dict[str, list[tuple[str, BaseModel]]],
) -> None:
    """A point's ``rules.<name>`` mappings, each by its rule type, added to ``rule_configs``."""
    for rule_name, rule_data in point.rules.items():
        rule_path: FieldPath = (*path, "rules", rule_name)
        rule_type = check.lookup(host.rules, "rule", rule_name, rule_path)
        if rule_type is not None:
            cfg = check.model(rule_type.config_model, rule_data, rule_path)
            if cfg is not None:
                rule_configs.setdefault(rule_name, []).append((point.id, cfg))


def _validate_services(site: Site, host: PluginRegistry, check: _Checker) -> dict[str, BaseModel]:
    """``services.<name>`` options, each by its service type."""
    services: dict[str, BaseModel] = {}
    for name, options in site.services.items():
        service_type = check.lookup(host.services, "service", name, ("services", name))
        if service_type is not None:
            opts = check.model(service_type.options_model, options or {}, ("services", name))
            if opts is not None:
                services[name] = opts
    return services


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


def _validate_site_rules(site: Site, host: PluginRegistry, check: _Checker) -> dict[str, BaseModel]:
    """Site-level ``rules.<name>`` settings, validated by each rule type's site schema."""
    configs: dict[str, BaseModel] = {}
    for name, rule_data in site.rules.items():
        rule_type = host.rules.get(name)
        site_model = rule_type.site_config_model if rule_type is not None else None
        if site_model is None:
            why = "has no site-level settings" if rule_type else "is unknown"
            check.add(("rules", name), f"rule {name!r} {why} (known: {_known(host.rules)})")
            continue
        cfg = check.model(site_model, rule_data or {}, ("rules", name))
        if cfg is not None:
            configs[name] = cfg
    return configs


def _known(registry: Mapping[str, object]) -> str:
    return ", ".join(sorted(registry)) or "none loaded"
