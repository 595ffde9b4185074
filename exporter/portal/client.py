"""HTTP to the portal: REST calls, batches and downloads, every one through the limiter.

`PortalClient` sends JSON POSTs with the credentials `Auth` supplies, turns every
answer into a result or an error of `exporter.errors`, and retries what the retry
policy (`exporter.portal.retry`) says is worth retrying: 503 `QUERY_LIMIT_EXCEEDED`
slows the limiter down, `OPERATION_TIME_LIMIT` pauses that method until the portal's
reset time, `expired_token` refreshes OAuth credentials once, and transient failures
back off with full jitter. Redirects are never followed for REST calls (a POST would
lose its body).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from exporter import __version__
from exporter.errors import (
    DownloadError,
    ExpiredTokenError,
    ExporterError,
    FatalPortalError,
    OperationTimeLimitError,
    RateLimitedError,
    RequestTooLargeError,
    StaleLinkError,
    TransientError,
    classify_portal_error,
    foreign_error_page,
    garbled_answer,
)
from exporter.model import Incoming, RequestCounts
from exporter.portal.auth import Auth
from exporter.portal.batch import (
    BATCH_METHOD,
    BatchAnswer,
    BatchCall,
    batch_payload,
    parse_batch_answer,
)
from exporter.portal.downloads import DownloadRule, FindingMemory, Ticket
from exporter.portal.operating import OperatingBudget
from exporter.portal.ratelimit import Clock, MonotonicClock, TokenBucket
from exporter.portal.retry import Action, RetryPolicy, Tries
from exporter.portal.transport import from_transport

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_AGENT = f"b24-image-exporter/{__version__}"
_ERROR_BODY_LIMIT = 64 * 1024


class PortalClient:
    """One portal, one limiter, one session: REST calls, batches and downloads."""

    def __init__(
        self,
        *,
        base_url: str,
        auth: Auth,
        session: aiohttp.ClientSession,
        limiter: TokenBucket,
        retry: RetryPolicy,
        timeout_seconds: float,
        downloads_share_limit: bool | None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        learned: FindingMemory | None = None,
    ) -> None:
        """`downloads_share_limit` None is auto: learned, and kept in `learned`."""
        self.counts = RequestCounts()
        self._auth = auth
        self._session = session
        self._limiter = limiter
        self.retry = retry
        self._clock: Clock = clock or MonotonicClock()
        self.downloads = DownloadRule(
            downloads_share_limit, limiter, clock=self._clock, memory=learned
        )
        self._rng = rng or random.Random()
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._download_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_seconds, sock_read=timeout_seconds
        )
        self._rest_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        # The portal answers downloads without these with an nginx 404 page.
        self._download_headers = {
            "User-Agent": USER_AGENT,
            "Accept": "image/*,*/*;q=0.8",
            "Accept-Language": "en",
            "Accept-Encoding": "identity",  # the bytes as stored, to match Content-Length
            "Referer": f"{base_url}/",
        }
        self.operating = OperatingBudget(self._clock)

    @property
    def free_tokens(self) -> float:
        """Requests the limiter would let go now without waiting."""
        return self._limiter.tokens

    async def call(
        self, method: str, params: Mapping[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """Call one method; returns the whole answer (`result`, `total`, `time`, …).

        A call that is not `idempotent` (an `add`) is never sent again once it may have
        reached the portal: a failure whose outcome is unknown is raised to the caller.
        """
        return await self.with_retries(
            lambda: self._send(method, dict(params), (method,)), idempotent=idempotent
        )

    async def batch(self, calls: Sequence[BatchCall], *, idempotent: bool = True) -> BatchAnswer:
        """Run up to 50 calls in one request; each command's outcome comes back by key."""
        methods = tuple({call.method for call in calls})
        body = await self.with_retries(
            lambda: self._send(BATCH_METHOD, batch_payload(calls), methods), idempotent=idempotent
        )
        answer = parse_batch_answer(body, calls)
        by_key = {call.key: call.method for call in calls}
        for key, block in answer.times.items():
            if key in by_key:
                self.operating.answered(by_key[key], block)
        for key, outcome in answer.outcomes.items():
            if isinstance(outcome, OperationTimeLimitError):
                self.operating.refused(by_key[key])
        return answer

    async def with_retries(
        self, attempt: Callable[[], Awaitable[T]], *, idempotent: bool = True
    ) -> T:
        """Run `attempt` until it succeeds or the retry policy gives up on it.

        A 503 to a request that took a token has slowed the limiter down already; one
        sent past it (a download outside the shared budget) backs off instead.
        Steps that are another loop's to take (send alone, renew a download link) end
        this one with the error.
        """
        tries = Tries()
        stale: dict[str, str] | None = None
        while True:
            try:
                if stale is not None:
                    # Inside the try, so a refresh that fails transiently is retried too.
                    await self._auth.refresh(stale)
                    stale = None
                return await attempt()
            except ExporterError as exc:
                step = self.retry.next_step(exc, tries, idempotent=idempotent)
                tries = step.tries
                if isinstance(exc, RateLimitedError):
                    self.counts.rate_limited += 1
                match step.action:
                    case Action.SLOW_DOWN if isinstance(exc, RateLimitedError) and exc.paced:
                        log.debug("QUERY_LIMIT_EXCEEDED: rate now %.2f/s", self._limiter.rate)
                    case Action.SLOW_DOWN:  # outside the limiter: back off instead
                        await self._clock.sleep(self._rng.uniform(0, step.backoff))
                    case Action.WAIT:
                        pass  # the operating budget has parked the method until its reset
                    case Action.REFRESH:
                        assert isinstance(exc, ExpiredTokenError)
                        stale = exc.stale_auth or {}
                    case Action.RETRY:
                        self.counts.retried += 1
                        delay = self._rng.uniform(0, step.backoff)
                        log.debug("retrying in %.1fs after %s", delay, exc)
                        await self._clock.sleep(delay)
                    case _ if isinstance(exc, ExpiredTokenError):
                        problem = "the refreshed token was refused too"
                        raise FatalPortalError(exc.code, problem) from None
                    case _:
                        raise

    async def download(self, url: str, receive: Callable[[Incoming], Awaitable[T]]) -> T:
        """GET a `downloadUrl` and hand its body to `receive`, retried as the policy says.

        `receive` (the destination's) is called once per attempt with the body as it
        arrives; an error reading it is mapped like any transport error, and a refused
        link raises `StaleLinkError` for the caller to renew.
        """

        async def attempt() -> T:
            async with self.open_download(url) as response:
                # Pieces as aiohttp buffered them: iter_any would join them first.
                pieces = (piece async for piece, _ in response.content.iter_chunks())
                content_type = response.headers.get("Content-Type", "")
                return await receive(Incoming(content_type, response.content_length, pieces))

        return await self.with_retries(attempt)

    @asynccontextmanager
    async def open_download(self, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """One GET of a `downloadUrl`, exactly as the portal returned it (it is signed).

        Yields a 200 response whose body is the file; raises `StaleLinkError` when the
        portal refuses the link and `TransientError` for what may pass on a retry.
        Errors while the caller reads the body are mapped too.
        """
        link = _parse_link(url)
        if link is None:
            raise DownloadError("BAD_LINK", "the portal gave a download link that is not a URL")
        ticket = await self.downloads.send()
        self.counts.download += 1
        try:
            async with self._session.get(
                link,
                headers=self._download_headers,
                timeout=self._download_timeout,
            ) as response:
                log.debug("download → HTTP %d, %s bytes", response.status, response.content_length)
                try:
                    await self._check_download(response)
                except RateLimitedError as exc:
                    self._refused(exc, ticket)
                    raise
                self.downloads.admitted(ticket)
                yield response
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise from_transport(exc) from None

    def _refused(self, exc: RateLimitedError, ticket: Ticket) -> None:
        exc.paced = ticket.through_limiter
        self.downloads.refused(ticket)

    async def _check_download(self, response: aiohttp.ClientResponse) -> None:
        status = response.status
        content_type = response.headers.get("Content-Type", "").lower()
        if status == 200 and not content_type.startswith(("text/html", "application/json")):
            return
        body = await response.content.read(_ERROR_BODY_LIMIT)
        error = _json_error(body)
        if error is not None:
            code, description = error
            classified = classify_portal_error(status, code, description)
            if isinstance(classified, RateLimitedError | OperationTimeLimitError | TransientError):
                raise classified
        if status in (401, 403, 404, 410):
            raise StaleLinkError(f"HTTP_{status}", "the portal refused the download link")
        if status >= 500 or status == 200:
            # A 200 with an HTML page is the portal's error page, not the image.
            raise garbled_answer(status, f"a {content_type or 'non-file'} page, not the file")
        raise DownloadError(f"HTTP_{status}", "the portal refused the download")

    async def _send(
        self, method: str, params: dict[str, Any], methods: Sequence[str]
    ) -> dict[str, Any]:
        for name in methods:
            await self.operating.wait(name)
        sent_at = await self._limiter.acquire()
        self.downloads.rest_sent(sent_at)
        credentials = self._auth.params()
        self.counts.rest += 1
        if method == BATCH_METHOD:
            self.counts.batch += 1
        try:
            async with self._session.post(
                self._auth.method_url(method),
                json={**params, **credentials},
                headers=self._rest_headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                status = response.status
                body = await response.read()
                location = response.headers.get("Location", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise from_transport(exc) from None
        log.debug("%s → HTTP %d, %d bytes", _describe(method, params), status, len(body))
        try:
            data = _decode(status, body, location)
        except ExpiredTokenError as exc:
            exc.stale_auth = credentials
            raise
        except RateLimitedError:
            self._limiter.on_rate_limited(sent_at)
            self.downloads.rest_refused(sent_at)
            raise
        except OperationTimeLimitError:
            for name in methods:
                self.operating.refused(name)
            raise
        self._limiter.on_success()
        if isinstance(data.get("time"), dict) and method != BATCH_METHOD:
            self.operating.answered(method, data["time"])
        return data


def _describe(method: str, params: Mapping[str, Any]) -> str:
    """A request for the log: the method and, for a batch, how many commands."""
    commands = params.get("cmd")
    return f"{method} ({len(commands)} commands)" if isinstance(commands, dict) else method


def _decode(status: int, body: bytes, location: str) -> dict[str, Any]:
    """A REST answer as its JSON object, or the error it stands for."""
    if 300 <= status < 400:
        target = urlsplit(location).hostname or "another address"
        raise FatalPortalError(
            "PORTAL_MOVED",
            f"the portal redirects to {target}; put its new address in the configuration",
            status,
        )
    if status == 413:
        raise RequestTooLargeError("HTTP_413", "the request is larger than the portal takes", 413)
    try:
        data: Any = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if status == 200 or status >= 500:
            raise garbled_answer(status, "the portal answered with something that is not JSON")
        raise foreign_error_page(status)
    if "error" in data:
        raise classify_portal_error(status, data["error"], data.get("error_description", ""))
    if status != 200 or "result" not in data:
        raise garbled_answer(status, "an answer without a result")
    return data


def _parse_link(url: str) -> URL | None:
    """A `downloadUrl` as aiohttp will send it, untouched (it is signed); None if unusable."""
    try:
        link = URL(url, encoded=True)
    except ValueError:
        return None
    return link if link.scheme in ("http", "https") and link.host else None


def _json_error(body: bytes) -> tuple[object, object] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and "error" in data:
        return data["error"], data.get("error_description", "")
    return None
