"""Numbers and source times out of payload values, with the reason when there is none.

Why one module: what counts as a number (JSON true/false are 1/0, NaN and ±Inf
are not, a string is not) and as a time (epoch seconds, epoch milliseconds,
ISO 8601) is the same for plain, JSON and Sparkplug payloads, and the per-message
path calls these once per value: they test types, never raise on good input.
"""

from __future__ import annotations

import datetime as dt
import math

__all__ = ["NotANumber", "as_number", "as_time", "plain_number"]

#: Epoch numbers above this are milliseconds (it is the year 5138 in seconds).
_MILLISECONDS = 1e11


class NotANumber(ValueError):
    """A payload value that is no finite number (its message says what it is)."""


def as_number(value: object) -> float:
    """A JSON value as a float: numbers, and booleans as 1/0.

    :raises NotANumber: strings, null, objects, lists, NaN and ±Inf.
    """
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise NotANumber(f"{value} is not a finite number")
    if isinstance(value, (bool, int)):
        return float(value)
    if value is None:
        raise NotANumber("null, not a number")
    if isinstance(value, (dict, list)):
        raise NotANumber(f"{'an object' if isinstance(value, dict) else 'a list'}, not a number")
    raise NotANumber(f"{value!r:.40}, not a number")


_WORDS = {b"true": 1.0, b"false": 0.0, b"on": 1.0, b"off": 0.0}


def plain_number(payload: bytes) -> float:
    """A payload that is the number itself (``23.5``, ``true``).

    :raises NotANumber: anything else, with the first bytes of the payload.
    """
    try:
        value = float(payload)
    except ValueError:
        word = _WORDS.get(payload.strip().lower())
        if word is not None:
            return word
        raise NotANumber(f"payload {payload[:40]!r} is not a number") from None
    if math.isfinite(value):
        return value
    raise NotANumber(f"payload {payload[:40]!r} is not a finite number")


def as_time(value: object) -> float:
    """A payload timestamp as epoch seconds: seconds or milliseconds, or ISO 8601.

    :raises ValueError: anything else (the caller uses the receive time instead).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"timestamp {value!r} is not a time")
        return seconds / 1000.0 if seconds > _MILLISECONDS else seconds
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"timestamp {value!r:.40} is not ISO 8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    raise ValueError(f"timestamp {value!r:.40} is not a time")
