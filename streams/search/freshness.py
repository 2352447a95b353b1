"""The freshness benchmark's pure parts: the load it writes, how a change is encoded in a row and
recognised in a search document, and how a measured step is judged. No I/O (`bench` does it).

Every change carries a number `seq` from one sequence. A row change writes it into the field it
changes (name `Bench item <run> s<seq>`, price `1 + seq * 0.01`, stock `seq`), so a document
shows the last change of its row it reflects: the largest seq among those three fields. That is
the row's last change in commit order because the writer takes `seq` inside the statement that
holds the row lock (see `streams.search.bench`).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from headwater.models.shop import BRANDS, CATALOGUE

# What an application does to its catalogue, relative weights. Row changes (name, price, stock)
# and review changes go to a product picked with the hot/cold skew; product inserts add cold rows
# and product deletes remove cold rows only, so the hot set stays the same for the whole run.
MIX: dict[str, int] = {
    "name": 30,
    "price": 20,
    "stock": 20,
    "review_insert": 10,
    "review_delete": 5,
    "product_insert": 8,
    "product_delete": 7,
}
ROW_KINDS = ("name", "price", "stock")
REVIEWS = "reviews"  # the products index's summary of public.reviews

CATEGORIES = sorted(CATALOGUE)

# A step is sustained when all of these hold (`problems`).
TARGET_P95_MS = 1000.0
WRITER_SHARE = 0.9  # achieved / target below this: the writer, not the pipeline, fell short
BACKLOG_FACTOR = 2.0
BACKLOG_FLOOR_MS = 250.0
RAMP_RATES = (250, 500, 750, 1000, 2000, 3000, 4000, 5000, 6000, 8000)


@dataclass(frozen=True)
class Load:
    """What the writer does: `rate` changes/s from `sessions` connections for `duration_s`."""

    rate: float = 1000.0
    duration_s: float = 30.0
    sessions: int = 8
    txn_rows: int = 1  # changes per transaction
    hot_rows: int = 20
    hot_share: float = 0.5  # of the changes that pick an existing product
    rows: int = 2000
    # Seconds of load at `rate` before the main step, not measured: the first seconds on a stack
    # just started are its JIT and caches warming up, not the pipeline.
    warmup_s: float = 10.0

    def check(self) -> None:
        """Raise ValueError naming the first option out of range."""
        if self.rate <= 0 or self.duration_s <= 0:
            raise ValueError("--rate and --duration must be positive")
        if self.warmup_s < 0:
            raise ValueError("--warmup must be 0 or more")
        if self.sessions < 1 or self.txn_rows < 1:
            raise ValueError("--sessions and --txn-rows must be at least 1")
        if not 0.0 <= self.hot_share <= 1.0:
            raise ValueError("--hot-share must be between 0 and 1")
        if not 0 <= self.hot_rows < self.rows:
            raise ValueError("--hot-rows must be at least 0 and fewer than --rows")

    def txn_interval_s(self, rate: float) -> float:
        """Seconds between one session's transactions for the sessions to commit `rate`/s."""
        return self.txn_rows * self.sessions / rate


# --- encodings ---------------------------------------------------------------------------------


def name_prefix(run: str) -> str:
    return f"Bench item {run} s"


def name_of(run: str, seq: int) -> str:
    return f"{name_prefix(run)}{seq}"


def price_of(seq: int) -> Decimal:
    return (Decimal(1) + Decimal(seq) / 100).quantize(Decimal("0.01"))


def stock_of(seq: int) -> int:
    return seq


def row_value(kind: str, run: str, seq: int) -> str | Decimal | int:
    """What a row change of `kind` writes into its field."""
    if kind == "name":
        return name_of(run, seq)
    if kind == "price":
        return price_of(seq)
    if kind == "stock":
        return stock_of(seq)
    raise ValueError(f"not a row change: {kind!r}")


def review_prefix(run: str) -> str:
    return f"Bench review {run} s"


def sku_of(run: str, n: int) -> str:
    return f"bench-{run}-{n}"


def product_row(run: str, n: int) -> dict[str, str]:
    """The descriptive columns of bench product `n`: a plausible catalogue entry."""
    category = CATEGORIES[n % len(CATEGORIES)]
    nouns = CATALOGUE[category]
    noun = nouns[(n // len(CATEGORIES)) % len(nouns)]
    brand = BRANDS[(n * 3) % len(BRANDS)]
    return {
        "sku": sku_of(run, n),
        "description": f"{noun} by {brand}, kept current by the freshness benchmark.",
        "category": category,
        "brand": brand,
    }


def seq_in_name(run: str, name: Any) -> int | None:
    found = re.fullmatch(rf"{re.escape(name_prefix(run))}(\d+)", str(name))
    return int(found.group(1)) if found else None


def seq_in_price(price: Any) -> int | None:
    """The seq of a price as the document holds it (a JSON number) or the row (a Decimal)."""
    try:
        cents = (Decimal(str(price)) - 1) * 100
    except InvalidOperation:
        return None
    whole = cents.to_integral_value()
    return int(whole) if whole >= 0 and abs(cents - whole) < Decimal("0.001") else None


def seq_in_stock(stock: Any) -> int | None:
    return stock if isinstance(stock, int) and not isinstance(stock, bool) and stock >= 0 else None


def row_seq(run: str, source: Mapping[str, Any]) -> int:
    """The last change of its row a document shows: the largest seq in name, price and stock."""
    found = [
        seq_in_name(run, source.get("name")),
        seq_in_price(source.get("price")),
        seq_in_stock(source.get("stock")),
    ]
    return max((s for s in found if s is not None), default=-1)


# --- the changes and the rows they pick ---------------------------------------------------------


@dataclass(slots=True, eq=False)
class Change:
    """One change: planned (kind, target), then committed (seq, time), then seen."""

    kind: str
    product_id: int | None
    hot: bool
    review_id: int | None = None
    dropped_reviews: tuple[int, ...] = ()  # a product delete takes its reviews with it
    seq: int = -1
    committed: float = 0.0
    seen: float | None = None

    @property
    def latency_s(self) -> float | None:
        return None if self.seen is None else self.seen - self.committed


def is_seen(change: Change, doc: Mapping[str, Any] | None, run: str) -> bool:
    """Whether a search document (its `_source`, None if the search does not find it) shows
    `change` or anything later of the same row."""
    if change.kind == "product_delete":
        return doc is None  # the alias hides dead documents
    if doc is None:
        return False
    if change.kind == "product_insert":
        return True
    if change.kind in ROW_KINDS:
        return row_seq(run, doc) >= change.seq
    entry = ((doc.get("hw_children") or {}).get(REVIEWS) or {}).get(str(change.review_id))
    if change.kind == "review_insert":
        return entry is not None  # a later delete leaves [lsn, null]: later, so seen too
    if change.kind == "review_delete":
        return entry is None or entry[1] is None
    raise ValueError(f"unknown change kind {change.kind!r}")


def draw_kind(rng: random.Random) -> str:
    return rng.choices(list(MIX), weights=list(MIX.values()))[0]


class Bag:
    """Ids with O(1) add, remove and uniform choice."""

    def __init__(self, items: Iterable[int] = ()) -> None:
        self._items: list[int] = []
        self._at: dict[int, int] = {}
        for item in items:
            self.add(item)

    def add(self, item: int) -> None:
        if item not in self._at:
            self._at[item] = len(self._items)
            self._items.append(item)

    def remove(self, item: int) -> None:
        at = self._at.pop(item, None)
        if at is None:
            return
        last = self._items.pop()
        if at < len(self._items):
            self._items[at] = last
            self._at[last] = at

    def choice(self, rng: random.Random) -> int:
        return self._items[rng.randrange(len(self._items))]

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: object) -> bool:
        return item in self._at

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._items))


class Pool:
    """The bench rows that exist and which of them a change may pick; not thread-safe (the
    writer holds a lock around every call).

    Every change is decidable from the document alone. A product is `busy` from the moment a
    change to it is planned until that change is seen; a delete only picks a product that is
    not busy, so no pending change of a row can be hidden by the row's deletion. A review may be
    deleted only once its insert was seen, so "entry absent" cannot mean "not indexed yet".
    """

    DELETE_TRIES = 20

    def __init__(self, hot: Sequence[int], cold: Iterable[int], reviews: Mapping[int, int]):
        self.hot = list(hot)
        self._hot = set(hot)
        self.cold = Bag(cold)
        self.busy: Counter[int] = Counter()
        self._review_product: dict[int, int] = {}
        self.deletable = Bag()
        self._deletable_of: dict[int, Bag] = {}
        for review, product in reviews.items():
            self._give_review(review, product)

    def pick_product(self, rng: random.Random, hot_share: float) -> tuple[int, bool] | None:
        """A live product: from the hot set with probability `hot_share`, else a cold one."""
        want_hot = rng.random() < hot_share
        if self.hot and (want_hot or not self.cold):
            return self.hot[rng.randrange(len(self.hot))], True
        if self.cold:
            return self.cold.choice(rng), False
        return None

    def plan(self, rng: random.Random, hot_share: float) -> Change | None:
        """The next change, its target picked and marked busy; None if nothing fits."""
        for _ in range(10):
            change = self._plan(draw_kind(rng), rng, hot_share)
            if change is not None:
                if change.product_id is not None:
                    self.busy[change.product_id] += 1
                return change
        return None

    def _plan(self, kind: str, rng: random.Random, hot_share: float) -> Change | None:
        if kind == "product_insert":
            return Change(kind, None, False)
        if kind == "product_delete":
            return self._plan_delete(rng)
        target = self.pick_product(rng, hot_share)
        if target is None:
            return None
        product, hot = target
        if kind != "review_delete":
            return Change(kind, product, hot)
        mine = self._deletable_of.get(product)
        if mine:
            review = mine.choice(rng)
        elif self.deletable:
            review = self.deletable.choice(rng)
            product = self._review_product[review]
            hot = product in self._hot
        else:
            return None
        self._take_review(review)
        return Change(kind, product, hot, review_id=review)

    def _plan_delete(self, rng: random.Random) -> Change | None:
        if not self.cold:
            return None
        for _ in range(self.DELETE_TRIES):
            product = self.cold.choice(rng)
            if not self.busy[product]:
                break
        else:
            return None
        self.cold.remove(product)
        dropped = tuple(self._deletable_of.pop(product, ()))
        for review in dropped:
            self.deletable.remove(review)
            del self._review_product[review]
        return Change("product_delete", product, False, dropped_reviews=dropped)

    def committed(self, change: Change) -> None:
        if change.kind == "product_insert":
            assert change.product_id is not None
            self.cold.add(change.product_id)
            self.busy[change.product_id] += 1

    def failed(self, change: Change) -> None:
        """A planned change whose transaction rolled back: as if never planned."""
        if change.product_id is None:
            return
        self._release(change.product_id)
        if change.kind == "review_delete":
            assert change.review_id is not None
            self._give_review(change.review_id, change.product_id)
        elif change.kind == "product_delete":
            self.cold.add(change.product_id)
            for review in change.dropped_reviews:
                self._give_review(review, change.product_id)

    def seen(self, change: Change) -> None:
        assert change.product_id is not None
        self._release(change.product_id)
        if change.kind == "review_insert":
            assert change.review_id is not None
            self._give_review(change.review_id, change.product_id)
        elif change.kind == "product_delete":
            self.busy.pop(change.product_id, None)

    def _release(self, product: int) -> None:
        self.busy[product] -= 1
        if self.busy[product] <= 0:
            del self.busy[product]

    def _give_review(self, review: int, product: int) -> None:
        self._review_product[review] = product
        self.deletable.add(review)
        self._deletable_of.setdefault(product, Bag()).add(review)

    def _take_review(self, review: int) -> None:
        product = self._review_product.pop(review)
        self.deletable.remove(review)
        self._deletable_of[product].remove(review)


def next_due(due: float, interval: float, now: float, max_lag: float) -> float:
    """When a session's next transaction is due: one interval after the last one, but never
    more than `max_lag` in the past, so a session that fell behind catches up a little and
    then skips what it missed instead of bursting."""
    return max(due + interval, now - max_lag)


# --- statistics and the verdict -----------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (`q` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {
        "count": len(values_ms),
        "p50": r(percentile(values_ms, 0.50)),
        "p95": r(percentile(values_ms, 0.95)),
        "p99": r(percentile(values_ms, 0.99)),
        "max": r(max(values_ms)) if values_ms else None,
    }


def backlog_growing(first_p95_ms: float | None, last_p95_ms: float | None) -> bool:
    """Latency grew within a step: the p95 of the changes committed in its last third is above
    twice that of its first third, and above BACKLOG_FLOOR_MS (below which doubling is noise)."""
    if first_p95_ms is None or last_p95_ms is None:
        return False
    return last_p95_ms > max(BACKLOG_FACTOR * first_p95_ms, BACKLOG_FLOOR_MS)


def writer_limited(target: float, achieved: float) -> bool:
    return achieved < WRITER_SHARE * target


def problems(step: Mapping[str, Any]) -> list[str]:
    """Why a summarised step is not sustained; empty when it is."""
    out = []
    latency = step["latency_ms"]
    if writer_limited(step["target_rate"], step["achieved_rate"]):
        out.append(f"writer reached {step['achieved_rate']:g}/s")
    if latency["p95"] is None or latency["p95"] >= TARGET_P95_MS:
        out.append("p95 >= 1 s")
    if step["seen"] < step["changes"]:
        out.append(f"{step['changes'] - step['seen']} never seen")
    first, _, last = step["thirds_p95_ms"]
    if backlog_growing(first, last):
        out.append(f"latency grew {first:g} -> {last:g} ms")
    return out


def summarise_step(
    target_rate: float,
    start: float,
    elapsed_s: float,
    changes: Sequence[Change],
    errors: int,
    debezium_ms: Sequence[float],
    txn_s: Sequence[float] = (),
) -> dict[str, Any]:
    """A step's figures from its committed changes (times on the monotonic clock), Debezium's
    commit-to-Kafka latencies and the writer's transaction durations."""
    ms = _ms(changes)
    thirds: list[list[float]] = [[], [], []]
    for c in changes:
        if c.latency_s is not None:
            at = 3 * (c.committed - start) / elapsed_s if elapsed_s > 0 else 0
            thirds[min(2, max(0, int(at)))].append(c.latency_s * 1000)
    by_kind = {}
    for kind in MIX:
        mine = [c for c in changes if c.kind == kind]
        seen_ms = _ms(mine)
        by_kind[kind] = {"changes": len(mine), "seen": len(seen_ms), **latency_summary(seen_ms)}
    step: dict[str, Any] = {
        "target_rate": target_rate,
        "achieved_rate": round(len(changes) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "duration_s": round(elapsed_s, 1),
        "changes": len(changes),
        "seen": len(ms),
        "errors": errors,
        "latency_ms": latency_summary(ms),
        "hot_ms": latency_summary(_ms(c for c in changes if c.hot)),
        "cold_ms": latency_summary(_ms(c for c in changes if not c.hot)),
        "thirds_p95_ms": [latency_summary(t)["p95"] for t in thirds],
        "by_kind": by_kind,
        "debezium_commit_to_kafka_ms": latency_summary(debezium_ms),
        "transaction_ms": latency_summary([t * 1000 for t in txn_s]),
    }
    found = problems(step)
    step["sustained"] = not found
    step["problems"] = found
    step["writer_limited"] = writer_limited(target_rate, step["achieved_rate"])
    return step


def _ms(changes: Iterable[Change]) -> list[float]:
    return [c.latency_s * 1000 for c in changes if c.latency_s is not None]


def verdict(step: Mapping[str, Any]) -> str:
    """One line on a summarised step, telling a writer limit from a pipeline one."""
    if step["sustained"]:
        return "sustained"
    why = "; ".join(step["problems"])
    if step["writer_limited"]:
        alone = len(step["problems"]) == 1
        why += " (a writer limit, not the pipeline's)" if alone else " (the writer fell short too)"
    return f"not sustained: {why}"


def ramp_rates(rate: float) -> list[float]:
    return [float(r) for r in RAMP_RATES if r > rate]
