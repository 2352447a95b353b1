from typing import NamedTuple

from faust.types import TP

from streams.transport import App, gaps, held_back, rewind_to, unread

A, B, C = TP("shop.public.products", 0), TP("shop.public.products", 1), TP("t", 0)


class Rec(NamedTuple):
    offset: int


def test_held_back_keeps_each_partitions_first_offset() -> None:
    held = held_back({A: [Rec(10), Rec(11)], B: [], C: [Rec(3)]}, {})
    assert held == {A: 10, C: 3}
    assert held_back({A: [Rec(14)], B: [Rec(7)]}, held) == {A: 10, B: 7, C: 3}


def test_rewind_goes_to_the_seek_when_it_is_further_back() -> None:
    assert rewind_to({A: 10, B: 7, C: 3}, {A: 4, B: 9}) == {A: 4, B: 7, C: 3}


def _records(*offsets: int) -> list[Rec]:
    return [Rec(o) for o in offsets]


def test_unread_keeps_records_from_the_read_offset_on() -> None:
    records = _records(5, 6, 7, 8)
    assert unread(records, None) is records
    assert unread(records, 5) is records
    assert [r.offset for r in unread(records, 7)] == [7, 8]
    assert unread(records, 9) == []


def test_gaps_name_the_offsets_missing_between_records() -> None:
    assert gaps(None, [5, 6, 7]) == []
    assert gaps(4, [5, 6]) == []
    assert gaps(2, [5, 6, 9]) == [(3, 5), (7, 9)]


def test_consumed_topics_include_batch_agents() -> None:
    """The worker pins a new group's start on these: batch agents' topics must be among them."""
    app = App("transport-unit", broker="kafka://localhost:1", web_enabled=False)
    source = app.topic("shop.public.orders")
    internal = app.topic("transport-unit-lines", internal=True, partitions=1)
    other = app.topic("shop.public.products")

    async def take(batch: object) -> None: ...

    async def agent(stream: object) -> None: ...

    app.batch_agent(source)(take)
    app.batch_agent(internal)(take)
    app.agent(other, name="products")(agent)
    topics, internal_topics = app.consumed_topics()
    assert topics == {"shop.public.orders", "transport-unit-lines", "shop.public.products"}
    assert internal_topics == {"transport-unit-lines"}


def test_table_writes_of_a_batch_see_its_message_as_the_current_event() -> None:
    # Faust's tables read `current_event().message` for the changelog partition; a batch agent
    # has no event, so `writing_as` provides one (through a private context variable).
    from faust.streams import current_event

    from streams.transport import writing_as

    message = object()
    assert current_event() is None
    with writing_as(message):  # type: ignore[arg-type]
        event = current_event()
        assert event is not None and event.message is message
    assert current_event() is None
