import asyncio
from typing import Any, NamedTuple

import pytest
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


class _App:
    """What a lane needs of the app: somewhere to report a crash."""

    def __init__(self) -> None:
        self.crashed: list[BaseException] = []

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


def _handoff(tp: TP, offsets: list[int], lanes: int, acked: list[tuple[TP, list[int]]]) -> Any:
    from streams.transport import Batch, _Handoff

    batch = Batch(tp, _records(*offsets), object())  # type: ignore[arg-type]
    return _Handoff(batch, lanes, lambda tp, offs: acked.append((tp, list(offs))))


def test_runs_call_each_handler_once_with_its_batches_in_order() -> None:
    from streams.transport import runs

    async def h1(batches: object) -> None: ...

    async def h2(batches: object) -> None: ...

    acked: list[Any] = []
    a1, b1, a2 = _handoff(A, [1], 1, acked), _handoff(B, [5], 1, acked), _handoff(A, [2], 1, acked)
    grouped = runs([(h1, a1), (h2, b1), (h1, a2), (h2, a1)])
    assert [(h, [b.tp for b in batches]) for h, batches in grouped] == [(h1, [A, A]), (h2, [B, A])]
    assert grouped[0][1][0].records[0].offset == 1 and grouped[0][1][1].records[0].offset == 2


def test_a_lane_coalesces_what_queued_while_it_ran_and_acks_after_every_lane() -> None:
    from streams.transport import Lane

    async def scenario() -> tuple[list[list[int]], list[Any], list[Any]]:
        app = _App()
        fast, slow = Lane("fast", app), Lane("slow", app)  # type: ignore[arg-type]
        calls: list[list[int]] = []
        release = asyncio.Event()

        async def slow_handler(batches: Any) -> None:
            calls.append([r.offset for b in batches for r in b.records])
            await release.wait()

        async def fast_handler(batches: Any) -> None: ...

        acked: list[Any] = []
        first = _handoff(A, [1, 2], 2, acked)
        fast.put(fast_handler, first)
        slow.put(slow_handler, first)
        await asyncio.sleep(0.01)  # both runs started; the slow one waits
        assert acked == []  # the fast lane is done, the slow one is not
        for offsets in ([3], [4, 5]):
            h = _handoff(A, offsets, 1, acked)
            slow.put(slow_handler, h)
        release.set()
        await slow.drained()
        return calls, acked, app.crashed

    calls, acked, crashed = asyncio.run(scenario())
    assert calls == [[1, 2], [3, 4, 5]]  # what queued during the first call came in one
    assert acked == [(A, [1, 2]), (A, [3]), (A, [4, 5])]
    assert crashed == []


def test_a_full_lane_holds_the_fetcher_until_it_has_room() -> None:
    from streams.transport import Lane

    async def scenario() -> tuple[bool, bool]:
        lane = Lane("search", _App(), max_records=3)  # type: ignore[arg-type]
        gate = asyncio.Event()

        async def handler(batches: Any) -> None:
            await gate.wait()

        acked: list[Any] = []
        lane.put(handler, _handoff(A, [1, 2, 3], 1, acked))
        waiter = asyncio.ensure_future(lane.room())
        await asyncio.sleep(0.01)
        # The run took the three queued records: the queue has room again.
        had_room_while_running = waiter.done()
        lane.put(handler, _handoff(A, [4, 5, 6], 1, acked))
        blocked = asyncio.ensure_future(lane.room())
        await asyncio.sleep(0.01)
        full_blocks = not blocked.done()
        gate.set()
        await lane.drained()
        await blocked
        return had_room_while_running, full_blocks

    assert asyncio.run(scenario()) == (True, True)


def test_a_failing_batch_agent_crashes_the_app_and_acks_nothing() -> None:
    from streams.transport import Lane

    async def scenario() -> tuple[list[BaseException], list[Any]]:
        app = _App()
        lane = Lane("search", app)  # type: ignore[arg-type]

        async def handler(batches: Any) -> None:
            raise RuntimeError("mapping rejected everything")

        acked: list[Any] = []
        lane.put(handler, _handoff(A, [1], 1, acked))
        await lane.drained()
        await asyncio.sleep(0)
        return app.crashed, acked

    crashed, acked = asyncio.run(scenario())
    assert [str(e) for e in crashed] == ["mapping rejected everything"]
    assert acked == []


def test_a_topic_goes_to_every_lane_reading_it_but_never_also_to_a_stream_agent() -> None:
    app = App("transport-unit-lanes", broker="kafka://localhost:1", web_enabled=False)
    products = app.topic("shop.public.products")

    async def search(batches: object) -> None: ...

    async def labels(batches: object) -> None: ...

    async def agent(stream: object) -> None: ...

    app.batch_agent(products, "search")(search)
    app.batch_agent(products, "dashboards")(labels)
    assert [(lane.name, h) for lane, h in app.batch_handlers["shop.public.products"]] == [
        ("search", search),
        ("dashboards", labels),
    ]
    with pytest.raises(ValueError, match="already has this batch agent"):
        app.batch_agent(products, "other")(search)
    orders = app.topic("shop.public.orders")
    app.agent(orders, name="orders")(agent)
    with pytest.raises(ValueError, match="read by a stream agent"):
        app.batch_agent(orders)(labels)


class Stamped(NamedTuple):
    offset: int
    timestamp: int


def test_a_lane_knows_its_oldest_record_not_yet_acked() -> None:
    """What a worker's readiness ages its lag by: queued or being handled, until acked."""
    from streams.transport import Batch, Lane, _Handoff

    async def scenario() -> list[float | None]:
        lane = Lane("search", _App())  # type: ignore[arg-type]
        gate = asyncio.Event()

        async def handler(batches: Any) -> None:
            await gate.wait()

        def handoff(offset: int, ts: int) -> Any:
            batch = Batch(A, [Stamped(offset, ts)], object())  # type: ignore[arg-type]
            return _Handoff(batch, 1, lambda tp, offs: None)

        seen = [lane.oldest_waiting_ms()]
        lane.put(handler, handoff(1, 1_000))
        await asyncio.sleep(0.01)  # taken: being handled
        lane.put(handler, handoff(2, 2_000))  # queued behind it
        seen.append(lane.oldest_waiting_ms())
        gate.set()
        await lane.drained()
        seen.append(lane.oldest_waiting_ms())
        return seen

    assert asyncio.run(scenario()) == [None, 1_000, None]
