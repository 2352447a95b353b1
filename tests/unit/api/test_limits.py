"""GCRA, the rule of the rate limits: bursts up to capacity, then one request per interval."""

from __future__ import annotations

import pytest

from api.limits import Rate, decide


def test_a_rate_spaces_requests_and_allows_its_burst_at_once() -> None:
    rate = Rate(per_min=600, burst=2.0)
    assert rate.interval_s == pytest.approx(0.1)
    assert rate.capacity == 1200
    assert rate.tolerance_s == pytest.approx(119.9)
    # The design's limits: 10,000/min per key and 1,000/min per user, bursts to twice that.
    assert Rate(10_000, 2.0).capacity == 20_000 and Rate(1_000, 2.0).capacity == 2_000


def test_an_idle_client_may_send_its_capacity_at_once_then_waits_one_interval() -> None:
    rate = Rate(per_min=60, burst=2.0)  # capacity 120, one more per second
    tat, now = None, 1000.0
    remaining = []
    for _ in range(120):
        decision, tat = decide(tat, now, rate)
        assert decision.allowed
        remaining.append(decision.remaining)
    assert remaining[0] == 119 and remaining[-1] == 0
    refused, same = decide(tat, now, rate)
    assert not refused.allowed and same == tat
    assert refused.retry_after_s == pytest.approx(1.0) and refused.retry_after_header == "1"
    # One interval later one request passes, and the next is refused again.
    later, tat = decide(tat, now + 1.0, rate)
    assert later.allowed
    assert not decide(tat, now + 1.0, rate)[0].allowed


def test_once_the_burst_is_spent_the_sustained_rate_is_allowed_and_no_more() -> None:
    rate = Rate(per_min=60, burst=1.0)  # capacity 60, one per second
    tat = None
    for _ in range(60):
        _, tat = decide(tat, 0.0, rate)
    for i in range(1, 100):
        decision, tat = decide(tat, float(i), rate)
        assert decision.allowed and decision.remaining == 0, i
    too_soon, _ = decide(tat, 99.5, rate)
    assert not too_soon.allowed and too_soon.retry_after_s == pytest.approx(0.5)
    assert too_soon.retry_after_header == "1"  # whole seconds, rounded up


def test_a_refusal_does_not_push_the_client_further_back() -> None:
    rate = Rate(per_min=60, burst=1.0)
    tat = None
    for _ in range(60):
        _, tat = decide(tat, 0.0, rate)
    for _ in range(50):
        refused, tat_after = decide(tat, 0.1, rate)
        assert not refused.allowed and tat_after == tat
    assert decide(tat, 1.0, rate)[0].allowed


def test_a_long_idle_refills_only_up_to_capacity() -> None:
    rate = Rate(per_min=60, burst=2.0)
    tat = None
    for _ in range(120):
        _, tat = decide(tat, 0.0, rate)
    allowed = 0
    now = 10_000.0
    while True:
        decision, tat = decide(tat, now, rate)
        if not decision.allowed:
            break
        allowed += 1
    assert allowed == 120
