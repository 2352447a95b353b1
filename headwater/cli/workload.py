"""Sample workload: realistic inserts, updates and deletes on the shop, at a chosen rate.

`plan_operation` (pure, seeded) decides what to do next from what exists; `ShopWriter` turns
an operation into SQL. `generate` paces them and reports what was written.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from tenacity import Retrying, retry_if_exception_type, stop_after_delay

from headwater.console import console, err_console, fail, print_json, print_table
from headwater.models.shop import BRANDS, CATALOGUE
from headwater.resilience import RetryPolicy
from headwater.settings import PostgresSettings

ADJECTIVES = ["Classic", "Ultra", "Eco", "Smart", "Compact", "Pro", "Vintage", "Everyday", "Deluxe"]
FIRST = ["Ada", "Grace", "Linus", "Alan", "Barbara", "Ken", "Margaret", "Dennis", "Frances"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Turing", "Liskov", "Thompson", "Hamilton", "Allen"]
COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "SE", "JP", "BR"]
PRAISE = ["works perfectly", "great value", "sturdy and well made", "exceeded expectations"]
COMPLAINTS = ["broke after a week", "smaller than expected", "arrived late", "feels cheap"]
SEARCHES = ["waterproof", "gift", "cheap", "wireless", "stainless steel", "for kids", "organic"]

# Relative weights of what a shop does; interactions dominate as they do in real traffic.
WEIGHTS: dict[str, int] = {
    "interaction": 50,
    "new_order": 12,
    "advance_order": 10,
    "cancel_order": 2,
    "delete_order": 1,
    "new_review": 6,
    "edit_review": 2,
    "delete_review": 1,
    "update_product": 6,
    "new_product": 2,
    "new_customer": 4,
    "update_customer": 2,
}
NEXT_STATUS = {"pending": "paid", "paid": "shipped"}


@dataclass
class ShopState:
    """Ids that exist in the source, so operations only reference real rows."""

    customers: list[int] = field(default_factory=list)
    products: list[int] = field(default_factory=list)
    open_orders: dict[int, str] = field(default_factory=dict)  # id -> status
    reviews: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Operation:
    kind: str
    table: str
    action: str  # insert | update | delete
    params: dict[str, Any]


def _product_fields(rng: random.Random) -> dict[str, Any]:
    category = rng.choice(list(CATALOGUE))
    noun = rng.choice(CATALOGUE[category])
    brand = rng.choice(BRANDS)
    name = f"{rng.choice(ADJECTIVES)} {noun}"
    return {
        "sku": f"SKU-{rng.getrandbits(40):010x}",
        "name": name,
        "description": f"{name} by {brand}: {rng.choice(PRAISE)}, built for {category} lovers.",
        "category": category,
        "brand": brand,
        "price": Decimal(rng.randint(199, 49999)) / 100,
        "stock": rng.randint(0, 500),
    }


def _customer_fields(rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return {
        "email": f"{first}.{last}.{rng.getrandbits(32):08x}@example.com".lower(),
        "full_name": f"{first} {last}",
        "country": rng.choice(COUNTRIES),
    }


def plan_operation(state: ShopState, rng: random.Random) -> Operation:
    """The next operation, chosen by weight among those the current state allows."""
    if len(state.customers) < 20:
        return Operation("new_customer", "customers", "insert", _customer_fields(rng))
    if len(state.products) < 20:
        return Operation("new_product", "products", "insert", _product_fields(rng))
    allowed = {
        k: w
        for k, w in WEIGHTS.items()
        if not (k in ("advance_order", "cancel_order", "delete_order") and not state.open_orders)
        and not (k in ("edit_review", "delete_review") and not state.reviews)
    }
    kind = rng.choices(list(allowed), weights=list(allowed.values()))[0]
    customer, product = rng.choice(state.customers), rng.choice(state.products)
    match kind:
        case "interaction":
            action = rng.choices(["page_view", "search", "click", "add_to_cart"], [50, 15, 25, 10])[
                0
            ]
            query = rng.choice(SEARCHES) if action == "search" else None
            return Operation(
                kind,
                "interactions",
                "insert",
                {
                    "customer_id": customer,
                    "product_id": None if query else product,
                    "kind": action,
                    "query": query,
                },
            )
        case "new_order":
            items = [
                {"product_id": rng.choice(state.products), "quantity": rng.randint(1, 3)}
                for _ in range(rng.randint(1, 4))
            ]
            return Operation(kind, "orders", "insert", {"customer_id": customer, "items": items})
        case "advance_order" | "cancel_order":
            order_id = rng.choice(list(state.open_orders))
            status = (
                "cancelled" if kind == "cancel_order" else NEXT_STATUS[state.open_orders[order_id]]
            )
            return Operation(kind, "orders", "update", {"id": order_id, "status": status})
        case "delete_order":
            return Operation(kind, "orders", "delete", {"id": rng.choice(list(state.open_orders))})
        case "new_review":
            rating = rng.choices([1, 2, 3, 4, 5], [5, 8, 15, 35, 37])[0]
            remark = rng.choice(PRAISE if rating >= 3 else COMPLAINTS)
            return Operation(
                kind,
                "reviews",
                "insert",
                {
                    "product_id": product,
                    "customer_id": customer,
                    "rating": rating,
                    "body": f"{remark.capitalize()}. Rated {rating} of 5.",
                },
            )
        case "edit_review":
            rid = rng.choice(state.reviews)
            rating = rng.randint(1, 5)
            return Operation(
                kind,
                "reviews",
                "update",
                {
                    "id": rid,
                    "rating": rating,
                    "body": f"Updated: {rng.choice(PRAISE + COMPLAINTS)}.",
                },
            )
        case "delete_review":
            return Operation(kind, "reviews", "delete", {"id": rng.choice(state.reviews)})
        case "update_product":
            return Operation(
                kind,
                "products",
                "update",
                {
                    "id": product,
                    "price": Decimal(rng.randint(199, 49999)) / 100,
                    "stock": rng.randint(0, 500),
                },
            )
        case "new_product":
            return Operation(kind, "products", "insert", _product_fields(rng))
        case "new_customer":
            return Operation(kind, "customers", "insert", _customer_fields(rng))
        case _:
            return Operation(
                kind, "customers", "update", {"id": customer, "country": rng.choice(COUNTRIES)}
            )


class ShopWriter:
    """Applies operations to the source database, one transaction each, and tracks state."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.state = self._load_state()

    def _ids(self, sql: str) -> list[int]:
        return [row[0] for row in self.conn.execute(sql)]

    def _load_state(self) -> ShopState:
        return ShopState(
            customers=self._ids("SELECT id FROM customers"),
            products=self._ids("SELECT id FROM products"),
            open_orders=dict(
                self.conn.execute(
                    "SELECT id, status FROM orders WHERE status IN ('pending', 'paid')"
                ).fetchall()
            ),
            reviews=self._ids("SELECT id FROM reviews"),
        )

    def apply(self, op: Operation) -> None:
        p, s, c = op.params, self.state, self.conn
        with c.transaction():
            match op.kind:
                case "new_customer":
                    row = c.execute(
                        "INSERT INTO customers (email, full_name, country) VALUES "
                        "(%(email)s, %(full_name)s, %(country)s) RETURNING id",
                        p,
                    ).fetchone()
                    s.customers.append(row[0])  # type: ignore[index]
                case "new_product":
                    row = c.execute(
                        "INSERT INTO products (sku, name, description, category, brand, price, "
                        "stock) VALUES (%(sku)s, %(name)s, %(description)s, %(category)s, "
                        "%(brand)s, %(price)s, %(stock)s) RETURNING id",
                        p,
                    ).fetchone()
                    s.products.append(row[0])  # type: ignore[index]
                case "interaction":
                    c.execute(
                        "INSERT INTO interactions (customer_id, product_id, kind, query) VALUES "
                        "(%(customer_id)s, %(product_id)s, %(kind)s, %(query)s)",
                        p,
                    )
                case "new_order":
                    order_id = c.execute(
                        "INSERT INTO orders (customer_id) VALUES (%s) RETURNING id",
                        (p["customer_id"],),
                    ).fetchone()[0]  # type: ignore[index]
                    for item in p["items"]:
                        c.execute(
                            "INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                            "SELECT %s, id, %s, price FROM products WHERE id = %s",
                            (order_id, item["quantity"], item["product_id"]),
                        )
                    c.execute(
                        "UPDATE orders SET total = (SELECT coalesce(sum(quantity * unit_price), 0)"
                        " FROM order_items WHERE order_id = %s), updated_at = now() WHERE id = %s",
                        (order_id, order_id),
                    )
                    s.open_orders[order_id] = "pending"
                case "advance_order" | "cancel_order":
                    c.execute(
                        "UPDATE orders SET status = %(status)s, updated_at = now() "
                        "WHERE id = %(id)s",
                        p,
                    )
                    if p["status"] in NEXT_STATUS:
                        s.open_orders[p["id"]] = p["status"]
                    else:
                        s.open_orders.pop(p["id"], None)
                case "delete_order":
                    c.execute("DELETE FROM orders WHERE id = %(id)s", p)
                    s.open_orders.pop(p["id"], None)
                case "new_review":
                    row = c.execute(
                        "INSERT INTO reviews (product_id, customer_id, rating, body) VALUES "
                        "(%(product_id)s, %(customer_id)s, %(rating)s, %(body)s) RETURNING id",
                        p,
                    ).fetchone()
                    s.reviews.append(row[0])  # type: ignore[index]
                case "edit_review":
                    c.execute(
                        "UPDATE reviews SET rating = %(rating)s, body = %(body)s, "
                        "updated_at = now() WHERE id = %(id)s",
                        p,
                    )
                case "delete_review":
                    c.execute("DELETE FROM reviews WHERE id = %(id)s", p)
                    s.reviews.remove(p["id"])
                case "update_product":
                    c.execute(
                        "UPDATE products SET price = %(price)s, stock = %(stock)s, "
                        "updated_at = now() WHERE id = %(id)s",
                        p,
                    )
                case "update_customer":
                    c.execute(
                        "UPDATE customers SET country = %(country)s, updated_at = now() "
                        "WHERE id = %(id)s",
                        p,
                    )


@dataclass
class WorkloadReport:
    written: Counter[tuple[str, str]]
    seconds: float
    reconnects: int = 0  # times the connection was lost (say, a database restart) and made again
    skipped: int = 0  # operations given up: lost with the connection, or rolled back by a conflict

    @property
    def total(self) -> int:
        return sum(self.written.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "seconds": round(self.seconds, 2),
            "reconnects": self.reconnects,
            "skipped": self.skipped,
            "rate_per_s": round(self.total / self.seconds, 1) if self.seconds else None,
            "by_table": [
                {"table": t, "action": a, "count": n} for (t, a), n in sorted(self.written.items())
            ],
        }


# Waiting out a lost connection: the integration standard's backoff (100 ms doubling to 30 s,
# with jitter), for as long as a database restart or failover may take.
RECONNECT_WITHIN_S = 300.0
# What a concurrent writer can make the database roll back: plan another operation.
ROLLED_BACK = (
    psycopg.errors.TransactionRollback,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)


def _connect(pg: PostgresSettings, within_s: float) -> psycopg.Connection[Any]:
    """A connection to the source database, retried with backoff for up to `within_s`."""
    retrying = Retrying(
        retry=retry_if_exception_type(psycopg.OperationalError),
        wait=RetryPolicy().tenacity_wait(),
        stop=stop_after_delay(within_s),
        reraise=True,
        before_sleep=lambda state: err_console.print(
            f"[yellow]{pg.host}:{pg.port}/{pg.source_db} unreachable[/] "
            f"(attempt {state.attempt_number}); retrying"
        ),
    )
    conn: psycopg.Connection[Any] = retrying(psycopg.connect, pg.dsn(pg.source_db), autocommit=True)
    return conn


def run_workload(
    pg: PostgresSettings,
    rate: float,
    total: int,
    seed: int | None = None,
    show: bool = True,
    reconnect_within_s: float = RECONNECT_WITHIN_S,
) -> WorkloadReport:
    """Write `total` operations at about `rate` per second (0 = as fast as possible).

    A lost connection (the database restarted, say) is made again, waiting up to
    `reconnect_within_s`; the operation in flight is given up (it rolled back, or its commit is
    unknown) and the shop's state is read afresh. So is an operation a conflict rolled back."""
    rng = random.Random(seed)
    report = WorkloadReport(Counter(), 0.0)
    interval = 1.0 / rate if rate > 0 else 0.0
    start = time.monotonic()
    progress = Progress(
        TextColumn("[bold]writing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
    )
    conn = _connect(pg, reconnect_within_s)
    try:
        with progress:
            task = progress.add_task("ops", total=total)
            writer = ShopWriter(conn)
            n = 0
            while n < total:
                op = plan_operation(writer.state, rng)
                try:
                    writer.apply(op)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    report.skipped += 1
                    if not (conn.broken or conn.closed):
                        if isinstance(exc, ROLLED_BACK):
                            continue  # a deadlock or serialization failure: plan another
                        raise
                    reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                    err_console.print(f"[yellow]connection lost[/] ({reason}); reconnecting")
                    conn.close()
                    conn = _connect(pg, reconnect_within_s)
                    writer = ShopWriter(conn)
                    report.reconnects += 1
                    continue
                report.written[(op.table, op.action)] += 1
                n += 1
                progress.advance(task)
                # Pace against the schedule, not the previous write, so the rate holds on average.
                ahead = start + n * interval - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    finally:
        conn.close()
    report.seconds = time.monotonic() - start
    return report


def generate(
    ctx: typer.Context,
    rate: float = typer.Option(50.0, help="Operations per second (0: as fast as possible)."),
    total: int = typer.Option(1000, help="How many operations to write."),
    seed: int | None = typer.Option(None, help="Seed for a repeatable workload."),
    json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Write realistic inserts, updates and deletes to the shop at RATE, TOTAL in all."""
    from headwater.console import settings_of

    if total < 0 or rate < 0:
        fail("--rate and --total must not be negative")
    pg = settings_of(ctx).postgres
    try:
        report = run_workload(pg, rate, total, seed, show=not json)
    except psycopg.Error as exc:
        fail(f"writing to {pg.host}:{pg.port}/{pg.source_db} failed: {exc}")
    if json:
        print_json(report.as_dict())
        return
    data = report.as_dict()
    console.print(
        f"wrote {data['total']} operations in {data['seconds']}s ({data['rate_per_s']}/s)"
    )
    if report.reconnects:
        console.print(
            f"reconnected {report.reconnects} time(s); {report.skipped} operation(s) given up "
            "(lost with the connection or rolled back) and replaced"
        )
    print_table(
        "Changes written",
        ["table", "action", "count"],
        [[r["table"], r["action"], r["count"]] for r in data["by_table"]],
    )
