"""Per-token rate limits: a burst is allowed, then the configured rate; each token has its own bucket,
and a refusal says how long to wait."""

from __future__ import annotations

import pytest

from gateway.limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_requests_wait_for_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.acquire("t") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("t") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("t") == 0.0
    assert limiter.acquire("t") == pytest.approx(0.5)


def test_a_refused_request_does_not_use_up_the_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=clock)
    assert limiter.acquire("t") == 0.0
    for _ in range(10):
        assert limiter.acquire("t") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.acquire("t") == 0.0


def test_each_token_has_its_own_bucket_and_an_idle_bucket_refills_to_the_burst_only() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=2, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)][-1] > 0
    assert limiter.acquire("b") == 0.0
    clock.now += 3600
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(rate_per_s=0, burst=1)
