from faust.types import TP

from streams.transport import raced

A, B, C = TP("shop.public.products", 0), TP("shop.public.products", 1), TP("t", 0)


def test_a_fetch_no_seek_moved_is_kept() -> None:
    assert raced({A: [1, 2]}, []) == {}
    assert raced({A: [1, 2]}, [{B: 40}]) == {}


def test_partitions_a_seek_moved_go_back_to_where_the_last_seek_put_them() -> None:
    assert raced({A: [1], B: [2], C: [3]}, [{A: 10, B: 20}, {A: 12}]) == {A: 12, B: 20}


def test_a_partition_without_records_needs_nothing() -> None:
    assert raced({A: []}, [{A: 10}]) == {}
