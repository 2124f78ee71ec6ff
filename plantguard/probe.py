"""Poll every device of a site once and say what looks wrong (``plantguard probe``).

Why: at commissioning, and when a value looks odd in an HMI, the question is
"what does the device actually send?" — before rules, alarms and history get
in the way.  A probe creates each device's driver exactly as ``plantguard run``
does (through its :class:`~plantguard.drivers.DriverType`), connects, reads
every point once in the poll groups the gateway would use, asks the device who
it is, and closes.  It never writes.

Each point is judged on its own (:func:`judge_point`): a value outside the
point's ``range``, a ``limit`` rule setting outside that range, a value of
exactly 0, a register at its type's extreme (``FFFF``, ``FFFFFFFF``, a signed
minimum or maximum — what a device sends for "no sensor" or "overflow"), NaN or
±Inf, a Bad quality, and the exception code of the request that failed it.
Raw registers and exception codes come from drivers that offer the optional
:meth:`~plantguard.drivers.DeviceDriver.probe` (the Modbus driver does); other
drivers are probed through :meth:`~plantguard.drivers.DeviceDriver.read`:
scaled values and quality.

A device that cannot be connected, or stops answering (the driver raises
:class:`~plantguard.drivers.DriverError`, or the probe's time runs out), has
*not answered*; a device that answers with exception codes has answered, and is
flagged.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import ConfigError, LoadedSite
from .drivers import DeviceDriver, DriverError, RawPoint, RawRequest
from .model import Device, Point, Quality

if TYPE_CHECKING:
    from .host import PluginRegistry

__all__ = [
    "DEFAULT_TIMEOUT",
    "LIMIT_NAMES",
    "DeviceReport",
    "Flag",
    "PointReport",
    "judge_point",
    "limits_of",
    "probe_site",
    "raw_text",
    "report_document",
]

log = logging.getLogger(__name__)

#: Seconds a device gets for connect, reads and identification together.
DEFAULT_TIMEOUT = 10.0
#: The settings of the ``limit`` rule shown and checked against the range, low to high.
LIMIT_NAMES = ("ll", "l", "h", "hh")
_LIMIT_RULE = "limit"
#: Integer types: (bits, signed).
_INTEGERS = {
    "int16": (16, True),
    "uint16": (16, False),
    "int32": (32, True),
    "uint32": (32, False),
    "int64": (64, True),
    "uint64": (64, False),
}
_NOT_NUMBERS = frozenset({"bool", "bits", "string"})


@dataclass(frozen=True, slots=True)
class Flag:
    """Something suspicious: a stable ``code`` for machines, a ``text`` for people.

    Codes: ``no_answer``, ``exception``, ``bad_quality``, ``not_a_number``,
    ``out_of_range``, ``limit_outside_range``, ``zero``, ``type_max``, ``type_min``,
    ``identify_failed``.
    """

    code: str
    text: str


@dataclass(slots=True)
class PointReport:
    """One point after the probe: what was read and what is suspicious about it."""

    point: Point
    limits: dict[str, float]
    value: float = math.nan
    quality: int | None = None  # None: not read (the device did not answer)
    raw: RawPoint | None = None  # None: the driver offers no raw data
    reason: str = ""  # why the driver says the point is Bad (its ``faults``)
    request: RawRequest | None = None  # the last request that read this point
    flags: list[Flag] = field(default_factory=list)

    @property
    def quality_name(self) -> str:
        if self.quality is None:
            return "NOT_READ"
        try:
            return Quality(self.quality).name
        except ValueError:
            return str(self.quality)


@dataclass(slots=True)
class DeviceReport:
    """One device after the probe."""

    device: Device
    endpoint: str = ""
    answered: bool = False
    error: str = ""  # why the device did not answer
    raw: bool = False  # the driver gave raw data (registers, requests)
    identity: dict[str, str] = field(default_factory=dict)
    points: list[PointReport] = field(default_factory=list)
    requests: list[RawRequest] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)

    @property
    def suspicious(self) -> list[PointReport]:
        return [p for p in self.points if p.flags]


def limits_of(loaded: LoadedSite) -> dict[str, dict[str, float]]:
    """The ``limit`` rule's ``ll``/``l``/``h``/``hh`` of each point that configures it."""
    limits: dict[str, dict[str, float]] = {}
    for point_id, config in loaded.rule_configs.get(_LIMIT_RULE, ()):
        data = config.model_dump()
        limits[point_id] = {
            name: float(data[name])
            for name in LIMIT_NAMES
            if isinstance(data.get(name), int | float) and not isinstance(data.get(name), bool)
        }
    return limits


async def probe_site(
    loaded: LoadedSite,
    host: PluginRegistry,
    *,
    devices: Iterable[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[DeviceReport]:
    """Probe the devices of ``loaded`` (those named in ``devices``, default all) at once.

    :raises KeyError: a name in ``devices`` is not a device of the site.
    :raises ConfigError: a driver type refused a device's settings.
    """
    site = loaded.site
    by_id = {d.id: d for d in site.devices}
    chosen = list(by_id) if devices is None else list(dict.fromkeys(devices))
    unknown = [d for d in chosen if d not in by_id]
    if unknown:
        raise KeyError(", ".join(unknown))
    limits = limits_of(loaded)
    drivers = _create_drivers(loaded, host, [by_id[d] for d in chosen])
    jobs = []
    for device_id in chosen:
        device = by_id[device_id]
        connection = loaded.connections[device.id]
        driver = drivers[device.id]
        groups: dict[str, list[Point]] = {}
        for point in device.points:
            groups.setdefault(site.poll_group_of(device, point), []).append(point)
        report = DeviceReport(device, endpoint=_endpoint(connection))
        report.points = [PointReport(p, limits.get(p.id, {})) for p in device.points]
        jobs.append(_probe_device(report, driver, list(groups.values()), timeout))
    return list(await asyncio.gather(*jobs))


def _create_drivers(
    loaded: LoadedSite, host: PluginRegistry, devices: Sequence[Device]
) -> dict[str, DeviceDriver]:
    """Each device's driver, as the engine creates it (no I/O).

    :raises ConfigError: a driver type refused a device's settings, as ``run`` would.
    """
    paths = {
        device.id: ("areas", a, "devices", d)
        for a, area in enumerate(loaded.site.areas)
        for d, device in enumerate(area.devices)
    }
    drivers: dict[str, DeviceDriver] = {}
    issues = []
    for device in devices:
        try:
            drivers[device.id] = host.drivers[device.driver].create(
                device, loaded.connections[device.id], loaded.addresses[device.id]
            )
        except Exception as exc:  # a plugin's refusal, whatever its type: a site problem
            message = f"driver {device.driver!r} cannot work with this device: {exc}"
            issues.append(loaded.location.issue(paths[device.id], message))
    if issues:
        raise ConfigError(issues)
    return drivers


def _endpoint(connection: object) -> str:
    """Where the device is, if its connection model says (``endpoint``, as Modbus's does)."""
    endpoint = getattr(connection, "endpoint", "")
    return endpoint if isinstance(endpoint, str) else ""


async def _probe_device(
    report: DeviceReport, driver: DeviceDriver, groups: Sequence[Sequence[Point]], timeout: float
) -> DeviceReport:
    """Connect, read each poll group once, identify, close; never raises."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            await driver.connect()
            for points in groups:
                await _read_group(report, driver, points)
        report.answered = True
        async with asyncio.timeout_at(deadline):
            report.identity = dict(await driver.identify())
    except TimeoutError:
        _failed(report, f"no answer within {timeout:g} s")
    except DriverError as exc:
        _failed(report, str(exc) or type(exc).__name__)
    except Exception as exc:  # a third-party driver's bug must not stop the other probes
        log.debug("probe of %s failed", report.device.id, exc_info=True)
        _failed(report, f"driver failed: {type(exc).__name__}: {exc}")
    finally:
        try:
            await driver.close()
        except Exception:  # close must not raise; if it does, the probe is still over
            log.debug("closing the driver of %s failed", report.device.id, exc_info=True)
    faults = getattr(driver, "faults", None)
    _judge(report, faults if isinstance(faults, Mapping) else {})
    return report


def _failed(report: DeviceReport, why: str) -> None:
    """The device stopped answering (or the identification did, after the reads)."""
    if report.answered:
        report.flags.append(Flag("identify_failed", f"device identification: {why}"))
    else:
        report.error = why
        report.flags.append(Flag("no_answer", why))


async def _read_group(report: DeviceReport, driver: DeviceDriver, points: Sequence[Point]) -> None:
    reading = await driver.probe(points)
    if reading is None:
        result = await driver.read(points)
        raw: Mapping[str, RawPoint] = {}
    else:
        result, raw = reading.result, reading.points
        report.raw = True
        report.requests += reading.requests
    values = np.asarray(result.values, dtype=np.float64)
    quality = np.asarray(result.quality)
    if values.shape != (len(points),) or quality.shape != (len(points),):
        raise DriverError(f"the driver returned {values.size} values for {len(points)} points")
    by_id = {p.point.id: p for p in report.points}
    for point, value, q in zip(points, values.tolist(), quality.tolist(), strict=True):
        probed = by_id[point.id]
        probed.value, probed.quality, probed.raw = float(value), int(q), raw.get(point.id)


def _judge(report: DeviceReport, faults: Mapping[str, str]) -> None:
    """Flag the device's refused requests and each point's suspicious values."""
    last: dict[str, RawRequest] = {}
    for request in report.requests:
        for point_id in request.points:
            last[point_id] = request
        if request.exception is not None:
            report.flags.append(Flag("exception", f"{request.answer} to {request.request}"))
    for probed in report.points:
        probed.request = last.get(probed.point.id)
        probed.reason = str(faults.get(probed.point.id, ""))
        probed.flags = judge_point(probed)


def judge_point(probed: PointReport) -> list[Flag]:
    """What is suspicious about one point: its configuration, then what was read."""
    point = probed.point
    flags = _limit_flags(point, probed.limits)
    if probed.quality is None:
        return flags
    why = _why_bad(probed)
    flags += why
    if probed.quality != Quality.GOOD:
        if not why:
            reason = f": {probed.reason}" if probed.reason else ""
            flags.append(Flag("bad_quality", f"quality {probed.quality_name}{reason}"))
        return flags
    if not math.isfinite(probed.value):
        return flags
    flags += _range_flags(point, probed.value)
    raw = probed.raw
    if raw is not None and (raw.words or raw.bits):
        flags += _raw_flags(point, raw)
    elif point.data_type != "bool" and probed.value == 0:
        flags.append(Flag("zero", "value is exactly 0"))
    return flags


def _why_bad(probed: PointReport) -> list[Flag]:
    """The device refused the point's request, or the point is not a number."""
    flags = []
    request = probed.request
    if request is not None and request.exception is not None:
        # which request it was is in the device's flags and the point's ``request``
        flags.append(Flag("exception", request.answer))
    raw = probed.raw
    if (
        raw is not None
        and (raw.words or raw.bits)
        and raw.type not in _NOT_NUMBERS
        and not math.isfinite(raw.raw)
    ):
        flags.append(Flag("not_a_number", f"{raw.type} holds {_nonfinite(raw.raw)} ({_hex(raw)})"))
    elif probed.quality == Quality.GOOD and not math.isfinite(probed.value):
        flags.append(Flag("not_a_number", f"value is {_nonfinite(probed.value)}"))
    return flags


def _limit_flags(point: Point, limits: Mapping[str, float]) -> list[Flag]:
    if point.range is None:
        return []
    low, high = point.range
    return [
        Flag(
            "limit_outside_range",
            f"limit {name} = {limit:g} is outside the range {low:g} … {high:g}",
        )
        for name, limit in limits.items()
        if not low <= limit <= high
    ]


def _range_flags(point: Point, value: float) -> list[Flag]:
    if point.range is None:
        return []
    low, high = point.range
    if low <= value <= high:
        return []
    side = "below" if value < low else "above"
    return [Flag("out_of_range", f"{value:.6g} is {side} the range {low:g} … {high:g}")]


def _raw_flags(point: Point, raw: RawPoint) -> list[Flag]:
    """A number of exactly 0, or an integer register at its type's extreme."""
    if raw.type in _NOT_NUMBERS or point.data_type == "bool":
        return []
    if raw.raw == 0:
        return [Flag("zero", f"{raw.type} is exactly 0 ({_hex(raw)})")]
    kind = _INTEGERS.get(raw.type)
    if kind is None:
        return []
    bits, signed = kind
    if signed and raw.raw == -(2.0 ** (bits - 1)):
        return [Flag("type_min", f"{raw.type} at its minimum ({_hex(raw)})")]
    top = 2.0 ** (bits - 1) - 1 if signed else 2.0**bits - 1
    if raw.raw == top:
        return [Flag("type_max", f"{raw.type} at its maximum ({_hex(raw)})")]
    return []


def _nonfinite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _hex(raw: RawPoint) -> str:
    """Registers as hex words (``41C8 0000``), or bits (``1``)."""
    if raw.words:
        return " ".join(f"{w:04X}" for w in raw.words)
    return " ".join(str(b) for b in raw.bits)


def raw_text(raw: RawPoint | None) -> str:
    """The raw cell of the table: hex words, bits, or ``-``."""
    if raw is None or not (raw.words or raw.bits):
        return "-"
    return _hex(raw)


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _raw_document(raw: RawPoint | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    return {
        "address": raw.address,
        "type": raw.type,
        "registers": list(raw.words),
        "hex": " ".join(f"{w:04X}" for w in raw.words),
        "bits": list(raw.bits),
        "value": _number(raw.raw),
        "text": raw.text,
    }


def _request_document(request: RawRequest) -> dict[str, Any]:
    return {
        "request": request.request,
        "points": list(request.points),
        "answer": request.answer,
        "exception": request.exception,
    }


def _point_document(p: PointReport) -> dict[str, Any]:
    point = p.point
    return {
        "id": point.id,
        "name": point.name,
        "unit": point.unit,
        "value": _number(p.value),
        "quality": p.quality_name,
        "range": list(point.range) if point.range is not None else None,
        "limits": p.limits,
        "raw": _raw_document(p.raw),
        "reason": p.reason or None,
        "request": _request_document(p.request) if p.request is not None else None,
        "suspicious": bool(p.flags),
        "flags": [{"code": f.code, "text": f.text} for f in p.flags],
    }


def report_document(reports: Sequence[DeviceReport], *, site: str = "") -> dict[str, Any]:
    """The probe as a JSON-ready document (no NaN: numbers that are not are ``null``)."""
    devices = []
    for r in reports:
        device = r.device
        devices.append(
            {
                "id": device.id,
                "name": device.name,
                "driver": device.driver,
                "endpoint": r.endpoint or None,
                "answered": r.answered,
                "error": r.error or None,
                "raw_data": r.raw,
                "identity": r.identity,
                "flags": [{"code": f.code, "text": f.text} for f in r.flags],
                "requests": [_request_document(q) for q in r.requests],
                "points": [_point_document(p) for p in r.points],
            }
        )
    return {
        "site": site,
        "answered": sum(r.answered for r in reports),
        "not_answered": [r.device.id for r in reports if not r.answered],
        "suspicious_points": sum(len(r.suspicious) for r in reports),
        "devices": devices,
    }
