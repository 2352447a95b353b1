from streams.dashboards.agents import (
    ORDERS_PER_BUCKET,
    SEEN_PER_ENTRY,
    OrderStates,
    SeenCache,
    SeenFacts,
)
from streams.dashboards.logic import OrderFact, OrderState, Progress


def _state(lsn: int) -> OrderState:
    fact = OrderFact(lsn, "paid", 10.0, 0, 1, deleted=False, counted=True)
    return OrderState(order=fact)


class CountingTable(dict):
    writes = 0

    def __setitem__(self, key, value) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_order_states_read_through_and_write_each_bucket_once() -> None:
    table = CountingTable()
    OrderStates(table, 2).put(1, _state(5))
    table.writes = 0  # nothing is written before the batch is done
    states = OrderStates(table, 2)
    states.put(1, _state(5))
    states.write()
    assert table == {"2/0": {"1": _state(5).to_json()}}

    states = OrderStates(table, 2)
    assert states.get(1) == _state(5)
    assert states.get(2) == OrderState()
    for order_id in range(1, ORDERS_PER_BUCKET + 3):
        states.put(order_id, _state(order_id + 10))
    states.put(1, _state(99))
    assert states.get(1) == _state(99)  # the batch sees its own changes
    states.write()
    # 66 orders, two buckets: two more writes, not 67.
    assert table.writes == 1 + 2
    assert set(table) == {"2/0", "2/1"}
    again = OrderStates(table, 2)
    assert again.get(1) == _state(99)
    assert again.get(ORDERS_PER_BUCKET + 2) == _state(ORDERS_PER_BUCKET + 12)
    # Another partition's batch has buckets of its own.
    assert OrderStates(table, 0).get(1) == OrderState()


# Seen facts ------------------------------------------------------------------------------------
def _fold(
    table: dict,
    cache: SeenCache,
    progress: Progress,
    facts: list[tuple[str, int]],
    lateness: int = 100,
) -> list[str]:
    """One batch's look-ups and additions as the interactions handler makes them: the facts
    it counted (a `may_repeat` change is assumed, so every fact is looked up)."""
    seen = SeenFacts(table, 0, progress, cache)
    counted = []
    for fact, at_ms in facts:
        if not seen.counted(fact):
            seen.add(fact, at_ms)
            counted.append(fact)
        progress.watermark_ms = max(progress.watermark_ms, at_ms)
    progress.offset += len(facts)
    seen.write(progress.horizon_ms(lateness), progress.offset)
    return counted


def test_seen_facts_count_each_fact_once_across_batches_and_processes() -> None:
    table: dict = {}
    progress = Progress()
    assert _fold(table, SeenCache(), progress, [("1", 1000), ("2", 1010), ("1", 1020)]) == [
        "1",
        "2",
    ]
    assert table == {"0/0": {"until_ms": 1010, "ids": ["1", "2"]}}
    assert (progress.seen_first, progress.seen_next) == (0, 1)
    # A new process (empty cache) reads the entries back from the table.
    assert _fold(table, SeenCache(), progress, [("2", 1030), ("3", 1040)]) == ["3"]
    assert (progress.seen_first, progress.seen_next) == (0, 2)
    # A batch counting nothing new writes no entry.
    assert _fold(table, SeenCache(), progress, [("3", 1050)]) == []
    assert set(table) == {"0/0", "0/1"}


def test_seen_facts_forget_entries_once_all_their_facts_are_late() -> None:
    table: dict = {}
    progress = Progress()
    cache = SeenCache()
    _fold(table, cache, progress, [("1", 1000)])
    _fold(table, cache, progress, [("2", 1500)])
    # The watermark moves to 1150: entry 0 (until 1000) is before the horizon 1050.
    _fold(table, cache, progress, [("3", 1150)])
    assert set(table) == {"0/1", "0/2"}
    assert progress.seen_first == 1
    # The forgotten fact would be late now: the handler drops it before any look-up.
    assert progress.is_late(1000, 100)
    assert _fold(table, cache, progress, [("2", 1500), ("3", 1150)]) == []


def test_seen_cache_is_used_only_while_the_partition_is_where_it_was_kept() -> None:
    table: dict = {}
    progress = Progress()
    cache = SeenCache()
    _fold(table, cache, progress, [("1", 1000)])
    # Entries changed behind this process's back (another worker owned the partition): the
    # progress offset moved, so what was kept is not used.
    other = Progress(**progress.to_json())
    _fold(table, SeenCache(), other, [("2", 1001)])
    assert _fold(table, cache, other, [("2", 1002)]) == []
    # A batch that looked nothing up ends the keeping.
    seen = SeenFacts(table, 0, other, cache)
    seen.add("9", 1003)
    seen.write(0, other.offset + 1)
    assert cache.entries(0, other.offset + 1) == {}


def test_a_large_batch_writes_its_seen_facts_in_entries_of_bounded_size() -> None:
    table: dict = {}
    progress = Progress()
    facts = [(str(i), 1000 + i) for i in range(SEEN_PER_ENTRY * 2 + 1)]
    assert len(_fold(table, SeenCache(), progress, facts, lateness=10**6)) == len(facts)
    assert sorted(len(entry["ids"]) for entry in table.values()) == [
        1,
        SEEN_PER_ENTRY,
        SEEN_PER_ENTRY,
    ]
    assert (progress.seen_first, progress.seen_next) == (0, 3)
    assert _fold(table, SeenCache(), progress, facts[-2:], lateness=10**6) == []
