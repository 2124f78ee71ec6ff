"""Plan block reads: the fewest Modbus requests that cover a set of points.

Why: a Modbus request costs about the same for 1 or 125 registers (on this
machine ~4k requests/s either way), so reading points one by one wastes almost
all of a device's bandwidth.  Points are grouped by unit id and object type
(function code) — one request can only ask one unit for one kind of object —
and each group is merged into blocks within the request limit (125 registers,
2000 coils or inputs, or less for devices that accept less), bridging holes of
up to ``max_gap`` unused registers (``max_bit_gap`` bits).

Sorting by address and extending the current block greedily while it still fits
gives the fewest blocks for those constraints.  The planner is a pure function
so it can be tested without a device.

A device that refuses a block (exception 2, illegal data address: a register of
the block, or of a gap it bridged, is not in the device's map) has it split with
:func:`split_block` until the refused registers are isolated; see
:mod:`.splits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .models import BIT_FUNCTIONS, MAX_BITS, MAX_REGISTERS

__all__ = ["Block", "Limits", "Span", "plan_blocks", "split_block", "sub_block"]


@dataclass(frozen=True, slots=True)
class Span:
    """Registers (or bits) one point occupies on one unit."""

    function: str
    register: int
    width: int
    unit: int = 0


@dataclass(frozen=True, slots=True)
class Block:
    """One read request and where each of its points sits in the response.

    ``members`` are indices into the spans given to :func:`plan_blocks`;
    ``offsets[i]`` is the offset of ``members[i]`` from ``start``.
    """

    function: str
    start: int
    count: int
    members: tuple[int, ...]
    offsets: tuple[int, ...]
    unit: int = 0

    @property
    def is_bits(self) -> bool:
        return self.function in BIT_FUNCTIONS

    @property
    def end(self) -> int:
        """Last address read (inclusive)."""
        return self.start + self.count - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Size and gap limits of one kind of request."""

    size: int
    gap: int


def plan_blocks(
    spans: Sequence[Span],
    max_registers: int = MAX_REGISTERS,
    max_gap: int = 8,
    *,
    max_bits: int = MAX_BITS,
    max_bit_gap: int = 64,
) -> list[Block]:
    """Merge ``spans`` into the fewest block reads.

    Blocks are returned per (unit, function) in order of first appearance, then by
    start address.  Overlapping spans share a block.

    :raises ValueError: a span does not fit one request, or the limits are invalid.
    """
    registers = _limits("register", max_registers, MAX_REGISTERS, max_gap)
    bits = _limits("bit", max_bits, MAX_BITS, max_bit_gap)
    groups: dict[tuple[int, str], list[int]] = {}
    for index, span in enumerate(spans):
        limit = bits if span.function in BIT_FUNCTIONS else registers
        if not 1 <= span.width <= limit.size:
            raise ValueError(
                f"a point of {span.width} {span.function} addresses at {span.register} "
                f"does not fit a {limit.size}-address request"
            )
        groups.setdefault((span.unit, span.function), []).append(index)

    blocks: list[Block] = []
    for (unit, function), indices in groups.items():
        limit = bits if function in BIT_FUNCTIONS else registers
        indices.sort(key=lambda i: (spans[i].register, spans[i].width))
        members: list[int] = []
        start = end = 0
        for i in indices:
            span = spans[i]
            new_end = max(end, span.register + span.width)
            if members and span.register - end <= limit.gap and new_end - start <= limit.size:
                members.append(i)
                end = new_end
                continue
            if members:
                blocks.append(_block((unit, function), start, end, members, spans))
            members, start, end = [i], span.register, span.register + span.width
        if members:
            blocks.append(_block((unit, function), start, end, members, spans))
    return blocks


def _limits(kind: str, size: int, protocol: int, gap: int) -> Limits:
    if not 1 <= size <= protocol:
        raise ValueError(f"max {kind}s per request must be 1…{protocol}, got {size}")
    if gap < 0:
        name = "max_gap" if kind == "register" else "max_bit_gap"
        raise ValueError(f"{name} must not be negative, got {gap}")
    return Limits(size, gap)


def _block(
    group: tuple[int, str], start: int, end: int, members: list[int], spans: Sequence[Span]
) -> Block:
    unit, function = group
    return Block(
        function=function,
        start=start,
        count=end - start,
        members=tuple(members),
        offsets=tuple(spans[i].register - start for i in members),
        unit=unit,
    )


def sub_block(block: Block, members: Sequence[int], spans: Sequence[Span]) -> Block:
    """The request reading only ``members`` of ``block`` (indices into ``spans``)."""
    start = min(spans[i].register for i in members)
    end = max(spans[i].register + spans[i].width for i in members)
    return _block((block.unit, block.function), start, end, list(members), spans)


def split_block(block: Block, spans: Sequence[Span]) -> tuple[Block, Block] | None:
    """Two requests that together read every point of ``block``; None if it cannot split.

    Points that overlap (bit fields of one register, a register read as two
    types) stay in one request, since a point never straddles two.  The cut is
    made at the widest gap between points in the middle half of the block (by
    point count), so a refused gap is dropped at once, and repeated splitting
    isolates one refused point in O(log n) requests.
    """
    groups: list[list[int]] = []  # runs of overlapping members, in address order
    end = -1
    for i in block.members:
        span = spans[i]
        if groups and span.register < end:
            groups[-1].append(i)
            end = max(end, span.register + span.width)
        else:
            groups.append([i])
            end = span.register + span.width
    if len(groups) < 2:
        return None
    n = len(groups)
    ends = [max(spans[i].register + spans[i].width for i in g) for g in groups]
    low, high = max(1, n // 4), min(n - 1, n - n // 4)
    # cut before group k: widest gap first, then the cut nearest the middle
    cut = max(
        range(low, high + 1),
        key=lambda k: (spans[groups[k][0]].register - ends[k - 1], -abs(2 * k - n)),
    )
    left = [i for g in groups[:cut] for i in g]
    right = [i for g in groups[cut:] for i in g]
    return sub_block(block, left, spans), sub_block(block, right, spans)
