"""The portal's per-method execution-time budget (`time.operating`, 429 `OPERATION_TIME_LIMIT`).

Bitrix24 sums each method's execution time per app or webhook over ten minutes. When
the sum is over the limit, the next call of that method is refused with 429 until old
minutes leave the window; other methods go on working. So a refusal parks only that
method: until `operating_reset_at` of its last good answer when that is still ahead,
else for a probe interval that doubles with each further refusal (1 s, 2 s, … 60 s).
How far ahead the reset is comes from the portal's own clock (`finish` of the same
answer) when the answer has it, so a machine whose clock is off waits neither too
long nor too short; only without it is the reset compared with this machine's clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from exporter.portal.ratelimit import Clock

log = logging.getLogger(__name__)

RESET_MARGIN = 0.5  # seconds past the announced reset (whole seconds), for rounding
MAX_PROBE = 60.0  # the portal's buckets are one minute long
WINDOW = 600.0  # the sum is over ten minutes: no announced reset is further away


class OperatingBudget:
    """Which methods are parked, and until when."""

    def __init__(self, clock: Clock, wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        # method → (seconds until its budget frees up, clock time that was measured at)
        self._reset_in: dict[str, tuple[float, float]] = {}
        self._until: dict[str, float] = {}  # method → clock time it may be called again
        self._refusals: dict[str, int] = {}  # method → 429s since its last good answer

    def answered(self, method: str, time_block: Mapping[str, Any]) -> None:
        """A good answer of `method`: remember when its budget frees up."""
        self._refusals.pop(method, None)
        reset = _number(time_block.get("operating_reset_at"))
        if reset is None:
            return
        portal_now = _number(time_block.get("finish"))
        if portal_now is None:
            portal_now = self._wall()  # the answer does not say what time it is there
        self._reset_in[method] = (reset - portal_now, self._clock.now())

    def refused(self, method: str) -> None:
        """`method` got 429 OPERATION_TIME_LIMIT: park it."""
        refusals = self._refusals.get(method, 0) + 1
        self._refusals[method] = refusals
        reset_in, measured_at = self._reset_in.get(method, (0.0, self._clock.now()))
        wait = min(WINDOW, reset_in - (self._clock.now() - measured_at)) + RESET_MARGIN
        if wait <= RESET_MARGIN:
            wait = min(MAX_PROBE, 2.0 ** (refusals - 1))
        until = self._clock.now() + wait
        if until > self._until.get(method, 0.0):
            self._until[method] = until
            log.warning("%s is over the portal's operating time limit: paused %.1fs", method, wait)

    async def wait(self, method: str) -> None:
        """Return when `method` may be called."""
        until = self._until.get(method)
        if until is None:
            return
        remaining = until - self._clock.now()
        if remaining > 0:
            await self._clock.sleep(remaining)
        if self._until.get(method) == until:
            del self._until[method]


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
