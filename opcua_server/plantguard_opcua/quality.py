"""PlantGuard :class:`~plantguard.model.Quality` → OPC UA StatusCode.

Qualities are stored as one byte per point; the mapping is a 256-entry lookup
table built once, so publishing a block of samples costs one index per value
instead of an ``if`` chain.  Unknown bytes fall back to the generic code of
their range (Uncertain for 1–127, Bad for 128–255), as OPC UA clients treat any
code by its severity bits first.
"""

from __future__ import annotations

from asyncua import ua
from asyncua.ua.status_codes import StatusCodes

from plantguard.model import Quality

__all__ = ["STATUS_CODES", "status_code", "status_value"]

_SPECIFIC: dict[Quality, int] = {
    Quality.GOOD: StatusCodes.Good,
    Quality.UNCERTAIN: StatusCodes.Uncertain,
    Quality.UNCERTAIN_LAST_USABLE: StatusCodes.UncertainLastUsableValue,
    Quality.UNCERTAIN_SENSOR_NOT_ACCURATE: StatusCodes.UncertainSensorNotAccurate,
    Quality.BAD: StatusCodes.Bad,
    Quality.BAD_WAITING_FOR_INITIAL_DATA: StatusCodes.BadWaitingForInitialData,
    Quality.BAD_COMMUNICATION_ERROR: StatusCodes.BadCommunicationError,
    Quality.BAD_NOT_CONNECTED: StatusCodes.BadNotConnected,
    Quality.BAD_DEVICE_FAILURE: StatusCodes.BadDeviceFailure,
    Quality.BAD_CONFIGURATION_ERROR: StatusCodes.BadConfigurationError,
    Quality.BAD_OUT_OF_SERVICE: StatusCodes.BadOutOfService,
}


def status_value(quality: int) -> int:
    """The numeric OPC UA StatusCode for a quality byte."""
    if quality in _SPECIFIC:
        return _SPECIFIC[Quality(quality)]
    return StatusCodes.Uncertain if quality < Quality.BAD else StatusCodes.Bad


#: ``STATUS_CODES[q]`` is the shared, immutable-by-convention ``ua.StatusCode`` for byte ``q``.
STATUS_CODES: tuple[ua.StatusCode, ...] = tuple(
    ua.StatusCode(ua.UInt32(status_value(q))) for q in range(256)
)


def status_code(quality: int) -> ua.StatusCode:
    """The ``ua.StatusCode`` object for a quality byte."""
    return STATUS_CODES[quality]
