"""Stage histograms: buckets, differences between snapshots, quantiles."""

from __future__ import annotations

import pytest

from streams.latency import BOUNDS_MS, Histogram, quantile, since, summary


def test_an_observation_lands_in_the_first_bucket_whose_bound_holds_it() -> None:
    h = Histogram()
    h.observe(5)  # on a bound: that bucket
    h.observe(5.1)
    h.observe(99_999)  # above every bound: the open bucket
    assert h.counts[0] == 1 and h.counts[1] == 1 and h.counts[-1] == 1
    assert h.sum_ms == pytest.approx(100_009.1)


def test_since_reads_only_what_happened_between_two_snapshots() -> None:
    h = Histogram()
    h.observe(12, times=10)
    before = h.snapshot()
    h.observe(180, times=3)
    counts = since(h.snapshot(), before)
    assert sum(counts) == 3 and counts[BOUNDS_MS.index(200)] == 3
    assert since(h.snapshot(), None) == h.counts


def test_since_refuses_snapshots_with_other_buckets() -> None:
    h = Histogram().snapshot()
    with pytest.raises(ValueError, match="different buckets"):
        since(h, {**h, "bounds_ms": [1, 2]})


def test_quantiles_interpolate_within_their_bucket() -> None:
    h = Histogram()
    h.observe(60, times=100)  # all in (50, 75]
    assert quantile(h.counts, 0.5) == pytest.approx(62.5)
    assert quantile(h.counts, 1.0) == pytest.approx(75)
    h.observe(40_000, times=100)  # the open bucket answers its lower bound
    assert quantile(h.counts, 0.99) == BOUNDS_MS[-1]


def test_summary_of_nothing_has_no_quantiles() -> None:
    assert summary(Histogram().counts) == {"count": 0, "p50": None, "p95": None, "p99": None}
    with pytest.raises(ValueError, match="quantile"):
        quantile([1], 1.5)


def test_snapshots_of_several_workers_add_up() -> None:
    from streams.latency import added

    one, two = Histogram(), Histogram()
    one.observe(12, times=3)
    two.observe(12, times=2)
    two.observe(600)
    total = added([one.snapshot(), two.snapshot()])
    assert total is not None and sum(total["counts"]) == 6
    assert total["counts"][BOUNDS_MS.index(20)] == 5 and total["sum_ms"] == pytest.approx(660)
    assert added([]) is None
    with pytest.raises(ValueError, match="different buckets"):
        added([one.snapshot(), {**two.snapshot(), "bounds_ms": [1]}])
