from streams.offsets import Partition, start_positions


def test_a_partition_with_an_offset_is_left_alone() -> None:
    assert start_positions([Partition("shop.public.products", 0, 7, 0, 40)], set()) == {}


def test_source_topics_start_at_their_end() -> None:
    partitions = [
        Partition("shop.public.products", 0, None, 3, 40),
        Partition("shop.public.products", 1, None, 0, 0),
    ]
    assert start_positions(partitions, set()) == {
        ("shop.public.products", 0): 40,
        ("shop.public.products", 1): 0,
    }


def test_internal_topics_start_at_their_beginning() -> None:
    partitions = [
        Partition("app-order-lines", 2, None, 5, 90),
        Partition("shop.public.orders", 2, None, 5, 90),
    ]
    assert start_positions(partitions, {"app-order-lines"}) == {
        ("app-order-lines", 2): 5,
        ("shop.public.orders", 2): 90,
    }
