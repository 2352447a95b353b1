from streams.dashboards.agents import ORDERS_PER_BUCKET, OrderStates
from streams.dashboards.logic import OrderFact, OrderState


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
