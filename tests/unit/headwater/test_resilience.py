import json
from datetime import timedelta

import pytest

from headwater.resilience import Breaker, BreakerPolicy, CircuitOpen, DeadLetter, RetryPolicy


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


def fail(breaker: Breaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError), breaker.guard():
            raise ConnectionError("refused")


def succeed(breaker: Breaker, times: int = 1) -> None:
    for _ in range(times):
        with breaker.guard():
            pass


def time_passes(breaker: Breaker, seconds: float) -> None:
    """pybreaker keeps when it opened as a wall-clock time: move that back."""
    storage = breaker._storage
    assert storage.opened_at is not None
    storage.opened_at = storage.opened_at - timedelta(seconds=seconds)


def test_breaker_opens_after_five_failures_and_closes_after_three_trial_successes() -> None:
    breaker = Breaker("es", clock=Clock())
    fail(breaker, 4)
    assert breaker.state == "closed"
    fail(breaker)  # the fifth failure opens it, and is raised as itself
    assert breaker.state == "open"
    assert breaker.retry_in_s() == pytest.approx(30.0, abs=0.5)
    entered = False
    with pytest.raises(CircuitOpen), breaker.guard():
        entered = True
    assert not entered  # an open breaker refuses the call without making it
    time_passes(breaker, 31)
    succeed(breaker, 2)
    assert breaker.state == "half-open"
    succeed(breaker)
    assert breaker.state == "closed"
    assert breaker.report() == {"state": "closed", "retry_in_s": 0.0}


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    breaker = Breaker("es", clock=clock)
    for i in range(10):
        clock.now = i * 3.0  # one failure every 3 s: never 5 within 10 s
        fail(breaker)
    assert breaker.state == "closed"
    clock.now = 100.0
    fail(breaker, 5)
    assert breaker.state == "open"


def test_a_failure_on_trial_opens_it_again_for_the_whole_period() -> None:
    breaker = Breaker("es", BreakerPolicy(failures=1), clock=Clock())
    fail(breaker)
    time_passes(breaker, 30.5)
    fail(breaker)
    assert breaker.state == "open"
    assert breaker.retry_in_s() == pytest.approx(30.0, abs=0.5)


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
