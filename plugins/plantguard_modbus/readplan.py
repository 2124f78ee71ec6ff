"""Turn a poll group's points into a read plan: blocks to request, and how to decode them.

Why a plan: everything that depends only on the configuration — which blocks to
request, where each point's words land in the concatenated response buffer,
which type group decodes it — is computed once per set of points and cached by
the driver, so a poll is the block requests plus a few numpy operations.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from plantguard.plugin import Point

from .codec import BitGroup, FieldGroup, TextGroup, TypeGroup, word_indices
from .models import REGISTER_WIDTH, ModbusAddress, ModbusConnection
from .planner import Block, Span, plan_blocks

__all__ = ["ReadPlan", "build_plan"]

IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """The requests of one poll and the decoding of their responses."""

    blocks: tuple[Block, ...]
    bases: tuple[int, ...]  # offset of each block in the words or bits buffer
    words: int  # size of the concatenated register buffer
    bits: int  # size of the concatenated coil/input buffer
    point_block: IntArray  # block index per requested point (-1: no address)
    types: tuple[TypeGroup, ...]
    fields: tuple[FieldGroup, ...]
    flags: BitGroup | None
    texts: TextGroup | None
    scale: npt.NDArray[np.float64]
    offset: npt.NDArray[np.float64]
    point_ids: tuple[str, ...]
    block_points: tuple[tuple[str, ...], ...]  # point ids read by each block
    # For splitting a refused block (:mod:`.splits`) and naming what failed:
    spans: tuple[Span, ...]  # what each planned point occupies (block members index these)
    member_positions: IntArray  # position in the request of each span
    block_positions: tuple[IntArray, ...]  # positions of each block's points
    first: IntArray  # first word (or bit) of each point in its buffer
    #: (decimals, positions): integer registers scaled by a decimal factor, rounded to the
    #: digits the scale and offset have, so 1837 × 0.1 reads 183.7, not 183.70000000000002.
    rounding: tuple[tuple[int, IntArray], ...] = ()

    def positions_of(self, block: Block) -> IntArray:
        """Positions (in the request) of the points ``block`` reads."""
        positions: IntArray = self.member_positions[list(block.members)]
        return positions


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each block's registers (or bits) land in the poll's word and bit buffers."""

    bases: list[int]
    point_block: IntArray  # block of each point, -1 for points without an address
    first: IntArray  # first word (or bit) of each point in its buffer
    words: int
    bits: int

    @classmethod
    def of(cls, blocks: Sequence[Block], known: Sequence[int], n_points: int) -> _Layout:
        bases: list[int] = []
        words = bits = 0
        point_block = np.full(n_points, -1, dtype=np.intp)
        first = np.zeros(n_points, dtype=np.intp)
        for b_index, block in enumerate(blocks):
            base = bits if block.is_bits else words
            bases.append(base)
            for member, offset in zip(block.members, block.offsets, strict=True):
                point_block[known[member]] = b_index
                first[known[member]] = base + offset
            if block.is_bits:
                bits += block.count
            else:
                words += block.count
        return cls(bases, point_block, first, words, bits)


def build_plan(
    points: Sequence[Point],
    addresses: Mapping[str, ModbusAddress],
    connection: ModbusConnection,
) -> ReadPlan:
    """Plan the reads of ``points`` (points without an address are left out)."""
    c = connection
    known = [i for i, p in enumerate(points) if p.id in addresses]
    addr = [addresses[points[i].id] for i in known]
    spans = [
        Span(a.function, a.register, a.width, c.unit if a.unit is None else a.unit) for a in addr
    ]
    blocks = plan_blocks(
        spans,
        c.max_registers_per_request,
        c.max_gap,
        max_bits=c.max_bits_per_request,
        max_bit_gap=c.max_bit_gap,
    )

    layout = _Layout.of(blocks, known, len(points))
    bases, point_block, first = layout.bases, layout.point_block, layout.first
    words, bits = layout.words, layout.bits

    def positions(select: Sequence[int]) -> IntArray:
        return np.array([known[k] for k in select], dtype=np.intp)

    def orders(select: Sequence[int]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        little = np.array([(addr[k].word_order or c.word_order) == "little" for k in select])
        swap = np.array([(addr[k].byte_order or c.byte_order) == "little" for k in select])
        return little.astype(bool), swap.astype(bool)

    types: list[TypeGroup] = []
    for type_name, width in REGISTER_WIDTH.items():
        chosen = [
            k for k, a in enumerate(addr) if a.type == type_name and a.bit is None and a.is_register
        ]
        if chosen:
            pos = positions(chosen)
            little, swap = orders(chosen)
            idx = word_indices(first[pos], width, little)
            types.append(TypeGroup(type_name, pos, idx, swap if swap.any() else None))

    fields: list[FieldGroup] = []
    for width in (1, 2, 4):
        chosen = [k for k, a in enumerate(addr) if a.bit is not None and a.width == width]
        if chosen:
            pos = positions(chosen)
            little, swap = orders(chosen)
            fields.append(
                FieldGroup(
                    width,
                    pos,
                    word_indices(first[pos], width, little),
                    swap if swap.any() else None,
                    np.array([addr[k].bit for k in chosen], dtype=np.uint64),
                    np.array([(1 << addr[k].bits) - 1 for k in chosen], dtype=np.uint64),
                )
            )

    flag_members = [k for k, a in enumerate(addr) if not a.is_register]
    flags = None
    if flag_members:
        pos = positions(flag_members)
        flags = BitGroup(pos, first[pos].copy())

    text_members = [k for k, a in enumerate(addr) if a.type == "string"]
    texts = None
    if text_members:
        pos = positions(text_members)
        texts = TextGroup(
            positions=pos,
            point_ids=tuple(points[known[k]].id for k in text_members),
            idx=tuple(
                first[known[k]] + np.arange(addr[k].width, dtype=np.intp) for k in text_members
            ),
            swap=tuple((addr[k].byte_order or c.byte_order) == "little" for k in text_members),
            length=tuple(addr[k].length or 0 for k in text_members),
        )

    scale = np.array([p.scale for p in points], dtype=np.float64)
    offsets = np.array([p.offset for p in points], dtype=np.float64)
    if texts is not None:  # a string's table value is its length, never scaled
        scale[texts.positions] = 1.0
        offsets[texts.positions] = 0.0

    integer = [
        known[k] for k, a in enumerate(addr) if a.type not in ("float32", "float64", "string")
    ]
    return ReadPlan(
        rounding=_rounding(points, integer),
        blocks=tuple(blocks),
        bases=tuple(bases),
        words=words,
        bits=bits,
        point_block=point_block,
        types=tuple(types),
        fields=tuple(fields),
        flags=flags,
        texts=texts,
        scale=scale,
        offset=offsets,
        point_ids=tuple(p.id for p in points),
        block_points=tuple(tuple(points[known[m]].id for m in block.members) for block in blocks),
        spans=tuple(spans),
        member_positions=np.array(known, dtype=np.intp),
        block_positions=tuple(
            np.array([known[m] for m in block.members], dtype=np.intp) for block in blocks
        ),
        first=first,
    )


def _decimals(number: float) -> int:
    """Digits after the decimal point of ``number`` as written (0.25 → 2, 10 → 0)."""
    exponent = decimal.Decimal(repr(number)).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _rounding(points: Sequence[Point], integer: Sequence[int]) -> tuple[tuple[int, IntArray], ...]:
    """Positions of integer-valued points whose scaled values to round, grouped by digits."""
    by_digits: dict[int, list[int]] = {}
    for position in integer:
        point = points[position]
        digits = max(_decimals(point.scale), _decimals(point.offset))
        if digits:
            by_digits.setdefault(min(digits, 15), []).append(position)
    return tuple(
        (digits, np.array(positions, dtype=np.intp)) for digits, positions in by_digits.items()
    )
