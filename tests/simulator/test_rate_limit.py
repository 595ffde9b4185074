"""The leaky bucket in front of the portal, over loopback with a frozen clock."""

from __future__ import annotations

import asyncio
import dataclasses

from exporter.simulator import Catalog, PortalSettings

from .helpers import FakeClock, portal_client


async def test_burst_beyond_capacity_gets_503_counted_in_stats(catalog: Catalog) -> None:
    settings = PortalSettings(rps=2.0, burst=5)
    async with portal_client(catalog, settings, clock=FakeClock()) as client:
        answers = await asyncio.gather(
            *(client.call("catalog.productImage.list", {"productId": 1}) for _ in range(10))
        )
        stats = client.stats
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [200] * 6 + [503] * 4
    refused = next(answer for answer in answers if answer.status == 503)
    assert refused.json == {
        "error": "QUERY_LIMIT_EXCEEDED",
        "error_description": "Too many requests",
    }
    assert stats.rate_limited == 4
    assert stats.errors["QUERY_LIMIT_EXCEEDED"] == 4


async def test_requests_pass_again_after_the_bucket_drains(catalog: Catalog) -> None:
    clock = FakeClock()
    async with portal_client(catalog, PortalSettings(rps=2.0, burst=0), clock=clock) as client:
        first = await client.call("catalog.productImage.getFields")
        refused = await client.call("catalog.productImage.getFields")
        clock.advance(0.5)
        again = await client.call("catalog.productImage.getFields")
    assert (first.status, refused.status, again.status) == (200, 503, 200)


async def test_a_batch_counts_once(catalog: Catalog) -> None:
    cmd = {f"k{index}": "catalog.productImage.getFields" for index in range(50)}
    async with portal_client(
        catalog, PortalSettings(rps=2.0, burst=0), clock=FakeClock()
    ) as client:
        answer = await client.call("batch", {"cmd": cmd})
        level = client.running.portal.bucket.level  # type: ignore[union-attr]
    assert answer.status == 200
    assert level == 1.0


async def test_downloads_draw_from_the_bucket_by_default(catalog: Catalog) -> None:
    async with portal_client(
        catalog, PortalSettings(rps=2.0, burst=0), clock=FakeClock()
    ) as client:
        url = await client.download_url(*catalog.pairs()[0])
        answer = await client.download(url)
    assert answer.status == 503


async def test_downloads_can_bypass_the_bucket(catalog: Catalog) -> None:
    settings = PortalSettings(rps=2.0, burst=0, count_downloads=False)
    async with portal_client(catalog, settings, clock=FakeClock()) as client:
        url = await client.download_url(*catalog.pairs()[0])
        answers = [await client.download(url) for _ in range(3)]
    assert [answer.status for answer in answers] == [200, 200, 200]


async def test_no_rate_limit_when_rps_is_none(catalog: Catalog) -> None:
    async with portal_client(catalog, PortalSettings(rps=None, burst=0)) as client:
        answers = [await client.call("catalog.productImage.getFields") for _ in range(5)]
    assert all(answer.status == 200 for answer in answers)


async def test_stats_route_is_neither_limited_nor_counted(catalog: Catalog) -> None:
    async with portal_client(
        catalog, PortalSettings(rps=2.0, burst=0), clock=FakeClock()
    ) as client:
        await client.call("catalog.productImage.getFields")
        answers = [
            await client.send("GET", client.running.base_url + "/_simulator/stats")
            for _ in range(3)
        ]
        stats = client.stats
    assert all(answer.status == 200 for answer in answers)
    assert stats.http_requests == 1


async def test_new_rate_settings_take_effect_on_the_next_request(catalog: Catalog) -> None:
    async with portal_client(
        catalog, PortalSettings(rps=2.0, burst=0), clock=FakeClock()
    ) as client:
        await client.call("catalog.productImage.getFields")
        portal = client.running.portal
        portal.settings = dataclasses.replace(portal.settings, rps=None)
        answer = await client.call("catalog.productImage.getFields")
    assert answer.status == 200
