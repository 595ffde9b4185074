"""The client side of the portal's request budget: a token bucket that backs off on 503.

The portal keeps a leaky bucket per portal and source IP: each request adds one, the
level drains at the plan's rate, and above the threshold it answers 503
`QUERY_LIMIT_EXCEEDED`. `TokenBucket` mirrors it: `burst` tokens to start, refilled at
`rate` per second, one taken when a request is sent. A 503 means the portal's bucket is
full whatever ours says, so ours is emptied and the rate halved; it climbs back by a
small step with every request that succeeds, never above the configured rate.

    bucket = TokenBucket(rate=2, burst=50)
    await bucket.acquire()   # before every request to the portal
    ...
    bucket.on_success()      # or bucket.on_rate_limited() after a 503
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio

_EPSILON = 1e-9


class Clock(Protocol):
    """Time as the limiter sees it; tests pass a fake one that advances on sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class TokenBucket:
    """Spaces requests: `burst` at once, then `rate` per second, slower after a 503."""

    __slots__ = (
        "_burst",
        "_clock",
        "_last",
        "_lock",
        "_max_rate",
        "_min_rate",
        "_rate",
        "_step",
        "_tokens",
    )

    DECREASE = 0.5  # rate multiplier on a 503
    RECOVERY_REQUESTS = 50  # successes to climb from the floor back to the full rate

    def __init__(self, rate: float, burst: int, clock: Clock | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst ≥ 1")
        self._clock: Clock = clock or MonotonicClock()
        self._max_rate = rate
        self._min_rate = rate / 20
        self._step = (rate - self._min_rate) / self.RECOVERY_REQUESTS
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = self._clock.now()
        self._lock = anyio.Lock()

    @property
    def rate(self) -> float:
        """The current refill rate in requests per second."""
        return self._rate

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock.now()
        elapsed = max(0.0, now - self._last)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._last = now

    async def acquire(self) -> None:
        """Wait for a token and take it; waiters are served in arrival order."""
        async with self._lock:
            while True:
                self._refill()
                # The tolerance absorbs float rounding, which could otherwise leave a
                # waiter sleeping for ever-smaller fractions of a nanosecond.
                if self._tokens >= 1.0 - _EPSILON:
                    self._tokens -= 1.0
                    return
                await self._clock.sleep((1.0 - self._tokens) / self._rate)

    def on_rate_limited(self) -> None:
        """The portal answered `QUERY_LIMIT_EXCEEDED`: its bucket is full, slow down."""
        self._refill()
        self._tokens = 0.0
        self._rate = max(self._min_rate, self._rate * self.DECREASE)

    def on_success(self) -> None:
        """A request went through: move the rate back towards the configured one."""
        if self._rate < self._max_rate:
            self._refill()
            self._rate = min(self._max_rate, self._rate + self._step)
