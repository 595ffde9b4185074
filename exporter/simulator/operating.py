"""The per-method execution-time budget ("operating"), per webhook or OAuth application.

Bitrix24 sums each method's execution time per app/webhook over the last 10 minutes,
kept as 10 one-minute buckets; once the sum is above the limit, the next call of that
method is refused with 429 OPERATION_TIME_LIMIT until enough buckets have expired.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import errors

BUCKETS = 10
"""The window is kept as this many equal buckets (one minute each on the portal)."""


@dataclass(frozen=True)
class OperatingUsage:
    """What the ``time`` block reports for a method: its sum and when it next shrinks."""

    seconds: float
    """The method's execution time summed over the live buckets (``operating``)."""
    reset_at: int | None
    """Unix seconds when the oldest non-empty bucket leaves the window; None when empty."""


class OperatingBudget:
    """Execution time per (account, method) in ``BUCKETS`` buckets of ``window / BUCKETS`` s.

    Bucket arithmetic runs on the injected ``clock``; only ``reset_at`` is converted to
    unix time, as ``wall() + (expiry - clock())``, so a fake clock stays consistent::

        budget = OperatingBudget(window=600.0, clock=fake_clock)
        budget.check(account, method, limit=480.0)  # raises before the call
        budget.charge(account, method, cost)        # after it ran
    """

    __slots__ = ("_clock", "_span", "_spent", "_wall")

    def __init__(
        self,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        self._span = window / BUCKETS
        self._clock = clock
        self._wall = wall
        self._spent: dict[tuple[str, str], dict[int, float]] = {}

    def check(self, account: str, method: str, limit: float) -> None:
        """Refuse with OPERATION_TIME_LIMIT when the method's sum is already above ``limit``."""
        if self.usage(account, method).seconds > limit:
            raise errors.operation_time_limit()

    def charge(self, account: str, method: str, seconds: float) -> None:
        """Add one executed call's time to the current bucket."""
        if seconds <= 0:
            return
        buckets = self._live(account, method)
        index = self._index()
        buckets[index] = buckets.get(index, 0.0) + seconds
        self._spent[(account, method)] = buckets

    def usage(self, account: str, method: str) -> OperatingUsage:
        """The method's current sum over the live buckets and its next reset time."""
        buckets = self._live(account, method)
        if not buckets:
            return OperatingUsage(0.0, None)
        expiry = (min(buckets) + BUCKETS) * self._span
        reset_at = self._wall() + (expiry - self._clock())
        return OperatingUsage(sum(buckets.values()), math.ceil(reset_at))

    def _index(self) -> int:
        return math.floor(self._clock() / self._span)

    def _live(self, account: str, method: str) -> dict[int, float]:
        """The key's buckets still inside the window (expired ones are dropped here)."""
        buckets = self._spent.get((account, method))
        if buckets is None:
            return {}
        oldest = self._index() - BUCKETS + 1
        live = {index: spent for index, spent in buckets.items() if index >= oldest}
        if live:
            self._spent[(account, method)] = live
        else:
            del self._spent[(account, method)]
        return live
