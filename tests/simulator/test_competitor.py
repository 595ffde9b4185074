"""The competing client: its share of the bucket, driven by a fake clock and sleep."""

from __future__ import annotations

import asyncio

import pytest

from exporter.simulator import Catalog, PortalSettings, SimulatedPortal, serve_portal
from exporter.simulator.competitor import Competitor

from .helpers import FakeClock, FakeSleep, portal_client


async def _run_until_parked(portal: SimulatedPortal, sleep: FakeSleep) -> None:
    task = asyncio.create_task(Competitor(portal).run())
    await asyncio.wait_for(sleep.parked.wait(), timeout=5)
    task.cancel()
    await asyncio.wait([task])


async def test_sends_its_share_of_the_rate_evenly(catalog: Catalog) -> None:
    clock = FakeClock(1000.0)
    sleep = FakeSleep(clock, horizon=1000.95)
    settings = PortalSettings(rps=20.0, burst=50, competitor_share=0.5)
    portal = SimulatedPortal(catalog, settings, clock=clock, sleep=sleep)
    await _run_until_parked(portal, sleep)
    assert portal.stats.competitor_requests == 10
    assert sleep.slept[:-1] == pytest.approx([0.1] * 9)
    assert portal.stats.competitor_refused == 0


async def test_its_requests_fill_the_bucket_but_not_the_http_counters(catalog: Catalog) -> None:
    clock = FakeClock(1000.0)
    sleep = FakeSleep(clock, horizon=1000.0)  # parks right after the first request
    settings = PortalSettings(rps=2.0, burst=5, competitor_share=1.0)
    portal = SimulatedPortal(catalog, settings, clock=clock, sleep=sleep)
    await _run_until_parked(portal, sleep)
    assert portal.bucket is not None and portal.bucket.level == 1.0
    assert (portal.stats.http_requests, portal.stats.rest_requests) == (0, 0)


async def test_refused_requests_are_counted_and_add_nothing(catalog: Catalog) -> None:
    clock = FakeClock(1000.0)
    sleep = FakeSleep(clock, horizon=1000.6)
    settings = PortalSettings(rps=2.0, burst=0, competitor_share=1.0)
    portal = SimulatedPortal(catalog, settings, clock=clock, sleep=sleep)
    assert portal.bucket is not None
    portal.bucket.try_acquire()  # someone else got there first: level 1 > threshold 0
    await _run_until_parked(portal, sleep)
    # t=1000.0 refused; t=1000.5 the bucket has drained to 0 → accepted
    assert (portal.stats.competitor_requests, portal.stats.competitor_refused) == (2, 1)
    assert portal.bucket.level == 1.0


async def test_it_ends_when_switched_off(catalog: Catalog) -> None:
    clock = FakeClock(1000.0)
    portal = SimulatedPortal(
        catalog, PortalSettings(rps=2.0, competitor_share=0.5), clock=clock, sleep=FakeSleep(clock)
    )
    task = asyncio.create_task(Competitor(portal).run())
    await asyncio.sleep(0)
    portal.settings = PortalSettings(rps=None, competitor_share=0.5)
    await asyncio.wait_for(task, timeout=5)
    assert portal.stats.competitor_requests >= 1


async def test_serving_a_portal_runs_it_and_exit_stops_it(catalog: Catalog) -> None:
    clock = FakeClock(1000.0)
    sleep = FakeSleep(clock, horizon=1000.95)
    settings = PortalSettings(rps=20.0, competitor_share=0.5)
    async with portal_client(catalog, settings, clock=clock, sleep=sleep) as client:
        await asyncio.wait_for(sleep.parked.wait(), timeout=5)
        assert (await client.call("catalog.productImage.getFields")).status == 200
        stats = client.stats
    assert stats.competitor_requests == 10
    assert stats.rest_requests == 1
    assert stats.as_dict()["competitor_requests"] == 10


async def test_no_competitor_without_a_share(catalog: Catalog) -> None:
    clock = FakeClock(1000.0)
    sleep = FakeSleep(clock)
    async with serve_portal(catalog, PortalSettings(rps=2.0), clock=clock, sleep=sleep) as running:
        await asyncio.sleep(0.01)
        assert running.stats.competitor_requests == 0
    assert sleep.slept == []


async def test_no_competitor_without_a_rate_limit(catalog: Catalog) -> None:
    clock = FakeClock(1000.0)
    sleep = FakeSleep(clock)
    settings = PortalSettings(rps=None, competitor_share=1.0)
    async with serve_portal(catalog, settings, clock=clock, sleep=sleep) as running:
        await asyncio.sleep(0.01)
        assert running.stats.competitor_requests == 0


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_share_must_be_between_zero_and_one(share: float) -> None:
    with pytest.raises(ValueError, match="competitor_share"):
        PortalSettings(competitor_share=share)
