from streams.dashboards.agents import OrderStates
from streams.dashboards.logic import OrderFact, OrderState


def _state(lsn: int) -> OrderState:
    fact = OrderFact(lsn, "paid", 10.0, 0, 1, deleted=False, counted=True)
    return OrderState(order=fact)


class CountingTable(dict):
    writes = 0

    def __setitem__(self, key, value) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_order_states_read_through_and_write_each_order_once() -> None:
    table = CountingTable()
    table["1"] = _state(5).to_json()
    table.writes = 0
    states = OrderStates(table)
    assert states.get("1") == _state(5)
    assert states.get("2") == OrderState()
    states.put("1", _state(6))
    states.put("1", _state(7))
    states.put("2", _state(8))
    assert states.get("1") == _state(7)  # the batch sees its own changes
    assert table["1"] == _state(5).to_json()  # nothing written before the batch is done
    states.write()
    assert table.writes == 2
    assert OrderState.from_json(table["1"]) == _state(7)
    assert OrderState.from_json(table["2"]) == _state(8)
