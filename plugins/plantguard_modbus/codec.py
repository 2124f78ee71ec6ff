"""Register words ⇄ values: vectorised decoding and single-value encoding.

Why it is shaped this way: a poll of thousands of points must not run Python
per register.  At plan time every point gets the indices of its words in one
concatenated ``uint16`` buffer, already in most-significant-first order (word
order is only *which* index comes first) and a flag saying whether its bytes are
swapped.  At poll time each data type is one fancy-indexing gather, one optional
byte swap, and a reinterpretation of the rows as big-endian bytes — the same few
numpy calls for 10 or 10,000 points.  Bit fields are a vectorised shift and mask
of the unsigned container.

Strings are the exception: they are rare and their text is not a number, so
they are decoded per point and kept beside the table (see :class:`TextGroup`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .models import REGISTER_WIDTH, ModbusAddress

__all__ = [
    "BitGroup",
    "FieldGroup",
    "TextGroup",
    "TypeGroup",
    "decode_text",
    "encode_bit_field",
    "encode_value",
    "gather",
    "word_indices",
]

IntArray = npt.NDArray[np.intp]
WordArray = npt.NDArray[np.uint16]
FloatArray = npt.NDArray[np.float64]

#: Big-endian numpy dtype of each fixed-size type (rows of words viewed as bytes).
_DTYPE: dict[str, str] = {
    "int16": ">i2",
    "uint16": ">u2",
    "int32": ">i4",
    "uint32": ">u4",
    "int64": ">i8",
    "uint64": ">u8",
    "float32": ">f4",
    "float64": ">f8",
}
_UNSIGNED: dict[int, str] = {1: ">u2", 2: ">u4", 4: ">u8"}
_INT_LIMITS: dict[str, tuple[int, int]] = {
    name: (
        (-(2 ** (16 * w - 1)), 2 ** (16 * w - 1) - 1)
        if name.startswith("int")
        else (0, 2 ** (16 * w) - 1)
    )
    for name, w in REGISTER_WIDTH.items()
    if "int" in name
}


def word_indices(first: IntArray, width: int, little: npt.NDArray[np.bool_]) -> IntArray:
    """Indices of each point's words, most significant first: shape (points, width)."""
    steps = np.arange(width, dtype=np.intp)
    idx: IntArray = first[:, None] + np.where(little[:, None], steps[::-1], steps)
    return idx


def gather(words: WordArray, idx: IntArray, swap: npt.NDArray[np.bool_] | None) -> WordArray:
    """Words at ``idx`` with the bytes of rows flagged in ``swap`` exchanged."""
    rows = words[idx]
    if swap is not None:
        rows = np.where(swap[:, None], rows.byteswap(), rows)
    return rows


def _as_type(rows: WordArray, dtype: str) -> npt.NDArray[np.generic]:
    """Reinterpret each row of most-significant-first words as one big-endian value."""
    big = np.ascontiguousarray(rows, dtype=">u2")
    return big.view(dtype).reshape(rows.shape[0])


@dataclass(frozen=True, slots=True)
class TypeGroup:
    """Points of one fixed-size type: where they go in the result and their words."""

    type: str
    positions: IntArray
    idx: IntArray
    swap: npt.NDArray[np.bool_] | None

    def decode(self, words: WordArray, out: FloatArray) -> None:
        out[self.positions] = _as_type(gather(words, self.idx, self.swap), _DTYPE[self.type])


@dataclass(frozen=True, slots=True)
class FieldGroup:
    """Bit fields held in integer containers of one width (1, 2 or 4 registers)."""

    width: int
    positions: IntArray
    idx: IntArray
    swap: npt.NDArray[np.bool_] | None
    shift: npt.NDArray[np.uint64]
    mask: npt.NDArray[np.uint64]

    def decode(self, words: WordArray, out: FloatArray) -> None:
        raw = _as_type(gather(words, self.idx, self.swap), _UNSIGNED[self.width])
        out[self.positions] = (raw.astype(np.uint64) >> self.shift) & self.mask


@dataclass(frozen=True, slots=True)
class BitGroup:
    """Coils and discrete inputs: one byte per bit in the bits buffer."""

    positions: IntArray
    idx: IntArray

    def decode(self, bits: npt.NDArray[np.uint8], out: FloatArray) -> None:
        out[self.positions] = bits[self.idx]


@dataclass(frozen=True, slots=True)
class TextGroup:
    """String points; their text is returned separately, the table gets its length."""

    positions: IntArray
    point_ids: tuple[str, ...]
    idx: tuple[IntArray, ...]
    swap: tuple[bool, ...]
    length: tuple[int, ...]

    def decode(self, words: WordArray, out: FloatArray) -> dict[str, str]:
        texts: dict[str, str] = {}
        lengths = np.empty(len(self.point_ids))
        for k, point_id in enumerate(self.point_ids):
            text = decode_text(words[self.idx[k]], swap=self.swap[k], length=self.length[k])
            texts[point_id] = text
            lengths[k] = len(text)
        out[self.positions] = lengths
        return texts


def decode_text(words: WordArray, *, swap: bool, length: int) -> str:
    """Text of a string point: high byte first (``swap``: low byte first), NUL/space padded."""
    data = np.ascontiguousarray(words, dtype="<u2" if swap else ">u2").tobytes()[:length]
    return data.split(b"\0", 1)[0].decode("utf-8", errors="replace").rstrip(" ")


def encode_value(
    address: ModbusAddress, raw: float, *, byte_order: str = "big", word_order: str = "big"
) -> list[int]:
    """Registers holding ``raw`` (already unscaled) as ``address`` and the orders say.

    The address's own orders, when set, win over the device's ``byte_order`` and
    ``word_order``.

    :raises ValueError: the value does not fit the data type, or the type has no
        numeric encoding (strings, bit fields: see :func:`encode_bit_field`).
    """
    kind = address.type
    if kind not in _DTYPE:
        raise ValueError(f"{kind} points cannot be written as a number")
    if kind.startswith(("int", "uint")):
        if not math.isfinite(raw):
            raise ValueError(f"{raw} cannot be written as {kind}")
        low, high = _INT_LIMITS[kind]
        integer = round(raw)
        if not low <= integer <= high:
            raise ValueError(f"{raw} is outside the {kind} range {low} … {high}")
        data = np.array([integer], dtype=_DTYPE[kind])
    else:
        data = np.array([raw], dtype=_DTYPE[kind])
    return _ordered(data.view(">u2"), address, byte_order, word_order)


def encode_bit_field(
    address: ModbusAddress,
    current: Sequence[int],
    raw: float,
    *,
    byte_order: str = "big",
    word_order: str = "big",
) -> list[int]:
    """Container registers with the bit field of ``address`` set to ``raw``.

    ``current`` are the container's registers as read from the device (device
    order); the other bits are kept, so this is the write half of a
    read-modify-write.

    :raises ValueError: ``raw`` is not an integer that fits the field.
    """
    assert address.bit is not None
    limit = (1 << address.bits) - 1
    if not math.isfinite(raw) or raw != round(raw) or not 0 <= raw <= limit:
        raise ValueError(f"{raw} does not fit a {address.bits}-bit field (0 … {limit})")
    width = REGISTER_WIDTH[address.type]
    words = np.array(current[:width], dtype=np.uint16)
    little = np.array([(address.word_order or word_order) == "little"])
    swap = np.array([(address.byte_order or byte_order) == "little"])
    rows = gather(words, word_indices(np.zeros(1, dtype=np.intp), width, little), swap)
    value = int(_as_type(rows, _UNSIGNED[width])[0])
    mask = limit << address.bit
    value = (value & ~mask) | (int(raw) << address.bit)
    data = np.array([value], dtype=_UNSIGNED[width])
    return _ordered(data.view(">u2"), address, byte_order, word_order)


def _ordered(
    big_words: npt.NDArray[np.generic], address: ModbusAddress, byte_order: str, word_order: str
) -> list[int]:
    """Most-significant-first words → the device's word and byte order."""
    words = [int(w) for w in big_words]
    if (address.word_order or word_order) == "little":
        words.reverse()
    if (address.byte_order or byte_order) == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words
