"""The portal client: REST calls, batches, downloads and OAuth refresh, on a fake clock.

REST answers come from aioresponses; downloads go to a tiny aiohttp server on loopback
so the exact bytes of the request line can be checked. Nothing here sleeps: the client
and its limiter wait on a clock that only advances when someone sleeps on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from exporter import __version__
from exporter.config import OAuthConfig
from exporter.errors import (
    DownloadError,
    FatalPortalError,
    ImageError,
    OperationTimeLimitError,
    RateLimitedError,
    StaleLinkError,
    TransientError,
)
from exporter.portal.auth import Auth, OAuthAuth, WebhookAuth
from exporter.portal.batch import BatchCall
from exporter.portal.client import PortalClient
from exporter.portal.ratelimit import TokenBucket
from exporter.portal.retry import RetryPolicy

from .support import FakeClock

PORTAL = "https://example.bitrix24.com"
WEBHOOK_CODE = "SECRETCODE"
WEBHOOK = f"{PORTAL}/rest/1/{WEBHOOK_CODE}/"
GET = "catalog.productImage.get"
GET_URL = WEBHOOK + GET
BATCH_URL = WEBHOOK + "batch"
TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"
TOKEN_URL_PATTERN = re.compile(r"^https://oauth\.bitrix\.info/oauth/token/")

IMAGE = {
    "createTime": "2024-10-17T10:48:05+02:00",
    "detailUrl": "/upload/iblock/6f1/bkm7jmwso31wisk423gtp28iagy2e8v0/test.jpeg",
    "downloadUrl": f"{PORTAL}/rest/1/{WEBHOOK_CODE}/download/?token=catalog%7Cx",
    "id": 1,
    "name": "test.jpeg",
    "productId": 1,
    "type": "MORE_PHOTO",
}
GOOD_ANSWER = {
    "result": {"productImage": IMAGE},
    "time": {"start": 1729162290.04, "finish": 1729162290.63, "duration": 0.59},
}
RATE_LIMITED = {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
OPERATION_LIMIT = {
    "error": "OPERATION_TIME_LIMIT",
    "error_description": "Method is blocked due to operation time limit.",
}
EXPIRED = {"error": "expired_token", "error_description": "The access token provided has expired"}
NO_AUTH = {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}
SERVER_ERROR = {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}
HTML_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"

# The docs' downloadUrl (reference/examples/catalog.productImage.get.200.json), path and
# query only: %7C, %2B and %3D must reach the portal as they are, or the signature breaks.
SIGNED_DOWNLOAD = (
    "/rest/download.json?sessid=ae1ada0e5c85babd18ce4af4c702d1d9&token=catalog%7C"
    "aWQ9NzY1MSZfPTZWZFhwSDRZRFRvcmNmYWtGMVRQbE4wdjZRcHA5QXBY%7C"
    "ImRvd25sb2FkfGNhdGFsb2d8YVdROU56WTFNU1pmUFRaV1pGaHdTRFJaUkZSdmNtTm1ZV3RHTVZSUWJFNHdka"
    "lpSY0hBNVFYQll8YWUxYWRhMGU1Yzg1YmFiZDE4Y2U0YWY0YzcwMmQxZDki."
    "8jeG4p%2BO6LZSDNqaRR3XdTAM6jSSD4Gtye8zm6Q5Y14%3D"
)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60 + b"\xff\xd9"


def make_client(
    session: aiohttp.ClientSession,
    clock: FakeClock,
    *,
    auth: Auth | None = None,
    max_attempts: int = 3,
    downloads_share_limit: bool = True,
    rate: float = 2.0,
    burst: int = 50,
) -> tuple[PortalClient, TokenBucket]:
    limiter = TokenBucket(rate=rate, burst=burst, clock=clock)
    client = PortalClient(
        base_url=PORTAL,
        auth=auth or WebhookAuth(WEBHOOK),
        session=session,
        limiter=limiter,
        retry=RetryPolicy(max_attempts=max_attempts),
        timeout_seconds=10.0,
        downloads_share_limit=downloads_share_limit,
        clock=clock,
        rng=random.Random(0),
    )
    return client, limiter


def sent(portal: aioresponses, url: str, method: str = "POST") -> list[Any]:
    """The requests the client sent to `url` (aioresponses' record)."""
    return portal.requests.get((method, URL(url)), [])


def request_count(portal: aioresponses) -> int:
    return sum(len(calls) for calls in portal.requests.values())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def portal(mocked: aioresponses) -> aioresponses:
    return mocked


# REST calls: where they go and what they carry.


async def test_a_call_is_posted_to_the_webhook_url_plus_the_method(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    await client.call(GET, {"productId": 1, "id": 1})
    assert len(sent(portal, GET_URL)) == 1


async def test_a_call_sends_its_parameters_as_a_json_body(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    await client.call(GET, {"productId": 1, "id": 1})
    assert sent(portal, GET_URL)[0].kwargs["json"] == {"productId": 1, "id": 1}


async def test_a_call_returns_the_whole_answer(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    assert await client.call(GET, {"productId": 1, "id": 1}) == GOOD_ANSWER


async def test_a_call_names_the_exporter_and_its_version_as_user_agent(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    await client.call(GET, {"productId": 1, "id": 1})
    headers = sent(portal, GET_URL)[0].kwargs["headers"]
    assert headers["User-Agent"] == f"b24-image-exporter/{__version__}"


async def test_a_call_takes_one_token_from_the_limiter(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, limiter = make_client(session, clock, burst=5)
    await client.call(GET, {"productId": 1, "id": 1})
    assert limiter.tokens == pytest.approx(4.0)


async def test_a_redirect_is_not_followed_and_names_only_the_new_host(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    moved = f"https://new-name.bitrix24.com/rest/1/{WEBHOOK_CODE}/{GET}"
    portal.post(GET_URL, status=302, headers={"Location": moved})
    portal.post(moved, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    with pytest.raises(FatalPortalError) as caught:
        await client.call(GET, {"productId": 1, "id": 1})
    assert caught.value.code == "PORTAL_MOVED"
    assert "new-name.bitrix24.com" in str(caught.value)
    assert WEBHOOK_CODE not in str(caught.value)
    assert request_count(portal) == 1


# Rate limit, faults and retries.


async def test_rate_limited_call_is_retried_after_slowing_down(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=503, payload=RATE_LIMITED)
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, limiter = make_client(session, clock, rate=2.0)
    assert await client.call(GET, {"productId": 1, "id": 1}) == GOOD_ANSWER
    assert len(sent(portal, GET_URL)) == 2
    assert client.counts.rate_limited == 1
    assert limiter.rate < 2.0


async def test_rate_limited_call_waits_for_the_emptied_bucket_before_the_retry(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=503, payload=RATE_LIMITED)
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock, rate=2.0, burst=50)
    await client.call(GET, {"productId": 1, "id": 1})
    # 50 tokens were left, but a 503 empties the bucket and halves the rate: 1 s.
    assert clock.sleeps == [pytest.approx(1.0)]


async def test_transient_error_is_retried_up_to_max_attempts_then_raised(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=500, payload=SERVER_ERROR, repeat=True)
    client, _ = make_client(session, clock, max_attempts=4)
    with pytest.raises(TransientError):
        await client.call(GET, {"productId": 1, "id": 1})
    assert len(sent(portal, GET_URL)) == 4
    assert client.counts.retried == 3
    assert client.counts.rest == 4


async def test_transient_error_then_success_counts_one_retry(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=500, payload=SERVER_ERROR)
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    assert await client.call(GET, {"productId": 1, "id": 1}) == GOOD_ANSWER
    assert client.counts.retried == 1


async def test_retries_back_off_on_the_injected_clock_within_the_growing_cap(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=500, payload=SERVER_ERROR, repeat=True)
    client, _ = make_client(session, clock, max_attempts=4)
    with pytest.raises(TransientError):
        await client.call(GET, {"productId": 1, "id": 1})
    assert len(clock.sleeps) == 3
    for failures, delay in enumerate(clock.sleeps, start=1):
        assert 0 <= delay <= 0.5 * 2**failures


async def test_an_html_error_page_is_retried(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=502, body=HTML_PAGE, content_type="text/html")
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    assert await client.call(GET, {"productId": 1, "id": 1}) == GOOD_ANSWER
    assert len(sent(portal, GET_URL)) == 2


async def test_a_fatal_refusal_is_raised_on_the_first_answer(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=401, payload=NO_AUTH, repeat=True)
    client, _ = make_client(session, clock)
    with pytest.raises(FatalPortalError) as caught:
        await client.call(GET, {"productId": 1, "id": 1})
    assert caught.value.code == "NO_AUTH_FOUND"
    assert request_count(portal) == 1


async def test_overload_limit_503_aborts_instead_of_slowing_down(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    overload = {"error": "OVERLOAD_LIMIT", "error_description": "REST API is blocked"}
    portal.post(GET_URL, status=503, payload=overload, repeat=True)
    client, limiter = make_client(session, clock)
    with pytest.raises(FatalPortalError):
        await client.call(GET, {"productId": 1, "id": 1})
    assert request_count(portal) == 1
    assert client.counts.rate_limited == 0
    assert limiter.rate == 2.0


async def test_an_image_error_is_raised_without_a_retry(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=400, payload={"error": 0, "error_description": "Not found"})
    client, _ = make_client(session, clock)
    with pytest.raises(ImageError):
        await client.call(GET, {"productId": 1, "id": 9})
    assert request_count(portal) == 1


async def test_an_expired_webhook_cannot_be_refreshed_and_is_fatal(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=401, payload=EXPIRED, repeat=True)
    client, _ = make_client(session, clock)
    with pytest.raises(FatalPortalError):
        await client.call(GET, {"productId": 1, "id": 1})
    assert request_count(portal) == 1


# Batches.


def get_call(product_id: int, image_id: int) -> BatchCall:
    return BatchCall(
        f"p{product_id}_i{image_id}", GET, (("productId", product_id), ("id", image_id))
    )


def batch_answer(
    results: dict[str, Any], errors: dict[str, Any], times: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "result": {
            "result": results or [],
            "result_error": errors or [],
            "result_total": [],
            "result_next": [],
            "result_time": times or [],
        },
        "time": {"start": 1.0, "finish": 1.1},
    }


async def test_a_batch_returns_each_commands_outcome_by_key(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    body = batch_answer(
        {"p1_i1": {"productImage": IMAGE}},
        {"p1_i2": {"error": 0, "error_description": "Image does not exist"}},
    )
    portal.post(BATCH_URL, payload=body)
    client, _ = make_client(session, clock)
    answer = await client.batch([get_call(1, 1), get_call(1, 2)])
    assert answer.outcomes["p1_i1"] == {"productImage": IMAGE}
    assert isinstance(answer.outcomes["p1_i2"], ImageError)


async def test_a_batch_is_one_request_carrying_every_command(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(BATCH_URL, payload=batch_answer({"p1_i1": {}, "p1_i2": {}}, {}))
    client, _ = make_client(session, clock)
    await client.batch([get_call(1, 1), get_call(1, 2)])
    body = sent(portal, BATCH_URL)[0].kwargs["json"]
    assert body == {
        "halt": 0,
        "cmd": {
            "p1_i1": "catalog.productImage.get?productId=1&id=1",
            "p1_i2": "catalog.productImage.get?productId=1&id=2",
        },
    }
    assert (client.counts.rest, client.counts.batch) == (1, 1)


async def test_a_rate_limited_batch_is_retried_after_slowing_down(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(BATCH_URL, status=503, payload=RATE_LIMITED)
    portal.post(BATCH_URL, payload=batch_answer({"p1_i1": {"productImage": IMAGE}}, {}))
    client, limiter = make_client(session, clock)
    answer = await client.batch([get_call(1, 1)])
    assert answer.outcomes["p1_i1"] == {"productImage": IMAGE}
    assert client.counts.rate_limited == 1
    assert limiter.rate < 2.0


# The per-method operating limit (HTTP 429 OPERATION_TIME_LIMIT).


def reset_by_this_clock() -> dict[str, float]:
    """A time block without `finish`: the reset is compared with this machine's clock."""
    return {"operating": 470.0, "operating_reset_at": time.time() + 30}


def reset_by_a_skewed_portal_clock() -> dict[str, float]:
    """A portal whose clock is an hour ahead of this machine's, and says so in `finish`."""
    portal_now = time.time() + 3600
    return {"finish": portal_now, "operating": 470.0, "operating_reset_at": int(portal_now) + 30}


@pytest.mark.parametrize("timing", [reset_by_this_clock, reset_by_a_skewed_portal_clock])
async def test_operating_limit_pauses_the_method_until_its_reset_then_succeeds(
    portal: aioresponses,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    timing: Callable[[], dict[str, float]],
) -> None:
    portal.post(GET_URL, payload=dict(GOOD_ANSWER, time=timing()))
    portal.post(GET_URL, status=429, payload=OPERATION_LIMIT)
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    await client.call(GET, {"productId": 1, "id": 1})
    before = clock.now()
    assert await client.call(GET, {"productId": 1, "id": 2}) == GOOD_ANSWER
    assert clock.now() - before == pytest.approx(30.5, abs=2.0)
    assert len(sent(portal, GET_URL)) == 3


async def test_operating_limit_without_a_known_reset_probes_at_doubling_intervals(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    for _ in range(3):
        portal.post(GET_URL, status=429, payload=OPERATION_LIMIT)
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    assert await client.call(GET, {"productId": 1, "id": 1}) == GOOD_ANSWER
    assert clock.sleeps == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(4.0)]


async def test_operating_limit_is_not_a_failure_of_the_request(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(GET_URL, status=429, payload=OPERATION_LIMIT)
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock, max_attempts=1)
    assert await client.call(GET, {"productId": 1, "id": 1}) == GOOD_ANSWER
    assert client.counts.retried == 0


async def test_operating_limit_inside_a_batch_pauses_only_that_method(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(BATCH_URL, payload=batch_answer({}, {"p1_i1": OPERATION_LIMIT}))
    portal.post(WEBHOOK + "catalog.product.list", payload={"result": {"products": []}})
    portal.post(GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock)
    answer = await client.batch([get_call(1, 1)])
    assert isinstance(answer.outcomes["p1_i1"], OperationTimeLimitError)
    await client.call("catalog.product.list", {"filter": {"iblockId": 1}})
    assert clock.sleeps == []  # another method runs at once
    await client.call(GET, {"productId": 1, "id": 1})
    assert clock.sleeps == [pytest.approx(1.0)]


# Downloads, against a real HTTP server on loopback.


class DownloadPortal:
    """Answers every GET with the next queued answer (default: a JPEG), and records it."""

    def __init__(self) -> None:
        self.base = ""
        self.raw_paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.answers: list[tuple[int, str, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.raw_paths.append(request.raw_path)
        self.headers.append(dict(request.headers))
        status, content_type, body = (
            self.answers.pop(0) if self.answers else (200, "image/jpeg", JPEG)
        )
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})


@pytest.fixture
async def files() -> AsyncIterator[DownloadPortal]:
    portal = DownloadPortal()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", portal.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    portal.base = f"http://127.0.0.1:{server.port}"
    yield portal
    await server.close()


async def download(client: PortalClient, url: str) -> bytes:
    async with client.open_download(url) as response:
        return await response.read()


async def test_download_returns_the_file_bytes(
    files: DownloadPortal, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client, _ = make_client(session, clock)
    assert await download(client, files.base + SIGNED_DOWNLOAD) == JPEG
    assert client.counts.download == 1


async def test_download_url_reaches_the_portal_byte_for_byte(
    files: DownloadPortal, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client, _ = make_client(session, clock)
    await download(client, files.base + SIGNED_DOWNLOAD)
    assert files.raw_paths == [SIGNED_DOWNLOAD]


async def test_download_url_keeps_lowercase_escapes_and_encoded_slashes(
    files: DownloadPortal, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    odd = "/rest/1/abc/download/?token=disk%7cx%2Fy%2f%3D%3d&_=1+2"
    client, _ = make_client(session, clock)
    await download(client, files.base + odd)
    assert files.raw_paths == [odd]


async def test_download_sends_the_headers_the_portal_expects(
    files: DownloadPortal, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client, _ = make_client(session, clock)
    await download(client, files.base + SIGNED_DOWNLOAD)
    headers = files.headers[0]
    assert headers["User-Agent"] == f"b24-image-exporter/{__version__}"
    assert headers["Accept"]
    assert headers["Accept-Language"]
    assert headers["Referer"] == "https://example.bitrix24.com/"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, json.dumps(EXPIRED).encode()),
        (403, b'{"error":"ACCESS_DENIED","error_description":"Access denied! Link check failed"}'),
        (404, b"<html><body>404 Not Found</body></html>"),
    ],
    ids=["401-expired", "403-link-check", "404-nginx"],
)
async def test_a_refused_download_link_is_stale(
    files: DownloadPortal,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    status: int,
    body: bytes,
) -> None:
    files.answers.append((status, "application/json", body))
    client, _ = make_client(session, clock)
    with pytest.raises(StaleLinkError):
        await download(client, files.base + SIGNED_DOWNLOAD)


async def test_an_html_page_with_status_200_is_not_the_file(
    files: DownloadPortal, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    files.answers.append((200, "text/html; charset=UTF-8", HTML_PAGE.encode()))
    client, _ = make_client(session, clock)
    with pytest.raises(TransientError):
        await download(client, files.base + SIGNED_DOWNLOAD)


async def test_a_rate_limited_download_is_a_rate_limit(
    files: DownloadPortal, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    files.answers.append((503, "application/json", json.dumps(RATE_LIMITED).encode()))
    client, _ = make_client(session, clock)
    with pytest.raises(RateLimitedError):
        await download(client, files.base + SIGNED_DOWNLOAD)


async def test_a_download_takes_a_token_when_downloads_share_the_limit(
    files: DownloadPortal, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client, limiter = make_client(session, clock, downloads_share_limit=True, burst=5)
    await download(client, files.base + SIGNED_DOWNLOAD)
    assert limiter.tokens == pytest.approx(4.0)


async def test_downloads_outside_the_shared_limit_leave_the_limiter_alone(
    files: DownloadPortal, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client, limiter = make_client(session, clock, downloads_share_limit=False, burst=5)
    for _ in range(3):
        await download(client, files.base + SIGNED_DOWNLOAD)
    assert limiter.tokens == pytest.approx(5.0)
    assert client.counts.download == 3


async def test_an_error_message_of_a_download_never_carries_its_url(
    files: DownloadPortal, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    files.answers.append((404, "text/html", b"<html>404</html>"))
    client, _ = make_client(session, clock)
    with pytest.raises(StaleLinkError) as caught:
        await download(client, files.base + SIGNED_DOWNLOAD)
    assert "ae1ada0e5c85babd18ce4af4c702d1d9" not in str(caught.value)
    assert "download.json" not in str(caught.value)


# OAuth: `auth` in the body, one shared refresh on expired_token, rotating pair saved.

OLD_ACCESS = "old-access-0a1b2c3d"
OLD_REFRESH = "old-refresh-4e5f6a7b"
NEW_ACCESS = "new-access-8c9d0e1f"
NEW_REFRESH = "new-refresh-2a3b4c5d"
CLIENT_SECRET = "client-secret-6e7f8a9b"
OAUTH_GET_URL = f"{PORTAL}/rest/{GET}"
TOKEN_ANSWER = {
    "access_token": NEW_ACCESS,
    "refresh_token": NEW_REFRESH,
    "expires": 1729166000,
    "expires_in": 3600,
    "client_endpoint": f"{PORTAL}/rest/",
    "server_endpoint": "https://oauth.bitrix.info/rest/",
    "domain": "oauth.bitrix.info",
    "member_id": "abc",
    "scope": "catalog",
    "status": "L",
    "user_id": 1,
}


def oauth_auth(session: aiohttp.ClientSession, token_file: Path | None) -> OAuthAuth:
    config = OAuthConfig(
        access_token=OLD_ACCESS,
        refresh_token=OLD_REFRESH,
        client_id="app.5f1e2d3c4b5a6.12345678",
        client_secret=CLIENT_SECRET,
        token_url=TOKEN_URL,
        token_file=token_file,
    )
    return OAuthAuth(PORTAL, config, session)


def expiring_portal(portal: aioresponses, gate: int = 1) -> list[str]:
    """REST answers: `expired_token` to the old token (once `gate` requests arrived)."""
    seen: list[str] = []
    arrived = asyncio.Event()

    async def answer(url: URL, **kwargs: Any) -> CallbackResult:
        token = kwargs["json"].get("auth", "")
        seen.append(token)
        if token != OLD_ACCESS:
            return CallbackResult(status=200, payload=GOOD_ANSWER)
        if sum(1 for t in seen if t == OLD_ACCESS) >= gate:
            arrived.set()
        await arrived.wait()  # every concurrent request is in flight with the old token
        return CallbackResult(status=401, payload=EXPIRED)

    portal.post(OAUTH_GET_URL, callback=answer, repeat=True)
    return seen


def token_requests(portal: aioresponses) -> list[dict[str, list[str]]]:
    return [
        parse_qs(urlsplit(str(url)).query)
        for (method, url), calls in portal.requests.items()
        if method == "GET" and str(url).startswith(TOKEN_URL)
        for _ in calls
    ]


async def test_oauth_call_carries_the_access_token_as_auth(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(OAUTH_GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    await client.call(GET, {"productId": 1, "id": 1})
    body = sent(portal, OAUTH_GET_URL)[0].kwargs["json"]
    assert body == {"productId": 1, "id": 1, "auth": OLD_ACCESS}


async def test_expired_token_is_refreshed_and_the_call_repeated_with_the_new_one(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    seen = expiring_portal(portal)
    portal.get(TOKEN_URL_PATTERN, payload=TOKEN_ANSWER)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    assert await client.call(GET, {"productId": 1, "id": 1}) == GOOD_ANSWER
    assert seen == [OLD_ACCESS, NEW_ACCESS]


async def test_refresh_sends_the_refresh_token_and_app_credentials_to_the_oauth_server(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    expiring_portal(portal)
    portal.get(TOKEN_URL_PATTERN, payload=TOKEN_ANSWER)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    await client.call(GET, {"productId": 1, "id": 1})
    [query] = token_requests(portal)
    assert query["grant_type"] == ["refresh_token"]
    assert query["refresh_token"] == [OLD_REFRESH]
    assert query["client_secret"] == [CLIENT_SECRET]


async def test_concurrent_expired_requests_share_one_refresh(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    seen = expiring_portal(portal, gate=4)
    portal.get(TOKEN_URL_PATTERN, payload=TOKEN_ANSWER, repeat=True)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    results: list[dict[str, Any]] = []

    async def one(image_id: int) -> None:
        results.append(await client.call(GET, {"productId": 1, "id": image_id}))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for image_id in range(4):
                group.start_soon(one, image_id)
    assert len(token_requests(portal)) == 1
    assert results == [GOOD_ANSWER] * 4
    assert sorted(seen) == sorted([OLD_ACCESS] * 4 + [NEW_ACCESS] * 4)


async def test_later_calls_use_the_refreshed_token(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    seen = expiring_portal(portal)
    portal.get(TOKEN_URL_PATTERN, payload=TOKEN_ANSWER)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    await client.call(GET, {"productId": 1, "id": 1})
    await client.call(GET, {"productId": 1, "id": 2})
    assert seen[-1] == NEW_ACCESS
    assert len(token_requests(portal)) == 1


async def test_refreshed_pair_is_written_to_the_token_file_readable_only_by_the_owner(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock, tmp_path: Path
) -> None:
    token_file = tmp_path / "b24-tokens.json"
    expiring_portal(portal)
    portal.get(TOKEN_URL_PATTERN, payload=TOKEN_ANSWER)
    client, _ = make_client(session, clock, auth=oauth_auth(session, token_file))
    await client.call(GET, {"productId": 1, "id": 1})
    saved = json.loads(token_file.read_text(encoding="utf-8"))
    assert (saved["access_token"], saved["refresh_token"]) == (NEW_ACCESS, NEW_REFRESH)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


async def test_a_token_file_pair_is_used_instead_of_the_configured_one(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock, tmp_path: Path
) -> None:
    token_file = tmp_path / "b24-tokens.json"
    token_file.write_text(json.dumps({"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH}))
    portal.post(OAUTH_GET_URL, payload=GOOD_ANSWER)
    client, _ = make_client(session, clock, auth=oauth_auth(session, token_file))
    await client.call(GET, {"productId": 1, "id": 1})
    assert sent(portal, OAUTH_GET_URL)[0].kwargs["json"]["auth"] == NEW_ACCESS


async def test_a_refresh_refused_with_invalid_grant_is_fatal(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    expiring_portal(portal)
    refused = {"error": "invalid_grant", "error_description": "Invalid grant"}
    portal.get(TOKEN_URL_PATTERN, status=400, payload=refused)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    with pytest.raises(FatalPortalError) as caught:
        await client.call(GET, {"productId": 1, "id": 1})
    assert caught.value.code == "invalid_grant"


async def test_a_token_that_expires_again_after_a_refresh_is_fatal(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    portal.post(OAUTH_GET_URL, status=401, payload=EXPIRED, repeat=True)
    portal.get(TOKEN_URL_PATTERN, payload=TOKEN_ANSWER)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    with pytest.raises(FatalPortalError):
        await client.call(GET, {"productId": 1, "id": 1})
    assert len(sent(portal, OAUTH_GET_URL)) == 2


async def test_a_refused_refresh_never_shows_the_secret_or_the_tokens(
    portal: aioresponses,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expiring_portal(portal)
    echoing = {
        "error": "invalid_grant",
        "error_description": f"refresh_token {OLD_REFRESH} of client {CLIENT_SECRET} expired",
    }
    portal.get(TOKEN_URL_PATTERN, status=400, payload=echoing)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FatalPortalError) as caught:
        await client.call(GET, {"productId": 1, "id": 1})
    shown = str(caught.value) + "\n" + caplog.text
    for secret in (CLIENT_SECRET, OLD_REFRESH, OLD_ACCESS):
        assert secret not in shown


async def test_a_successful_refresh_logs_no_secret_or_token(
    portal: aioresponses,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expiring_portal(portal)
    portal.get(TOKEN_URL_PATTERN, payload=TOKEN_ANSWER)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    caplog.set_level(logging.DEBUG)
    await client.call(GET, {"productId": 1, "id": 1})
    assert "refreshed" in caplog.text
    for secret in (CLIENT_SECRET, OLD_REFRESH, OLD_ACCESS, NEW_ACCESS, NEW_REFRESH):
        assert secret not in caplog.text


async def test_a_dropped_connection_to_the_token_server_is_retried(
    portal: aioresponses, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    seen = expiring_portal(portal)
    portal.get(TOKEN_URL_PATTERN, exception=aiohttp.ServerDisconnectedError())
    portal.get(TOKEN_URL_PATTERN, payload=TOKEN_ANSWER)
    client, _ = make_client(session, clock, auth=oauth_auth(session, None))
    assert await client.call(GET, {"productId": 1, "id": 1}) == GOOD_ANSWER
    assert seen[-1] == NEW_ACCESS


@pytest.mark.parametrize("link", ["not a url", "ftp://example.bitrix24.com/x", "/relative/only"])
async def test_a_download_link_that_is_not_a_url_fails_without_a_request(
    session: aiohttp.ClientSession, clock: FakeClock, link: str
) -> None:
    client, _ = make_client(session, clock)
    with pytest.raises(DownloadError, match="BAD_LINK"):
        async with client.open_download(link):
            pass
    assert client.counts.download == 0
