"""The simulated plant's dynamics, driven with virtual plant time (no sleeping)."""

from __future__ import annotations

import numpy as np
import pytest

from plantguard_sim.plant import CYCLE_PERIOD, DEVICES, PlantModel, device_by_unit

TIMES = np.arange(0.0, 3 * CYCLE_PERIOD, 0.25)


def _crossings_above(values: np.ndarray, limit: float) -> np.ndarray:
    above = values > limit
    return np.flatnonzero(above[1:] & ~above[:-1]) + 1


def test_cycle_tank_level_crosses_hh_within_30s_and_returns() -> None:
    plant = PlantModel(seed=1, scenario="cycle")
    level = plant.series("tank1.level", TIMES)

    first_hh = TIMES[np.argmax(level > 90.0)]
    assert level[0] < 80.0
    assert 0.0 < first_hh <= 30.0

    above = TIMES[(level > 90.0) & (TIMES < CYCLE_PERIOD)]
    assert 15.0 <= above[-1] - above[0] <= 30.0, "stays above HH for about 20 s"

    end_of_hh = above[-1]
    after = (end_of_hh < TIMES) & (TIMES < CYCLE_PERIOD)
    assert level[after].min() < 80.0, "returns below H (80 %) before the cycle ends"

    starts = TIMES[_crossings_above(level, 90.0)]
    assert len(starts) == 3, "one HH excursion per cycle"
    np.testing.assert_allclose(np.diff(starts), CYCLE_PERIOD, atol=1.0)


def test_cycle_gas_leak_crosses_hh_once_per_cycle() -> None:
    plant = PlantModel(seed=1, scenario="cycle")
    lel = plant.series("gas1.lel", TIMES)
    starts = TIMES[_crossings_above(lel, 20.0)]
    assert len(starts) == 3
    assert 50.0 < starts[0] < 65.0
    assert lel[TIMES < 50.0].max() < 10.0


def test_pump_trips_while_tank_fills() -> None:
    plant = PlantModel(scenario="cycle")
    assert plant.value("pump1.running", 2.0) == 1.0
    assert plant.value("pump1.running", 25.0) == 0.0
    assert plant.value("pump1.current", 25.0) == 0.0
    assert 17.0 < plant.value("pump1.current", 60.0) < 23.0


def test_scenario_none_stays_normal() -> None:
    plant = PlantModel(seed=3, scenario="none")
    assert plant.series("tank1.level", TIMES).max() < 80.0
    assert plant.series("gas1.lel", TIMES).max() < 10.0
    assert plant.series("pump1.running", TIMES).min() == 1.0


@pytest.mark.parametrize("scenario", ["none", "cycle"])
def test_values_stay_in_plausible_ranges_at_start(scenario: str) -> None:
    plant = PlantModel(seed=7, scenario=scenario)  # type: ignore[arg-type]
    early = np.arange(0.0, 8.0, 0.5)
    for device in DEVICES:
        for spec in device.points:
            values = plant.series(f"{device.id}.{spec.key}", early)
            low, high = spec.normal
            margin = 0.1 * (high - low)
            assert values.min() >= low - margin, (device.id, spec.key)
            assert values.max() <= high + margin, (device.id, spec.key)


def test_bearing_temperature_rises_slowly() -> None:
    plant = PlantModel(scenario="none")
    start = plant.series("pump1.bearing_temp", np.arange(0.0, 60.0)).mean()
    later = plant.series("pump1.bearing_temp", np.arange(1800.0, 1860.0)).mean()
    assert 54.0 < start < 57.0
    assert later > start + 4.0
    assert later < 65.0


def test_same_seed_same_plant_other_seed_other_noise() -> None:
    a = PlantModel(seed=1).series("pump1.current", TIMES)
    b = PlantModel(seed=1).series("pump1.current", TIMES)
    c = PlantModel(seed=2).series("pump1.current", TIMES)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_device_values_in_register_order() -> None:
    plant = PlantModel()
    tank = device_by_unit(2)
    values = plant.device_values(tank, 3.0)
    assert tank.id == "tank1"
    assert [p.address for p in tank.points] == [0, 2]
    assert values[0] == pytest.approx(plant.value("tank1.level", 3.0))
    assert values[1] == pytest.approx(plant.value("tank1.pressure", 3.0))


def test_unknown_scenario_and_unit_are_rejected() -> None:
    with pytest.raises(ValueError, match="scenario"):
        PlantModel(scenario="storm")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        device_by_unit(9)
