"""PlantGuard quality → the quality code Sparkplug hosts read.

Sparkplug B itself defines no quality field; hosts (Ignition's MQTT Engine and
others) read a metric property ``Quality`` holding an OPC DA quality code:
192 Good, 64 Uncertain, 0 Bad, with the DA sub-status in the low bits.
PlantGuard's qualities are OPC UA style (:class:`~plantguard.plugin.Quality`),
so each maps to the DA code of the same meaning.  A lookup table indexed by the
quality byte keeps the mapping vectorised (the value table stores one byte per point).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from plantguard.plugin import Quality

__all__ = ["GOOD", "SPARKPLUG_QUALITY"]

GOOD = 192
_UNCERTAIN = 64
_BAD = 0

#: PlantGuard quality → OPC DA quality code (Good 0xC0, Uncertain 0x40.., Bad 0x00..).
_BY_QUALITY: dict[Quality, int] = {
    Quality.GOOD: GOOD,
    Quality.UNCERTAIN: _UNCERTAIN,
    Quality.UNCERTAIN_LAST_USABLE: 0x44,
    Quality.UNCERTAIN_SENSOR_NOT_ACCURATE: 0x50,
    Quality.BAD: _BAD,
    Quality.BAD_WAITING_FOR_INITIAL_DATA: 0x20,
    Quality.BAD_COMMUNICATION_ERROR: 0x18,
    Quality.BAD_NOT_CONNECTED: 0x08,
    Quality.BAD_DEVICE_FAILURE: 0x0C,
    Quality.BAD_CONFIGURATION_ERROR: 0x04,
    Quality.BAD_OUT_OF_SERVICE: 0x1C,
}


def _table() -> npt.NDArray[np.int32]:
    table = np.full(256, _BAD, dtype=np.int32)
    table[1:128] = _UNCERTAIN
    for quality, code in _BY_QUALITY.items():
        table[int(quality)] = code
    return table


#: Indexed by a PlantGuard quality byte.
SPARKPLUG_QUALITY = _table()
