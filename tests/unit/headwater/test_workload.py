import random
from collections import Counter

from headwater.cli.workload import ShopState, plan_operation


def test_empty_shop_gets_customers_then_products_first() -> None:
    state = ShopState()
    op = plan_operation(state, random.Random(1))
    assert (op.kind, op.table, op.action) == ("new_customer", "customers", "insert")
    state.customers = list(range(1, 30))
    assert plan_operation(state, random.Random(1)).kind == "new_product"


def test_operations_only_reference_existing_rows_and_mix_all_actions() -> None:
    state = ShopState(
        customers=list(range(1, 50)),
        products=list(range(100, 150)),
        open_orders={7: "pending", 8: "paid"},
        reviews=[3, 4],
    )
    rng = random.Random(42)
    actions: Counter[str] = Counter()
    for _ in range(2000):
        op = plan_operation(state, rng)
        actions[op.action] += 1
        p = op.params
        if "customer_id" in p:
            assert p["customer_id"] in state.customers
        if p.get("product_id") is not None:
            assert p["product_id"] in state.products
        if op.table == "orders" and op.action != "insert":
            assert p["id"] in state.open_orders
        if op.kind == "advance_order":
            assert p["status"] == {"pending": "paid", "paid": "shipped"}[state.open_orders[p["id"]]]
        if op.table == "reviews" and op.action != "insert":
            assert p["id"] in state.reviews
    assert set(actions) == {"insert", "update", "delete"}


def test_same_seed_same_workload() -> None:
    state = ShopState(customers=[1, 2, 3] * 10, products=[5, 6] * 15)
    a = [plan_operation(state, r) for r in [random.Random(9)] for _ in range(50)]
    b = [plan_operation(state, r) for r in [random.Random(9)] for _ in range(50)]
    assert [x.kind for x in a] == [y.kind for y in b]
