"""The freshness benchmark's pure parts: encodings, what a document shows, the load's picks and
the verdict on a step."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from streams.search.freshness import (
    MIX,
    Change,
    Load,
    Pool,
    backlog_growing,
    draw_kind,
    is_seen,
    latency_summary,
    name_of,
    next_due,
    percentile,
    price_of,
    product_row,
    ramp_rates,
    row_seq,
    row_value,
    seq_in_name,
    seq_in_price,
    seq_in_stock,
    stock_of,
    summarise_step,
    verdict,
)

RUN = "a1b2c3"


# --- encodings ---


@pytest.mark.parametrize("seq", [0, 1, 7, 99, 100, 12345, 987_654_321])
def test_every_encoding_decodes_to_its_seq(seq: int) -> None:
    assert seq_in_name(RUN, name_of(RUN, seq)) == seq
    assert seq_in_price(price_of(seq)) == seq
    # Documents hold the price as a JSON number (a double).
    assert seq_in_price(float(price_of(seq))) == seq
    assert seq_in_stock(stock_of(seq)) == seq


def test_encodings_are_the_documented_values() -> None:
    assert name_of(RUN, 42) == "Bench item a1b2c3 s42"
    assert price_of(42) == Decimal("1.42")
    assert price_of(1234) == Decimal("13.34")
    assert stock_of(42) == 42
    assert row_value("price", RUN, 5) == Decimal("1.05")
    with pytest.raises(ValueError):
        row_value("review_insert", RUN, 5)


def test_values_that_are_not_encodings_decode_to_nothing() -> None:
    assert seq_in_name(RUN, "Bench item ffffff s3") is None  # another run's
    assert seq_in_name(RUN, "Smart Charger") is None
    assert seq_in_name(RUN, None) is None
    assert seq_in_price(0.5) is None
    assert seq_in_price(1.005) is None
    assert seq_in_price("n/a") is None
    assert seq_in_stock(-1) is None
    assert seq_in_stock(True) is None


def test_a_row_shows_the_largest_seq_of_its_fields() -> None:
    doc = {"name": name_of(RUN, 10), "price": float(price_of(25)), "stock": 3}
    assert row_seq(RUN, doc) == 25
    assert row_seq(RUN, {}) == -1


def test_bench_products_look_like_a_catalogue() -> None:
    row = product_row(RUN, 7)
    assert row["sku"] == "bench-a1b2c3-7"
    assert row["category"] in {"kitchen", "outdoor", "electronics", "books", "home"}
    assert row["brand"] in row["description"]
    assert product_row(RUN, 7) == row


# --- what a document shows ---


def doc(seq: int, reviews: dict[str, list[object]] | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "name": name_of(RUN, seq),
        "price": float(price_of(seq)),
        "stock": seq,
    }
    if reviews is not None:
        out["hw_children"] = {"reviews": reviews}
    return out


@pytest.mark.parametrize("kind", ["name", "price", "stock"])
def test_a_row_change_is_seen_by_itself_or_anything_later(kind: str) -> None:
    change = Change(kind, 1, False, seq=20)
    assert not is_seen(change, None, RUN)
    assert not is_seen(change, doc(19), RUN)
    assert is_seen(change, doc(20), RUN)
    assert is_seen(change, {"name": name_of(RUN, 3), "price": 1.0, "stock": 21}, RUN)


def test_review_changes_are_seen_by_their_child_entry() -> None:
    insert = Change("review_insert", 1, False, review_id=70)
    delete = Change("review_delete", 1, False, review_id=70)
    assert not is_seen(insert, doc(1, {}), RUN)
    assert is_seen(insert, doc(1, {"70": [5, [4]]}), RUN)
    assert is_seen(insert, doc(1, {"70": [9, None]}), RUN)  # deleted since: later, so seen
    assert not is_seen(delete, doc(1, {"70": [5, [4]]}), RUN)
    assert is_seen(delete, doc(1, {"70": [9, None]}), RUN)
    assert is_seen(delete, doc(1), RUN)
    assert not is_seen(delete, None, RUN)


def test_product_inserts_appear_and_deletes_disappear() -> None:
    assert is_seen(Change("product_insert", 5, False, seq=3), doc(3), RUN)
    assert not is_seen(Change("product_insert", 5, False, seq=3), None, RUN)
    assert is_seen(Change("product_delete", 5, False), None, RUN)
    assert not is_seen(Change("product_delete", 5, False), doc(3), RUN)


# --- the load ---


def test_the_mix_follows_its_weights() -> None:
    rng = random.Random(1)
    drawn = Counter(draw_kind(rng) for _ in range(100_000))
    total = sum(MIX.values())
    for kind, weight in MIX.items():
        assert drawn[kind] / 100_000 == pytest.approx(weight / total, abs=0.01)


def test_the_mix_is_deterministic_with_a_seed() -> None:
    first = [draw_kind(random.Random(7)) for _ in range(5)]
    assert first == [draw_kind(random.Random(7)) for _ in range(5)]


def test_a_hot_share_of_picks_lands_on_the_hot_rows() -> None:
    pool = Pool(hot=[1, 2, 3], cold=range(100, 200), reviews={})
    rng = random.Random(3)
    picks = [pool.pick_product(rng, 0.5) for _ in range(20_000)]
    hot = [p for p in picks if p is not None and p[1]]
    assert len(hot) / len(picks) == pytest.approx(0.5, abs=0.02)
    assert {p[0] for p in hot} == {1, 2, 3}
    cold = Counter(p[0] for p in picks if p is not None and not p[1])
    assert set(cold) == set(range(100, 200))  # uniform over the others
    assert max(cold.values()) < 3 * min(cold.values())


def test_picks_are_deterministic_with_a_seed() -> None:
    def picks() -> list[tuple[str, int | None]]:
        pool = Pool(hot=[1, 2], cold=range(10, 60), reviews={500: 10, 501: 11})
        rng = random.Random(11)
        out = []
        for _ in range(50):
            change = pool.plan(rng, 0.5)
            assert change is not None
            out.append((change.kind, change.product_id))
        return out

    assert picks() == picks()


def committed(pool: Pool, change: Change, product_id: int | None = None) -> Change:
    if product_id is not None:
        change.product_id = product_id
    pool.committed(change)
    return change


def test_a_busy_row_is_never_deleted_and_the_hot_rows_never() -> None:
    pool = Pool(hot=[1], cold=[10, 11], reviews={})
    rng = random.Random(5)
    busy = Change("name", 10, False)
    pool.busy[10] += 1  # as plan() marks it
    for _ in range(200):
        change = pool._plan("product_delete", rng, 0.5)
        if change is not None:
            assert change.product_id == 11
            pool.failed(change)
    pool.seen(busy)
    assert not pool.busy


def test_a_deleted_product_leaves_the_pool_with_its_reviews() -> None:
    pool = Pool(hot=[1], cold=[10], reviews={70: 10, 71: 1})
    change = pool._plan("product_delete", random.Random(1), 0.0)
    assert change is not None and change.dropped_reviews == (70,)
    assert 10 not in pool.cold and 70 not in pool.deletable and 71 in pool.deletable
    pool.failed(change)  # rolled back: all of it is back
    assert 10 in pool.cold and 70 in pool.deletable


def test_a_review_is_deletable_only_once_its_insert_was_seen() -> None:
    pool = Pool(hot=[1], cold=[], reviews={})
    rng = random.Random(2)
    assert pool._plan("review_delete", rng, 1.0) is None
    insert = pool._plan("review_insert", rng, 1.0)
    assert insert is not None
    pool.busy[1] += 1
    insert.review_id = 80
    committed(pool, insert)
    assert pool._plan("review_delete", rng, 1.0) is None
    pool.seen(insert)
    delete = pool._plan("review_delete", rng, 1.0)
    assert delete is not None and delete.review_id == 80 and delete.hot
    assert pool._plan("review_delete", rng, 1.0) is None  # one session deletes it, not two


def test_an_inserted_product_joins_the_cold_rows_busy_until_seen() -> None:
    pool = Pool(hot=[1], cold=[], reviews={})
    insert = committed(pool, Change("product_insert", None, False), product_id=12)
    assert 12 in pool.cold and pool.busy[12] == 1
    assert pool._plan("product_delete", random.Random(1), 0.0) is None
    pool.seen(insert)
    assert pool._plan("product_delete", random.Random(1), 0.0) is not None


def test_sessions_fall_behind_without_bursting() -> None:
    assert next_due(10.0, 0.1, now=10.05, max_lag=0.2) == pytest.approx(10.1)
    # 1 s late: the next one is due at most max_lag ago, not ten intervals ago.
    assert next_due(10.0, 0.1, now=11.0, max_lag=0.2) == pytest.approx(10.8)


def test_load_checks_its_options() -> None:
    Load().check()
    for bad in (Load(rate=0), Load(sessions=0), Load(hot_share=1.5), Load(hot_rows=5, rows=5)):
        with pytest.raises(ValueError):
            bad.check()
    assert Load(sessions=8, txn_rows=1).txn_interval_s(1000) == pytest.approx(0.008)


# --- statistics and the verdict ---


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([], 0.5) is None
    assert latency_summary([]) == {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}


def test_backlog_grows_when_the_last_third_doubles_above_the_floor() -> None:
    assert not backlog_growing(200.0, 390.0)
    assert backlog_growing(200.0, 410.0)
    assert not backlog_growing(50.0, 240.0)  # doubled, but below 250 ms
    assert backlog_growing(50.0, 260.0)
    assert not backlog_growing(None, 900.0)


def step_changes(latencies_ms: list[float], duration: float = 9.0) -> list[Change]:
    out = []
    for i, ms in enumerate(latencies_ms):
        at = duration * i / len(latencies_ms)
        c = Change("name", i, i % 2 == 0, seq=i, committed=at)
        c.seen = at + ms / 1000
        out.append(c)
    return out


def test_a_fast_steady_step_is_sustained() -> None:
    step = summarise_step(100.0, 0.0, 9.0, step_changes([300.0] * 900), 0, [40.0, 60.0])
    assert step["sustained"] and step["problems"] == []
    assert step["achieved_rate"] == 100.0
    assert step["latency_ms"]["p95"] == 300.0
    assert step["hot_ms"]["count"] == step["cold_ms"]["count"] == 450
    assert step["by_kind"]["name"]["seen"] == 900
    assert step["debezium_commit_to_kafka_ms"]["p50"] == 40.0


def test_a_step_fails_on_slowness_growth_loss_and_the_writer() -> None:
    growing = step_changes([200.0] * 300 + [300.0] * 300 + [700.0] * 300)
    step = summarise_step(100.0, 0.0, 9.0, growing, 0, [])
    assert step["thirds_p95_ms"] == [200.0, 300.0, 700.0]
    assert not step["sustained"] and "grew" in step["problems"][0]

    lost = step_changes([300.0] * 900)
    lost[5].seen = None
    step = summarise_step(100.0, 0.0, 9.0, lost, 0, [])
    assert step["problems"] == ["1 never seen"]

    slow = summarise_step(100.0, 0.0, 9.0, step_changes([1200.0] * 900), 0, [])
    assert slow["problems"] == ["p95 >= 1 s"]

    writer = summarise_step(200.0, 0.0, 9.0, step_changes([300.0] * 900), 0, [])
    assert writer["writer_limited"] and writer["problems"] == ["writer reached 100/s"]


def test_the_ramp_goes_above_the_main_rate() -> None:
    assert ramp_rates(2500) == [3000, 4000, 5000, 6000, 8000]
    assert ramp_rates(400)[:3] == [500, 750, 1000]
    assert ramp_rates(10_000) == []


def test_the_verdict_tells_a_writer_limit_from_a_pipeline_one() -> None:
    fast = step_changes([300.0] * 900)
    writer_only = summarise_step(200.0, 0.0, 9.0, fast, 0, [], txn_s=[0.002, 0.004])
    assert (
        verdict(writer_only)
        == "not sustained: writer reached 100/s (a writer limit, not the pipeline's)"
    )
    assert writer_only["transaction_ms"]["p95"] == 4.0
    both = summarise_step(200.0, 0.0, 9.0, step_changes([1500.0] * 900), 0, [])
    assert verdict(both).endswith("(the writer fell short too)")
    assert verdict(summarise_step(100.0, 0.0, 9.0, fast, 0, [])) == "sustained"


def test_the_worker_stages_of_a_step_are_what_happened_during_it() -> None:
    from streams.latency import Histogram
    from streams.search.bench import _documents, _stage_summaries

    acked = Histogram()
    acked.observe(500, times=10)  # before the step
    before = {"acked": acked.snapshot()}
    acked.observe(60, times=100)
    stages = _stage_summaries(before, {"acked": acked.snapshot()})
    assert stages is not None and stages["acked"]["count"] == 100
    assert 50 < stages["acked"]["p95"] <= 75
    assert _stage_summaries(None, before) is None  # a worker that keeps no histograms
    assert _documents({"index_documents": {"all": 146013, "live": 2159}}) == "146,013 (2,159)"
    assert _documents({}) == "-"
