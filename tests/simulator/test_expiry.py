"""Download links and OAuth access tokens that stop working after their lifetime."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

import pytest

from exporter.simulator import Catalog, FaultSettings, PortalSettings

from .helpers import FakeClock, PortalClient, portal_client

EXPIRED = {"error": "expired_token", "error_description": "The access token provided has expired"}
LINK_CHECK_FAILED = {
    "error": "ACCESS_DENIED",
    "error_description": "Access denied! Link check failed",
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
async def expiring(catalog: Catalog, clock: FakeClock) -> AsyncIterator[PortalClient]:
    """Links live 60 s, access tokens 300 s."""
    settings = PortalSettings(rps=None, faults=FaultSettings(link_ttl=60.0, token_ttl=300.0))
    async with portal_client(catalog, settings, clock=clock) as client:
        yield client


async def _oauth_url(client: PortalClient, catalog: Catalog) -> Any:
    product_id, image_id = catalog.pairs()[0]
    answer = await client.call_oauth(
        "catalog.productImage.get", {"productId": product_id, "id": image_id}
    )
    assert answer.status == 200, answer.raw
    return answer.json["result"]["productImage"]["downloadUrl"]


async def test_a_link_works_until_its_ttl(
    expiring: PortalClient, catalog: Catalog, clock: FakeClock
) -> None:
    url = await expiring.download_url(*catalog.pairs()[0])
    clock.advance(59.9)
    assert (await expiring.download(url)).status == 200


async def test_an_expired_webhook_link_fails_the_link_check(
    expiring: PortalClient, catalog: Catalog, clock: FakeClock
) -> None:
    url = await expiring.download_url(*catalog.pairs()[0])
    clock.advance(60.0)
    answer = await expiring.download(url)
    assert (answer.status, answer.json) == (403, LINK_CHECK_FAILED)
    assert expiring.stats.expired_links == 1


async def test_an_expired_oauth_link_is_expired_token(
    expiring: PortalClient, catalog: Catalog, clock: FakeClock
) -> None:
    url = await _oauth_url(expiring, catalog)
    clock.advance(60.0)
    answer = await expiring.download(url)
    assert (answer.status, answer.json) == (401, EXPIRED)
    assert (expiring.stats.expired_links, expiring.stats.expired_tokens) == (1, 0)


async def test_a_fresh_call_issues_a_fresh_link(
    expiring: PortalClient, catalog: Catalog, clock: FakeClock
) -> None:
    await expiring.download_url(*catalog.pairs()[0])
    clock.advance(120.0)
    url = await expiring.download_url(*catalog.pairs()[0])
    assert (await expiring.download(url)).status == 200


async def test_the_issue_time_cannot_be_forged(
    expiring: PortalClient, catalog: Catalog, clock: FakeClock
) -> None:
    url = await expiring.download_url(*catalog.pairs()[0])
    head, token = url.split("token=")
    scope, query, signature = unquote(token).split("|")
    fields = base64.b64decode(query).decode()
    assert fields.endswith("&t=1000.000")
    fields = fields.replace("t=1000.000", "t=9999.000")
    forged_query = base64.b64encode(fields.encode()).decode()
    forged = head + "token=" + quote(f"{scope}|{forged_query}|{signature}", safe="")
    clock.advance(60.0)
    assert (await expiring.download(forged)).json == LINK_CHECK_FAILED


async def test_links_never_expire_without_a_ttl(client: PortalClient, catalog: Catalog) -> None:
    url = await client.download_url(*catalog.pairs()[0])
    assert (await client.download(url)).status == 200


async def test_an_access_token_expires_after_its_ttl(
    expiring: PortalClient, clock: FakeClock
) -> None:
    assert (await expiring.call_oauth("catalog.productImage.getFields")).status == 200
    clock.advance(300.0)
    answer = await expiring.call_oauth("catalog.productImage.getFields")
    assert (answer.status, answer.json) == (401, EXPIRED)
    assert expiring.stats.expired_tokens == 1


async def test_an_expired_token_also_stops_its_downloads(
    catalog: Catalog, clock: FakeClock
) -> None:
    settings = PortalSettings(rps=None, faults=FaultSettings(token_ttl=300.0))
    async with portal_client(catalog, settings, clock=clock) as client:
        url = await _oauth_url(client, catalog)
        clock.advance(300.0)
        answer = await client.download(url)
        stats = client.stats
    assert (answer.status, answer.json) == (401, EXPIRED)
    assert (stats.expired_tokens, stats.expired_links) == (1, 0)


async def test_webhooks_do_not_expire_with_the_token_ttl(
    expiring: PortalClient, clock: FakeClock
) -> None:
    clock.advance(10_000.0)
    assert (await expiring.call("catalog.productImage.getFields")).status == 200


async def test_an_unknown_token_is_still_no_auth_found(expiring: PortalClient) -> None:
    url = expiring.running.oauth_url + "catalog.productImage.getFields"
    answer = await expiring.send("POST", url, json={"auth": "f" * 64})
    assert (answer.status, answer.json["error"]) == (401, "NO_AUTH_FOUND")
