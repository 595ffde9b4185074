"""The simulated portal: an aiohttp application that answers like a Bitrix24 cloud portal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from . import errors
from .auth import Caller, oauth_caller, webhook_caller
from .batch import run_batch
from .bucket import LeakyBucket
from .catalog import Catalog
from .context import CallContext, MethodResult
from .download import serve_download
from .links import DownloadLinks
from .methods import BATCH, DOWNLOAD, canonical_name, find_method
from .params import read_params
from .settings import PortalSettings
from .stats import Stats
from .wire import error_response, json_response, time_block

STATS_PATH = "/_simulator/stats"

Authenticate = Callable[[dict[str, Any]], Caller]
"""Checks a request's credentials (given its params); raises NO_AUTH_FOUND."""


class SimulatedPortal:
    """Routes, REST methods, batch and downloads over one catalog, with live ``stats``.

    ``settings`` may be replaced between requests (e.g. ``dataclasses.replace``); a new
    rps/burst starts a fresh leaky bucket, a new secret invalidates issued links.
    """

    def __init__(
        self,
        catalog: Catalog,
        settings: PortalSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.stats = Stats()
        self._clock = clock
        self._settings = settings if settings is not None else PortalSettings()
        self._bucket = self._new_bucket()
        self.links = DownloadLinks(self._settings.secret)
        self.app = self._build_app()

    @property
    def settings(self) -> PortalSettings:
        """The portal's current behaviour."""
        return self._settings

    @settings.setter
    def settings(self, settings: PortalSettings) -> None:
        old, self._settings = self._settings, settings
        if (old.rps, old.burst) != (settings.rps, settings.burst):
            self._bucket = self._new_bucket()
        if old.secret != settings.secret:
            self.links = DownloadLinks(settings.secret)

    @property
    def bucket(self) -> LeakyBucket | None:
        """The request-rate limiter; None when the rate limit is off."""
        return self._bucket

    def _new_bucket(self) -> LeakyBucket | None:
        if self._settings.rps is None:
            return None
        return LeakyBucket(self._settings.rps, self._settings.burst, self._clock)

    def _build_app(self) -> web.Application:
        stats = self.stats

        @web.middleware
        async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path != STATS_PATH:
                stats.http_requests += 1
            return await handler(request)

        app = web.Application(middlewares=[count_requests])
        app.router.add_get(STATS_PATH, self._stats_route, allow_head=False)
        webhook = r"/rest/{user_id:\d+}/{code:[^/]+}/{method:[^/]+/?}"
        app.router.add_route("*", webhook, self._webhook_route)
        app.router.add_route("*", r"/rest/{method:[^/]+/?}", self._oauth_route)
        return app

    # Shared by the REST and download paths

    def admit(self) -> None:
        """Count one request in the leaky bucket; QUERY_LIMIT_EXCEEDED when it is full."""
        if self._bucket is not None and not self._bucket.try_acquire():
            raise errors.query_limit_exceeded()

    def error(self, error: errors.ApiError) -> web.Response:
        """Record an error answer in the stats and build it."""
        self.record_error(error)
        return error_response(error)

    def record_error(self, error: errors.ApiError) -> None:
        """Count an error (also a batch command's) by its code."""
        self.stats.errors[error.code] += 1
        if error.code == "QUERY_LIMIT_EXCEEDED":
            self.stats.rate_limited += 1

    # Routes

    async def _stats_route(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def _webhook_route(self, request: web.Request) -> web.StreamResponse:
        def authenticate(params: dict[str, Any]) -> Caller:
            return webhook_caller(request, self._settings)

        return await self._dispatch(request, authenticate)

    async def _oauth_route(self, request: web.Request) -> web.StreamResponse:
        def authenticate(params: dict[str, Any]) -> Caller:
            return oauth_caller(request, self._settings, params)

        return await self._dispatch(request, authenticate)

    async def _dispatch(
        self, request: web.Request, authenticate: Authenticate
    ) -> web.StreamResponse:
        method = request.match_info["method"].rstrip("/")
        if method.lower().endswith(".json"):
            method = method[: -len(".json")]
        if method.lower() == DOWNLOAD:
            return await serve_download(self, request, authenticate)
        return await self._rest(request, method, authenticate)

    async def _rest(
        self, request: web.Request, method: str, authenticate: Authenticate
    ) -> web.Response:
        name = canonical_name(method)
        self.stats.rest_requests += 1
        self.stats.by_method[name] += 1
        start, started = time.time(), time.perf_counter()
        try:
            self.admit()
            params = await read_params(request)
            caller = authenticate(params)
            outcome = self._call(name, params, caller, in_batch=False)
        except errors.ApiError as error:
            return self.error(error)
        processing = time.perf_counter() - started
        body: dict[str, Any] = {"result": outcome.result}
        if outcome.total is not None:
            body["total"] = outcome.total
        if outcome.next is not None:
            body["next"] = outcome.next
        body["time"] = time_block(start, time.time(), processing)
        return json_response(body)

    def _call(
        self, name: str, params: dict[str, Any], caller: Caller, *, in_batch: bool
    ) -> MethodResult:
        """Run one method (or, outside a batch, a whole batch) for an authenticated caller."""
        if name == BATCH and not in_batch:
            self.stats.batches += 1
            return MethodResult(
                run_batch(
                    params,
                    lambda method, query: self._call(method, query, caller, in_batch=True),
                    self.record_error,
                    allows_images=self._settings.batch_allows_images,
                )
            )
        if in_batch:
            self.stats.commands[canonical_name(name)] += 1
        spec = find_method(name)
        if spec is None:
            raise errors.method_not_found()
        context = CallContext(self.catalog, self._settings, self.links, caller)
        return spec.call(params, context)
