"""Another client of the same portal, eating a share of the request budget.

The portal's leaky bucket is shared by everything that talks to it from one address
(reference §1), so a real export rarely has the whole budget to itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import SimulatedPortal


class Competitor:
    """Sends ``competitor_share * rps`` requests per second into the portal's bucket, evenly.

    Each request counts in the bucket like any other (a refused one adds nothing) but
    not in the HTTP/REST counters. It follows changes of ``portal.settings`` and ends
    when the share or the rate limit is switched off. Timing runs on the portal's
    clock and sleep, so a test can drive it without waiting.
    """

    def __init__(self, portal: SimulatedPortal) -> None:
        self._portal = portal

    @staticmethod
    def wanted(portal: SimulatedPortal) -> bool:
        """Whether the portal's settings ask for a competitor at all."""
        settings = portal.settings
        return settings.rps is not None and settings.competitor_share > 0

    async def run(self) -> None:
        """Send until cancelled (or switched off); the first request goes out at once."""
        portal = self._portal
        due = portal.clock()
        while True:
            rps, share = portal.settings.rps, portal.settings.competitor_share
            if rps is None or share <= 0:
                return
            self._send()
            interval = 1.0 / (share * rps)
            now = portal.clock()
            due += interval
            if due < now - interval:  # stalled: start afresh instead of catching up in a burst
                due = now
            await portal.sleep(max(0.0, due - now))

    def _send(self) -> None:
        portal = self._portal
        bucket = portal.bucket
        if bucket is None:
            return
        portal.stats.competitor_requests += 1
        if not bucket.try_acquire():
            portal.stats.competitor_refused += 1
