"""Serving a simulated portal over TCP: in this event loop for an ``async with`` block, or
from a thread of its own for a caller that blocks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

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

    ``clock`` and ``sleep`` drive every timed behaviour (tests pass fakes).
    """
    portal = SimulatedPortal(catalog, settings, clock=clock, sleep=sleep)
    async with serve(portal, host=host, port=port) as running:
        yield running


@asynccontextmanager
async def serve(
    portal: SimulatedPortal, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningPortal]:
    """Serve an existing portal (whose app the caller may have wrapped) until exit.

    With ``competitor_share`` set, a competing client runs for as long as the portal is
    served. The access log is off: request paths carry the webhook code and download
    tokens.
    """
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


@contextmanager
def serve_in_thread(
    catalog: Catalog,
    settings: PortalSettings | None = None,
    prepare: Callable[[SimulatedPortal, asyncio.AbstractEventLoop], None] | None = None,
) -> Iterator[RunningPortal]:
    """Serve a portal from its own thread and event loop, for a caller that blocks (a
    CLI's ``main()``, a benchmark timing processes); ``prepare`` may wrap the app
    (middlewares) in the portal's loop before it serves."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def run() -> None:
        portal = SimulatedPortal(catalog, settings)
        holder["loop"] = loop = asyncio.get_running_loop()
        if prepare is not None:
            prepare(portal, loop)
        async with serve(portal) as running:
            holder["portal"] = running
            holder["stop"] = stop = asyncio.Event()
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the simulated portal did not start")
    try:
        yield holder["portal"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
