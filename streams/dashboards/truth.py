"""The shop's dashboard metrics recomputed from its tables: the one shop-specific part of
verifying the dashboards.

The dashboard definitions name metrics and windows; what a row adds to which metric is decided
in code (`logic.contribution`, `logic.interaction_deltas`), so the ground truth says it again
here, independently, from the source tables' current state (not by calling `logic`, which
would hide its mistakes):
- orders and revenue: every order that is not cancelled, at its `created_at`, with its `total`
  (a deleted order is gone, as the worker retracts it);
- product and category revenue: `quantity * unit_price` of every line of such an order, at the
  line's `created_at`, under its product and the product's category. The category is the
  product's current one; the worker keeps the one it first counted a line under, so a product
  moved to another category after its lines were counted differs (the shop's workload never
  moves one). A line whose product the worker does not know goes to "uncategorised" there;
- interactions: one per row by kind at `occurred_at`; product views per product for page
  views; the customer as an active user. The worker never retracts an interaction, so a
  deleted one (the workload deletes none) shows as extra.

`read_facts` runs the queries in one repeatable-read transaction (one snapshot); `facts` turns
their rows into `verify.Fact`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from streams.dashboards import logic
from streams.dashboards.verify import Fact

# Which change stream of the worker feeds each metric (for its late-drop counts).
STREAM_METRICS: dict[str, frozenset[str]] = {
    "orders": frozenset({logic.ORDERS, logic.REVENUE}),
    "order_lines": frozenset({logic.PRODUCT_REVENUE, logic.CATEGORY_REVENUE}),
    "interactions": frozenset(
        {
            logic.PAGE_VIEWS,
            logic.ADD_TO_CART,
            logic.SEARCHES,
            logic.CLICKS,
            logic.PRODUCT_VIEWS,
            logic.ACTIVE_USERS,
        }
    ),
}

_INTERACTION_METRIC = {
    "page_view": logic.PAGE_VIEWS,
    "add_to_cart": logic.ADD_TO_CART,
    "search": logic.SEARCHES,
    "click": logic.CLICKS,
}

# Per second of event time: the source is summed in SQL as far as the windows allow.
ORDERS_SQL = """
SELECT floor(extract(epoch FROM created_at))::bigint AS second, count(*), sum(total)
FROM orders
WHERE status <> 'cancelled' AND created_at >= to_timestamp(%(lower)s)
GROUP BY 1
"""
LINES_SQL = """
SELECT floor(extract(epoch FROM li.created_at))::bigint AS second, li.product_id, p.category,
       sum(li.quantity * li.unit_price)
FROM order_items li
JOIN orders o ON o.id = li.order_id
JOIN products p ON p.id = li.product_id
WHERE o.status <> 'cancelled' AND li.created_at >= to_timestamp(%(lower)s)
GROUP BY 1, 2, 3
"""
INTERACTIONS_SQL = """
SELECT floor(extract(epoch FROM occurred_at))::bigint AS second, kind, customer_id, product_id,
       count(*)
FROM interactions
WHERE occurred_at >= to_timestamp(%(lower)s)
GROUP BY 1, 2, 3, 4
"""


def facts(
    orders: Iterable[tuple[Any, ...]],
    lines: Iterable[tuple[Any, ...]],
    interactions: Iterable[tuple[Any, ...]],
) -> Iterator[Fact]:
    """The facts of the rows of `ORDERS_SQL`, `LINES_SQL` and `INTERACTIONS_SQL`."""
    for second, count, total in orders:
        yield Fact(logic.ORDERS, int(second), float(count))
        yield Fact(logic.REVENUE, int(second), float(total))
    for second, product_id, category, amount in lines:
        yield Fact(logic.PRODUCT_REVENUE, int(second), float(amount), str(product_id))
        yield Fact(logic.CATEGORY_REVENUE, int(second), float(amount), str(category))
    for second, kind, customer_id, product_id, count in interactions:
        metric = _INTERACTION_METRIC.get(kind)
        if metric is None:
            continue  # the table's check constraint allows no other kind
        yield Fact(metric, int(second), float(count))
        yield Fact(logic.ACTIVE_USERS, int(second), 1.0, str(customer_id))
        if kind == "page_view" and product_id is not None:
            yield Fact(logic.PRODUCT_VIEWS, int(second), float(count), str(product_id))


def read_facts(dsn: str, lower_s: int) -> list[Fact]:
    """The facts of every row at or after `lower_s` (epoch seconds), from one snapshot."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        params = {"lower": lower_s}
        with conn.transaction():
            orders = conn.execute(ORDERS_SQL, params).fetchall()
            lines = conn.execute(LINES_SQL, params).fetchall()
            interactions = conn.execute(INTERACTIONS_SQL, params).fetchall()
    return list(facts(orders, lines, interactions))
