"""The client side of the portal's request budget: a token bucket that adapts to 503s.

The portal keeps a leaky bucket per portal and source IP: each request adds one, the
level drains at the plan's rate, and above the threshold it answers 503
`QUERY_LIMIT_EXCEEDED`. `TokenBucket` mirrors it: `burst` tokens to start (less a
small headroom for arrival jitter), refilled at `rate` per second, one taken when a
request is sent. A 503 means the portal's bucket is full, whatever ours says, so ours
is emptied and the rate halved (once per episode: 503s for requests sent before the
slow-down say nothing new). Each success raises the rate by 1/100 of itself, never
above the configured rate. With something else sharing the budget this settles into a
slow sawtooth around what is left over, about one 503 per hundred requests, while the
portal's bucket never drains idle.

The state lives in a `BucketStore`: in memory, or in a file shared by every exporter
process talking to the same portal from this machine (`exporter.portal.budget`).

    bucket = TokenBucket(rate=2, burst=50)
    sent_at = await bucket.acquire()   # before every request to the portal
    bucket.on_success()                # or bucket.on_rate_limited(sent_at) after a 503
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import anyio

_EPSILON = 1e-9


class Clock(Protocol):
    """Time as the limiter sees it; tests pass a fake one that advances on sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock (CLOCK_MONOTONIC: one timeline for every process on the machine)."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


@dataclass
class BucketState:
    """What the bucket knows, as numbers: enough to share it through a file."""

    tokens: float
    updated: float  # clock time `tokens` was computed at
    rate: float  # current refill rate, requests per second
    slowed_at: float  # clock time of the last slow-down
    ceiling: float = 0.0  # the configured rate of whoever wrote the state last


class BucketStore(Protocol):
    """Where the state lives; `locked()` hands it out for one read-modify-write.

    `fresh` is the state to start from when the store holds none yet.
    """

    def locked(self, fresh: BucketState) -> AbstractContextManager[BucketState]: ...


class MemoryStore:
    """State private to this process, starting from `state` when given."""

    def __init__(self, state: BucketState | None = None) -> None:
        self._state = state

    @contextmanager
    def locked(self, fresh: BucketState) -> Iterator[BucketState]:
        if self._state is None:
            self._state = fresh
        yield self._state


def headroom(burst: int) -> int:
    """Tokens kept back from the portal's burst, against requests arriving bunched."""
    return 2 if burst > 10 else 0


class TokenBucket:
    """Spaces requests: a burst at once, then `rate` per second, slower after a 503."""

    __slots__ = (
        "_capacity", "_clock", "_last_rate", "_lock", "_max_rate", "_min_rate", "_store", "burst"
    )  # fmt: skip

    DECREASE = 0.5  # rate multiplier on a 503
    INCREASE = 0.01  # rate grows by this fraction of itself with each success
    FLOOR = 1 / 20  # the rate never drops below this fraction of the configured one

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Clock | None = None,
        store: BucketStore | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst ≥ 1")
        self._clock: Clock = clock or MonotonicClock()
        self.burst = burst  # the portal's, as configured
        self._max_rate = rate
        self._min_rate = rate * self.FLOOR
        self._capacity = float(max(1, burst - headroom(burst)))
        self._store: BucketStore = store or MemoryStore()
        self._lock = anyio.Lock()
        self._last_rate = rate  # as last seen in the store

    @property
    def rate(self) -> float:
        """The current refill rate in requests per second."""
        with self._state() as state:
            return state.rate

    @property
    def max_rate(self) -> float:
        """The configured rate: what the portal's bucket drains at."""
        return self._max_rate

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        with self._state() as state:
            return state.tokens

    @contextmanager
    def _state(self) -> Iterator[BucketState]:
        """The state, refilled up to now, for one read-modify-write."""
        fresh = BucketState(
            self._capacity, self._clock.now(), self._max_rate, float("-inf"), self._max_rate
        )
        with self._store.locked(fresh) as state:
            # Read the clock under the store's lock: another process may have moved the
            # state forward while this one waited for it.
            now = self._clock.now()
            if state.updated > now:  # a clock that went back (a reboot): start afresh
                state.tokens, state.updated = self._capacity, now
            if state.rate >= state.ceiling:
                # Not slowed down: run at this process's configured rate, even if the
                # last writer was configured differently (the limit was just raised).
                state.rate = self._max_rate
            state.ceiling = self._max_rate
            rate = min(state.rate, self._max_rate)
            state.tokens = min(self._capacity, state.tokens + (now - state.updated) * rate)
            state.updated = now
            yield state
            self._last_rate = state.rate

    async def acquire(self) -> float:
        """Wait for a token and take it; returns the time it was taken (the send time).

        Waiters of this process are served in arrival order.
        """
        async with self._lock:
            while True:
                with self._state() as state:
                    # The tolerance absorbs float rounding, which could otherwise leave
                    # a waiter sleeping for ever-smaller fractions of a nanosecond.
                    if state.tokens >= 1.0 - _EPSILON:
                        state.tokens -= 1.0
                        return state.updated
                    wait = (1.0 - state.tokens) / min(state.rate, self._max_rate)
                await self._clock.sleep(wait)

    def take(self) -> float:
        """Take a token now, without waiting (the level may go below zero: later
        requests wait for it); returns the time it was taken."""
        with self._state() as state:
            state.tokens -= 1.0
            return state.updated

    def give(self, tokens: int) -> None:
        """Give back tokens taken for requests the portal turned out not to count."""
        with self._state() as state:
            state.tokens = min(self._capacity, state.tokens + tokens)

    def on_rate_limited(self, sent_at: float | None = None) -> None:
        """The portal answered `QUERY_LIMIT_EXCEEDED` to a request sent at `sent_at`."""
        with self._state() as state:
            state.tokens = min(state.tokens, 0.0)
            if sent_at is None or sent_at >= state.slowed_at:
                state.rate = max(self._min_rate, min(state.rate, self._max_rate) * self.DECREASE)
                state.slowed_at = state.updated

    def on_success(self) -> None:
        """A request went through: move the rate back towards the configured one."""
        if self._last_rate >= self._max_rate:
            return  # at full rate as of the last look: nothing to write back
        with self._state() as state:
            if state.rate < self._max_rate:
                state.rate = min(self._max_rate, state.rate * (1 + self.INCREASE))
