"""The simulated portal: an aiohttp application that answers like a Bitrix24 cloud portal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from . import errors
from .admin import ACTIONS, Action, serve_admin
from .auth import Caller, oauth_caller, webhook_caller
from .batch import command_methods, run_batch
from .bucket import LeakyBucket
from .catalog import Catalog
from .context import CallContext, MethodResult, RequestState
from .download import serve_download
from .injector import REST_FAULTS, FaultInjector, rest_key
from .links import DownloadLinks
from .methods import BATCH, DOWNLOAD, canonical_name, find_method, is_image_add
from .operating import OperatingBudget, OperatingUsage
from .params import read_params
from .settings import PortalSettings
from .stats import Stats
from .token_endpoint import serve_token_request
from .tokens import OAuthTokens
from .wire import error_response, html_error_page, json_response, nginx_too_large, time_block

STATS_PATH = "/_simulator/stats"
TOKEN_PATH = "/oauth/token/"
"""The OAuth server's token endpoint (oauth.bitrix.info on the real service)."""
_OUTSIDE_THE_PORTAL = frozenset({STATS_PATH, *ACTIONS, TOKEN_PATH, TOKEN_PATH.rstrip("/")})
_CREDENTIALS = ("access_token", "refresh_token", "client_id", "client_secret")
POST_LIMIT = 2 * 1024**3
"""The cloud's cap on a POST: "a POST is limited to 2 GB" (read as GiB here)."""

Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep`` or a stand-in that moves a fake clock."""

Authenticate = Callable[[dict[str, Any]], Caller]
"""Checks a request's credentials (given its params); raises NO_AUTH_FOUND or expired_token."""


class SimulatedPortal:
    """Routes, REST methods, batch and downloads over one catalog, with live ``stats``.

    ``settings`` may be replaced between requests (e.g. ``dataclasses.replace``); a new
    rps/burst starts a fresh leaky bucket, a new secret invalidates issued links, new
    OAuth credentials restart the token pair, new faults restart their counting.
    """

    def __init__(
        self,
        catalog: Catalog,
        settings: PortalSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.catalog = catalog
        self.stats = Stats()
        self.clock = clock
        """The portal's time source (seconds); every limit and expiry runs on it."""
        self.sleep = sleep
        """How the portal waits (slow answers, the competitor); injectable for tests."""
        self._settings = settings if settings is not None else PortalSettings()
        self._bucket = self._new_bucket()
        self._budget = OperatingBudget(self._settings.operating_window, clock)
        self.links = DownloadLinks(self._settings.secret, clock)
        self.tokens = OAuthTokens(self._settings, clock)
        """The OAuth application's live token pair."""
        self.faults = FaultInjector(self._settings.faults, self.stats.faults)
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
            self.links = DownloadLinks(settings.secret, self.clock)
        if old.operating_window != settings.operating_window:
            self._budget = OperatingBudget(settings.operating_window, self.clock)
        if any(getattr(old, name) != getattr(settings, name) for name in _CREDENTIALS):
            self.tokens = OAuthTokens(settings, self.clock)
        if old.faults != settings.faults:
            self.faults = FaultInjector(settings.faults, self.stats.faults)

    @property
    def current_access_token(self) -> str:
        """The OAuth access token that works now (changes with every refresh)."""
        return self.tokens.access_token

    @property
    def current_refresh_token(self) -> str:
        """The refresh token that works now (refresh tokens rotate)."""
        return self.tokens.refresh_token

    @property
    def bucket(self) -> LeakyBucket | None:
        """The request-rate limiter; None when the rate limit is off."""
        return self._bucket

    def _new_bucket(self) -> LeakyBucket | None:
        if self._settings.rps is None:
            return None
        return LeakyBucket(self._settings.rps, self._settings.burst, self.clock)

    def _build_app(self) -> web.Application:
        stats = self.stats

        @web.middleware
        async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path not in _OUTSIDE_THE_PORTAL:
                stats.http_requests += 1
            return await handler(request)

        @web.middleware
        async def cap_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path not in _OUTSIDE_THE_PORTAL and await self._too_large(request):
                stats.oversized_requests += 1
                return nginx_too_large()
            return await handler(request)

        app = web.Application(middlewares=[count_requests, cap_bodies], client_max_size=POST_LIMIT)
        app.router.add_get(STATS_PATH, self._stats_route, allow_head=False)
        for path, action in ACTIONS.items():
            app.router.add_post(path, self._admin_route(action))
        for path in (TOKEN_PATH, TOKEN_PATH.rstrip("/")):
            app.router.add_route("GET", path, self._token_route)
            app.router.add_route("POST", path, self._token_route)
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
        elif error.code == "OPERATION_TIME_LIMIT":
            self.stats.operation_limited += 1

    def fault_answer(self, request: web.Request, kind: str) -> web.Response:
        """The answer a "500", "html" or (REST) "drop" fault gives instead of the real one."""
        if kind == "500":
            return self.error(errors.internal_server_error())
        if kind == "html":
            return html_error_page()
        return self._hang_up(request)

    @staticmethod
    def _hang_up(request: web.Request) -> web.Response:
        """Close the connection so the client gets no answer at all."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    async def _too_large(self, request: web.Request) -> bool:
        """Whether the body is above ``max_request_bytes`` (or the cloud's POST limit).

        A declared Content-Length decides before anything is read; a chunked body is read
        to be measured.
        """
        cap = self._settings.max_request_bytes or POST_LIMIT
        length = request.content_length
        if length is None and request.body_exists:
            try:
                length = len(await request.read())
            except web.HTTPRequestEntityTooLarge:
                return True
        return length is not None and length > cap

    def _loses_answer(self, name: str, params: dict[str, Any]) -> bool:
        """Whether this request carries an add and its answer is to be lost."""
        share = self._settings.lost_add_answers
        if share <= 0:
            return False
        methods = command_methods(params) if name == BATCH else [name]
        if not any(map(is_image_add, methods)):
            return False
        return self.faults.happens("lost_add", rest_key(name, params), share)

    # Routes

    async def _stats_route(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    def _admin_route(self, action: Action) -> Handler:
        async def route(request: web.Request) -> web.StreamResponse:
            return await serve_admin(request, self.catalog, action)

        return route

    async def _webhook_route(self, request: web.Request) -> web.StreamResponse:
        def authenticate(params: dict[str, Any]) -> Caller:
            return webhook_caller(request, self._settings)

        return await self._dispatch(request, authenticate)

    async def _oauth_route(self, request: web.Request) -> web.StreamResponse:
        def authenticate(params: dict[str, Any]) -> Caller:
            try:
                return oauth_caller(request, self._settings, self.tokens, params)
            except errors.ApiError as error:
                if error.code == "expired_token":
                    self.stats.expired_tokens += 1
                raise

        return await self._dispatch(request, authenticate)

    async def _token_route(self, request: web.Request) -> web.Response:
        return await serve_token_request(self, request)

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
            fault = self.faults.decide(rest_key(name, params), REST_FAULTS)
            if fault.slow:
                await self.sleep(self._settings.faults.slow_seconds)
            if fault.kind is not None:
                return self.fault_answer(request, fault.kind)
            caller = authenticate(params)
        except errors.ApiError as error:
            return self.error(error)
        try:
            outcome = self._call(name, params, caller, RequestState(), in_batch=False)
        except errors.ApiError as error:
            answer = self.error(error)
        else:
            answer = self._success(outcome, start, time.perf_counter() - started)
        if self._loses_answer(name, params):
            self.stats.lost_answers += 1
            return self._hang_up(request)
        return answer

    @staticmethod
    def _success(outcome: MethodResult, start: float, processing: float) -> web.Response:
        body: dict[str, Any] = {"result": outcome.result}
        if outcome.total is not None:
            body["total"] = outcome.total
        if outcome.next is not None:
            body["next"] = outcome.next
        body["time"] = time_block(start, time.time(), processing, outcome.operating)
        return json_response(body)

    def _call(
        self,
        name: str,
        params: dict[str, Any],
        caller: Caller,
        request: RequestState,
        *,
        in_batch: bool,
    ) -> MethodResult:
        """Run one method (or, outside a batch, a whole batch) for an authenticated caller."""
        if name == BATCH and not in_batch:
            return self._batch(params, caller, request)
        if in_batch:
            self.stats.commands[canonical_name(name)] += 1
        spec = find_method(name)
        if spec is None:
            raise errors.method_not_found()
        context = CallContext(self.catalog, self._settings, self.links, caller, request, self.stats)
        cost = self._settings.operating_cost
        if cost <= 0 or not spec.name.startswith("catalog."):
            return spec.call(params, context)
        # Checked before the call: the call that crosses the limit still runs.
        self._budget.check(caller.account, spec.name, self._settings.operating_limit)
        try:
            outcome = spec.call(params, context)
        finally:  # a method that ran and failed has used its time too
            self._budget.charge(caller.account, spec.name, cost)
        return replace(outcome, operating=self._budget.usage(caller.account, spec.name))

    def _batch(self, params: dict[str, Any], caller: Caller, request: RequestState) -> MethodResult:
        self.stats.batches += 1
        figures: list[OperatingUsage] = []

        def run(method: str, query: dict[str, Any]) -> MethodResult:
            outcome = self._call(method, query, caller, request, in_batch=True)
            if outcome.operating is not None:
                figures.append(outcome.operating)
            return outcome

        result = run_batch(
            params,
            run,
            self.record_error,
            allows_images=self._settings.batch_allows_images,
            refuses_images_whole=self._settings.batch_refused_whole,
            refuses_add=self._settings.batch_refuses_add,
        )
        if self._settings.operating_cost <= 0:
            return MethodResult(result)
        # batch itself is not counted; like the captured real answer, its own time block
        # repeats the figures of the last command that ran.
        return MethodResult(result, operating=figures[-1] if figures else OperatingUsage(0.0, None))
