"""The portal's request-rate limiter: a leaky bucket with an injected clock."""

from __future__ import annotations

import time
from collections.abc import Callable


class LeakyBucket:
    """Bitrix24's leaky bucket: each accepted request adds 1, the level drains at ``rate``/s.

    A request that arrives while the level is above ``capacity`` (the threshold) is
    refused and adds nothing. With no draining, ``capacity + 1`` requests pass::

        bucket = LeakyBucket(rate=2.0, capacity=50, clock=fake_clock)
        if not bucket.try_acquire():
            ...  # answer 503 QUERY_LIMIT_EXCEEDED
    """

    __slots__ = ("_capacity", "_clock", "_last", "_level", "_rate")

    def __init__(
        self, rate: float, capacity: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if capacity < 0:
            raise ValueError(f"capacity must not be negative, got {capacity}")
        self._rate = rate
        self._capacity = capacity
        self._clock = clock
        self._level = 0.0
        self._last = clock()

    @property
    def rate(self) -> float:
        """Drain rate in requests per second."""
        return self._rate

    @property
    def capacity(self) -> int:
        """Threshold above which requests are refused."""
        return self._capacity

    @property
    def level(self) -> float:
        """Current level, drained up to now."""
        self._drain()
        return self._level

    def try_acquire(self) -> bool:
        """Count one arriving request; False means refuse it (the level is above capacity)."""
        self._drain()
        if self._level > self._capacity:
            return False
        self._level += 1.0
        return True

    def _drain(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._level = max(0.0, self._level - elapsed * self._rate)
