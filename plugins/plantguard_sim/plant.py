"""A small simulated plant whose state is a pure function of plant time.

Why a pure function: tests can ask for the value of any point at any plant time
(seconds since the simulator started) without sleeping, and the Modbus server
only has to evaluate the model when a client reads.  Noise comes from a table
drawn once from a seeded generator and interpolated in time, so the same seed
and the same time always give the same value.

Devices, Modbus unit ids and register maps (every point is an IEEE 754 float32 in
two holding registers, high word first; input registers mirror them):

======  ====  =======  ==============  =====  ============  ==========================
device  unit  address  point           unit   normal range  meaning
======  ====  =======  ==============  =====  ============  ==========================
pump1   1     0        current         A      18 – 22       motor current
pump1   1     2        vibration       mm/s   2 – 3         bearing housing vibration
pump1   1     4        bearing_temp    °C     55 – 65       slowly rising bearing temp
pump1   1     6        running         –      0 / 1         1 while the pump runs
tank1   2     0        level           %      55 – 65       tank level
tank1   2     2        pressure        bar    1.8 – 2.1     pressure at the tank bottom
gas1    3     0        lel             %LEL   0 – 3         methane concentration
======  ====  =======  ==============  =====  ============  ==========================

Scenario ``cycle`` (the default) repeats every :data:`CYCLE_PERIOD` seconds so
someone watching an HMI sees alarms come and go:

* 8 s: pump1 trips (running 0, current 0); tank1 fills, level crosses 90 % (HH)
  at about 13.5 s and stays above it until about 37 s, then the pump restarts
  and the level returns to normal (below 80 % at about 40 s);
* 55 s: a gas leak near gas1, methane rises to about 28 %LEL (above 20, HH)
  from about 58 s to about 70 s, then clears.

Scenario ``none`` keeps every point in its normal range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "CYCLE_PERIOD",
    "DEVICES",
    "DeviceSpec",
    "PlantModel",
    "PointSpec",
    "Scenario",
    "device_by_unit",
]

Scenario = Literal["cycle", "none"]
FloatArray = npt.NDArray[np.float64]

#: Seconds after which the ``cycle`` scenario repeats.
CYCLE_PERIOD = 90.0

_NOISE_SAMPLES = 4096
_NOISE_RATE = 2.0  # noise table entries per second of plant time


@dataclass(frozen=True, slots=True)
class PointSpec:
    """One simulated point: its local id, register address and normal range."""

    key: str
    name: str
    unit: str
    address: int
    normal: tuple[float, float]


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One simulated device: the Modbus unit id it answers to and its points."""

    id: str
    unit: int
    points: tuple[PointSpec, ...]

    @property
    def register_count(self) -> int:
        return 2 * len(self.points)


def _points(*rows: tuple[str, str, str, float, float]) -> tuple[PointSpec, ...]:
    return tuple(
        PointSpec(key, name, unit, 2 * i, (low, high))
        for i, (key, name, unit, low, high) in enumerate(rows)
    )


#: The simulated devices, in unit-id order.  Register address = 2 × point index.
DEVICES: tuple[DeviceSpec, ...] = (
    DeviceSpec(
        "pump1",
        1,
        _points(
            ("current", "Motor current", "A", 18.0, 22.0),
            ("vibration", "Vibration velocity", "mm/s", 2.0, 3.0),
            ("bearing_temp", "Bearing temperature", "°C", 55.0, 65.0),
            ("running", "Running", "", 0.0, 1.0),
        ),
    ),
    DeviceSpec(
        "tank1",
        2,
        _points(
            ("level", "Level", "%", 55.0, 65.0),
            ("pressure", "Bottom pressure", "bar", 1.8, 2.1),
        ),
    ),
    DeviceSpec("gas1", 3, _points(("lel", "Methane", "%LEL", 0.0, 3.0))),
)


def device_by_unit(unit: int) -> DeviceSpec:
    """The simulated device answering to Modbus unit id ``unit``."""
    for device in DEVICES:
        if device.unit == unit:
            return device
    raise KeyError(f"no simulated device has unit id {unit}")


def _smoothstep(x: FloatArray) -> FloatArray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _envelope(phase: FloatArray, rise: float, top: float, fall: float, end: float) -> FloatArray:
    """0 before ``rise``, smooth ramp to 1 at ``top``, 1 until ``fall``, back to 0 at ``end``."""
    up = _smoothstep((phase - rise) / (top - rise))
    down = 1.0 - _smoothstep((phase - fall) / (end - fall))
    return np.minimum(up, down)


class PlantModel:
    """Values of every simulated point as a function of plant time.

    :param seed: seeds the noise; the same seed gives the same plant.
    :param scenario: ``"cycle"`` for the repeating alarm events, ``"none"`` for a
        plant that stays normal.
    """

    def __init__(self, seed: int = 1, scenario: Scenario = "cycle") -> None:
        if scenario not in ("cycle", "none"):
            raise ValueError(f"unknown scenario {scenario!r} (known: cycle, none)")
        self.seed = seed
        self.scenario: Scenario = scenario
        self._point_ids = tuple(f"{d.id}.{p.key}" for d in DEVICES for p in d.points)
        rng = np.random.default_rng(seed)
        self._noise = rng.standard_normal((len(self._point_ids), _NOISE_SAMPLES))
        self._row = {pid: i for i, pid in enumerate(self._point_ids)}

    @property
    def point_ids(self) -> tuple[str, ...]:
        """Global ids (``<device>.<point>``) of every simulated point."""
        return self._point_ids

    def _noise_at(self, point_id: str, t: FloatArray) -> FloatArray:
        """Unit-variance noise, linearly interpolated between table entries."""
        row = self._noise[self._row[point_id]]
        pos = np.maximum(t, 0.0) * _NOISE_RATE
        i = np.floor(pos).astype(np.int64)
        frac = pos - i
        a = row[i % _NOISE_SAMPLES]
        b = row[(i + 1) % _NOISE_SAMPLES]
        result: FloatArray = a + (b - a) * frac
        return result

    def _events(self, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(pump trip, gas leak) envelopes in 0 … 1."""
        if self.scenario == "none":
            zero = np.zeros_like(t)
            return zero, zero
        phase = np.mod(t, CYCLE_PERIOD)
        trip = _envelope(phase, 8.0, 15.0, 35.0, 45.0)
        leak = _envelope(phase, 55.0, 60.0, 66.0, 75.0)
        return trip, leak

    def series(self, point_id: str, t: npt.ArrayLike) -> FloatArray:
        """Values of ``point_id`` at plant times ``t`` (seconds, scalar or array)."""
        times = np.asarray(t, dtype=np.float64)
        if point_id not in self._row:
            raise KeyError(f"unknown simulated point {point_id!r}")
        trip, leak = self._events(times)
        running = trip < 0.5
        tau = 2.0 * np.pi
        noise = self._noise_at(point_id, times)
        match point_id:
            case "pump1.current":
                on = 20.0 + 1.2 * np.sin(tau * times / 37.0) + 0.3 * noise
                value = np.where(running, on, 0.0)
            case "pump1.vibration":
                on = 2.5 + 0.3 * np.sin(tau * times / 23.0) + 0.08 * noise
                value = np.where(running, on, 0.1 + 0.02 * noise)
            case "pump1.bearing_temp":
                warm_up = 55.0 + 9.0 * (1.0 - np.exp(-np.maximum(times, 0.0) / 900.0))
                value = warm_up + 0.4 * np.sin(tau * times / 61.0) + 0.1 * noise
            case "pump1.running":
                value = running.astype(np.float64)
            case "tank1.level":
                normal = 60.0 + 3.0 * np.sin(tau * times / 45.0) + 0.2 * noise
                value = (1.0 - trip) * normal + trip * (94.0 + 0.4 * noise)
            case "tank1.pressure":
                level = self.series("tank1.level", times)
                value = 1.2 + 0.012 * level + 0.01 * noise
            case "gas1.lel":
                normal = 1.2 + 0.6 * np.sin(tau * times / 31.0) + 0.15 * noise
                value = (1.0 - leak) * normal + leak * (28.0 + 1.0 * noise)
            case _:  # pragma: no cover - the row lookup above covers every id
                raise KeyError(point_id)
        result: FloatArray = np.clip(value, 0.0, None)
        return result

    def value(self, point_id: str, t: float) -> float:
        """Value of ``point_id`` at plant time ``t``."""
        return float(self.series(point_id, t))

    def device_values(self, device: DeviceSpec, t: float) -> FloatArray:
        """Values of every point of ``device`` at plant time ``t``, in register order."""
        return np.array([self.value(f"{device.id}.{p.key}", t) for p in device.points])
