"""The block-read planner: fewest requests within size and gap limits."""

from __future__ import annotations

import pytest

from plantguard_modbus.planner import Block, Span, plan_blocks


def _h(register: int, width: int = 2) -> Span:
    return Span("holding", register, width)


def test_contiguous_points_merge_into_one_block() -> None:
    blocks = plan_blocks([_h(0), _h(2), _h(4), _h(6)])
    assert blocks == [Block("holding", 0, 8, (0, 1, 2, 3), (0, 2, 4, 6))]


def test_unsorted_input_keeps_member_indices() -> None:
    (block,) = plan_blocks([_h(4), _h(0), _h(2, 1)])
    assert block.start == 0
    assert block.count == 6
    assert block.members == (1, 2, 0)
    assert block.offsets == (0, 2, 4)


def test_gap_up_to_max_gap_is_bridged() -> None:
    # 0-1, then a hole of 8 registers (2..9), then 10-11
    (block,) = plan_blocks([_h(0), _h(10)], max_gap=8)
    assert (block.start, block.count, block.offsets) == (0, 12, (0, 10))


def test_gap_larger_than_max_gap_splits() -> None:
    blocks = plan_blocks([_h(0), _h(11)], max_gap=8)
    assert [(b.start, b.count) for b in blocks] == [(0, 2), (11, 2)]
    assert plan_blocks([_h(0), _h(3)], max_gap=0)[1].start == 3


def test_max_registers_splits_blocks() -> None:
    spans = [_h(2 * i) for i in range(100)]  # 200 contiguous registers
    blocks = plan_blocks(spans, max_registers=125)
    assert [(b.start, b.count) for b in blocks] == [(0, 124), (124, 76)]
    assert all(b.count <= 125 for b in blocks)
    assert sum(len(b.members) for b in blocks) == 100


def test_a_point_never_straddles_blocks() -> None:
    blocks = plan_blocks([_h(0), _h(2), _h(4)], max_registers=5)
    assert [(b.start, b.count) for b in blocks] == [(0, 4), (4, 2)]


def test_function_codes_are_planned_separately() -> None:
    spans = [_h(0), Span("input", 0, 2), _h(2), Span("input", 2, 1)]
    blocks = plan_blocks(spans)
    assert [(b.function, b.start, b.count, b.members) for b in blocks] == [
        ("holding", 0, 4, (0, 2)),
        ("input", 0, 3, (1, 3)),
    ]


def test_overlapping_points_share_a_block() -> None:
    (block,) = plan_blocks([_h(0, 2), _h(1, 1)])
    assert (block.count, block.offsets) == (2, (0, 1))


def test_too_wide_point_and_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        plan_blocks([_h(0, 2)], max_registers=1)
    with pytest.raises(ValueError, match="max_gap"):
        plan_blocks([_h(0)], max_gap=-1)


def test_empty_input_gives_no_blocks() -> None:
    assert plan_blocks([]) == []


def test_units_are_planned_separately() -> None:
    spans = [Span("holding", 0, 2, unit=1), Span("holding", 2, 2, unit=2), _h(2)]
    blocks = plan_blocks(spans)
    assert [(b.unit, b.start, b.count, b.members) for b in blocks] == [
        (1, 0, 2, (0,)),
        (2, 2, 2, (1,)),
        (0, 2, 2, (2,)),
    ]


def test_coils_merge_up_to_2000_bits_with_their_own_gap() -> None:
    coils = [Span("coil", i * 3, 1) for i in range(1000)]  # 3000 addresses, holes of 2
    blocks = plan_blocks(coils, max_bit_gap=2)
    assert [(b.start, b.count) for b in blocks] == [(0, 1999), (2001, 997)]
    assert all(b.is_bits for b in blocks)
    assert [(b.start, b.count) for b in plan_blocks(coils[:3], max_bit_gap=1)] == [
        (0, 1),
        (3, 1),
        (6, 1),
    ]


def test_per_device_maximum_is_honoured() -> None:
    spans = [_h(i, 1) for i in range(100)]
    blocks = plan_blocks(spans, max_registers=16)
    assert [b.count for b in blocks] == [16] * 6 + [4]
    bits = plan_blocks([Span("discrete_input", i, 1) for i in range(100)], max_bits=64)
    assert [b.count for b in bits] == [64, 36]


def test_protocol_limits_cannot_be_exceeded() -> None:
    with pytest.raises(ValueError, match=r"1…125"):
        plan_blocks([_h(0)], max_registers=126)
    with pytest.raises(ValueError, match=r"1…2000"):
        plan_blocks([_h(0)], max_bits=2001)


def test_ten_thousand_points_need_the_minimum_number_of_requests() -> None:
    spans = [_h(2 * i) for i in range(10_000)]  # 20,000 contiguous registers
    blocks = plan_blocks(spans)
    assert len(blocks) == 162  # 124 registers (62 points) per request: ⌈10000 / 62⌉
    assert sum(len(b.members) for b in blocks) == 10_000
