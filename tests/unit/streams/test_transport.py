from typing import NamedTuple

from faust.types import TP

from streams.transport import held_back, rewind_to

A, B, C = TP("shop.public.products", 0), TP("shop.public.products", 1), TP("t", 0)


class Rec(NamedTuple):
    offset: int


def test_held_back_keeps_each_partitions_first_offset() -> None:
    held = held_back({A: [Rec(10), Rec(11)], B: [], C: [Rec(3)]}, {})
    assert held == {A: 10, C: 3}
    assert held_back({A: [Rec(14)], B: [Rec(7)]}, held) == {A: 10, B: 7, C: 3}


def test_rewind_goes_to_the_seek_when_it_is_further_back() -> None:
    assert rewind_to({A: 10, B: 7, C: 3}, {A: 4, B: 9}) == {A: 4, B: 7, C: 3}
