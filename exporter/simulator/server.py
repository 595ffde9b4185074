"""Serving a simulated portal over TCP for the duration of an ``async with`` block."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from .app import SimulatedPortal, Sleep
from .catalog import Catalog
from .competitor import Competitor
from .settings import PortalSettings
from .stats import Stats


@dataclass(frozen=True)
class RunningPortal:
    """A portal that is accepting connections, and the URLs a client needs."""

    base_url: str
    """``http://HOST:PORT``, no trailing slash."""
    portal: SimulatedPortal

    @property
    def webhook_url(self) -> str:
        """``{base_url}/rest/<user_id>/<webhook_code>/`` — contains the secret code."""
        settings = self.portal.settings
        return f"{self.base_url}/rest/{settings.user_id}/{settings.webhook_code}/"

    @property
    def oauth_url(self) -> str:
        """``{base_url}/rest/``: the client endpoint for OAuth calls."""
        return f"{self.base_url}/rest/"

    @property
    def token_url(self) -> str:
        """``{base_url}/oauth/token/``: the simulated OAuth server's refresh endpoint."""
        return f"{self.base_url}/oauth/token/"

    @property
    def stats(self) -> Stats:
        """The portal's live counters."""
        return self.portal.stats


@asynccontextmanager
async def serve_portal(
    catalog: Catalog,
    settings: PortalSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[RunningPortal]:
    """Serve a :class:`SimulatedPortal` on ``host:port`` (0 picks a free port) until exit.

    With ``competitor_share`` set, a competing client runs for as long as the portal is
    served. ``clock`` and ``sleep`` drive every timed behaviour (tests pass fakes). The
    access log is off: request paths carry the webhook code and download tokens.
    """
    portal = SimulatedPortal(catalog, settings, clock=clock, sleep=sleep)
    runner = web.AppRunner(portal.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    competitor: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        if Competitor.wanted(portal):
            competitor = asyncio.create_task(Competitor(portal).run(), name="sim-competitor")
        yield RunningPortal(f"http://{url_host}:{bound_port}", portal)
    finally:
        if competitor is not None:
            competitor.cancel()
            await asyncio.wait([competitor])  # its CancelledError stays inside the task
        await runner.cleanup()
