"""Engineering units as OPC UA ``EUInformation`` (UNECE Recommendation 20 codes).

Clients that convert units (historians, MES) key on ``UnitId``, not on the
display text, so the common units of a plant carry their UNECE common code; any
other unit still shows its text with ``UnitId = -1`` (unknown), as Part 8 allows.
"""

from __future__ import annotations

from asyncua import ua

__all__ = ["UNECE_NAMESPACE", "eu_information", "unece_unit_id"]

UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"

_COMMON_CODES: dict[str, str] = {
    "°C": "CEL",
    "K": "KEL",
    "bar": "BAR",
    "Pa": "PAL",
    "kPa": "KPA",
    "MPa": "MPA",
    "A": "AMP",
    "V": "VLT",
    "W": "WTT",
    "kW": "KWT",
    "kWh": "KWH",
    "Hz": "HTZ",
    "%": "P1",
    "rpm": "RPM",
    "m³/h": "MQH",
    "mm/s": "C16",
    "ppm": "59",
    "mm": "MMT",
    "m": "MTR",
    "s": "SEC",
    "h": "HUR",
    "kg": "KGM",
}


def unece_unit_id(unit: str) -> int:
    """The Part 8 ``UnitId`` of a unit: its UNECE code's bytes packed big-endian, or -1."""
    code = _COMMON_CODES.get(unit)
    if code is None:
        return -1
    unit_id = 0
    for char in code:
        unit_id = (unit_id << 8) | ord(char)
    return unit_id


def eu_information(unit: str) -> ua.EUInformation:
    """A ``ua.EUInformation`` whose DisplayName is the configured unit text."""
    text = ua.LocalizedText(unit)
    return ua.EUInformation(
        NamespaceUri=ua.String(UNECE_NAMESPACE),
        UnitId=ua.Int32(unece_unit_id(unit)),
        DisplayName=text,
        Description=text,
    )
