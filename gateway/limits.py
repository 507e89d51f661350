"""Rate limiting for the vendor gateway: token buckets keyed by a string, in this process.

The gateway keeps two: one bucket per token id (each token may send `burst` requests at once and
`rate_per_s` requests per second after that; settings `gateway_burst`, `gateway_rate_per_s`), and one
per client address that only failed authentications draw from (`gateway_auth_fail_burst`, then one per
second; `gateway.auth` never consults it for a token that authenticates). A request that finds
its bucket empty is refused with the whole seconds to wait until one request's worth has refilled: the
`Retry-After` of the 429. With several gateway processes behind a load balancer, each enforces its own
buckets.

Example:
    >>> limiter = RateLimiter(rate_per_s=1.0, burst=2, clock=lambda: 0.0)
    >>> [limiter.acquire("t1") for _ in range(3)]
    [0.0, 0.0, 1.0]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter"]

#: buckets idle this long are full again and can be forgotten
_FORGET_AFTER_S = 600.0


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets keyed by token id; thread-safe."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def acquire(self, key: str) -> float:
        """Take one request from `key`'s bucket: 0.0 when allowed, else the seconds until it would be."""
        now = self._clock()
        with self._lock:
            self._sweep(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate_per_s)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate_per_s

    def peek(self, key: str) -> float:
        """The seconds until `key` may send again (0.0: now), without taking anything."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0.0
            tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate_per_s)
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate_per_s

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < _FORGET_AFTER_S:
            return
        self._last_sweep = now
        stale = [k for k, b in self._buckets.items() if now - b.at > _FORGET_AFTER_S]
        for key in stale:
            del self._buckets[key]
