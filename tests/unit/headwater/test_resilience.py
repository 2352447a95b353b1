import json

import pytest

from headwater.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    DeadLetter,
    RetryPolicy,
)


def test_retry_delays_double_up_to_the_cap_within_jitter() -> None:
    policy = RetryPolicy()
    assert policy.delay(1, rand=lambda: 0.5) == pytest.approx(0.1)
    assert policy.delay(3, rand=lambda: 0.5) == pytest.approx(0.4)
    assert policy.delay(30, rand=lambda: 0.5) == pytest.approx(30.0)
    assert policy.delay(2, rand=lambda: 1.0) == pytest.approx(0.2 * 1.2)
    assert policy.delay(2, rand=lambda: 0.0) == pytest.approx(0.2 * 0.8)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_closes_after_successes() -> None:
    clock = Clock()
    breaker = CircuitBreaker("es", clock=clock)
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as err:
        breaker.before_call()
    assert err.value.retry_after_s == pytest.approx(30.0)
    clock.now = 31
    breaker.before_call()
    assert breaker.state is BreakerState.HALF_OPEN
    for _ in range(3):
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker("es", clock=clock)
    for i in range(10):
        clock.now = i * 3.0  # one failure every 3 s: never 5 within 10 s
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_a_failure_when_half_open_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker("es", clock=clock, failure_threshold=1)
    breaker.record_failure()
    clock.now = 30.5
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_dead_letter_keeps_the_record_and_says_where() -> None:
    letter = DeadLetter.of(
        topic="t",
        partition=2,
        offset=9,
        key=b'{"id":1}',
        value=b"\xffbad",
        error=ValueError("value is not JSON"),
        stage="decode",
    )
    assert letter.where == "t[2]@9"
    data = json.loads(letter.to_json())
    assert data["key"] == '{"id":1}'
    assert data["value"] == "\\xffbad"
    assert data["error"] == "value is not JSON"
