"""Injected faults over loopback: what each looks like, where they apply, reproducibility."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest

from exporter.simulator import Catalog, FaultSettings, PortalSettings
from exporter.simulator.injector import REST_FAULTS, FaultInjector

from .helpers import BROWSER_HEADERS, FakeClock, FakeSleep, PortalClient, portal_client

LIST = "catalog.productImage.list"


def _settings(**faults: Any) -> PortalSettings:
    return PortalSettings(rps=None, faults=FaultSettings(**faults))


@dataclass
class Partial:
    """A download read as far as it goes."""

    status: int
    content_length: int | None
    received: int
    cut: bool


async def _fetch(client: PortalClient, url: str) -> Partial:
    headers = {**BROWSER_HEADERS, "Referer": client.running.base_url + "/"}
    async with client.session.get(url, headers=headers) as response:
        received = 0
        try:
            async for piece in response.content.iter_any():
                received += len(piece)
        except aiohttp.ClientPayloadError:
            return Partial(response.status, response.content_length, received, cut=True)
        return Partial(response.status, response.content_length, received, cut=False)


# REST


async def test_rest_500_is_internal_server_error(catalog: Catalog) -> None:
    async with portal_client(catalog, _settings(error_500=1.0)) as client:
        answer = await client.call(LIST, {"productId": 1})
        stats = client.stats
    assert answer.status == 500
    assert answer.json == {
        "error": "INTERNAL_SERVER_ERROR",
        "error_description": "Internal server error",
    }
    assert stats.faults == {"500": 1}
    assert stats.errors["INTERNAL_SERVER_ERROR"] == 1


async def test_rest_drop_closes_the_connection_without_an_answer(catalog: Catalog) -> None:
    async with portal_client(catalog, _settings(drop=1.0)) as client:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.call(LIST, {"productId": 1})
        assert client.stats.faults == {"drop": 1}


async def test_rest_html_is_a_200_html_page(catalog: Catalog) -> None:
    async with portal_client(catalog, _settings(html=1.0)) as client:
        answer = await client.call_oauth(LIST, {"productId": 1})
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.raw.lstrip().lower().startswith(b"<!doctype html>")


async def test_slow_answers_wait_then_answer_normally(catalog: Catalog) -> None:
    clock = FakeClock()
    sleep = FakeSleep(clock)
    settings = _settings(slow=1.0, slow_seconds=3.0)
    async with portal_client(catalog, settings, clock=clock, sleep=sleep) as client:
        answer = await client.call(LIST, {"productId": 1})
        stats = client.stats
    assert answer.status == 200
    assert sleep.slept == [3.0]
    assert stats.faults == {"slow": 1}


async def test_faults_spare_the_stats_route(catalog: Catalog) -> None:
    async with portal_client(catalog, _settings(error_500=1.0, slow=1.0)) as client:
        answer = await client.send("GET", client.running.base_url + "/_simulator/stats")
    assert answer.status == 200
    assert answer.json["faults"] == {}


# Downloads


async def _download_under(catalog: Catalog, **faults: Any) -> tuple[Partial, PortalClient]:
    """Fetch a good link after switching the faults on (so the metadata call is spared)."""
    async with portal_client(catalog, PortalSettings(rps=None)) as client:
        url = await client.download_url(*catalog.pairs()[0])
        portal = client.running.portal
        portal.settings = replace(portal.settings, faults=FaultSettings(**faults))
        return await _fetch(client, url), client


async def test_download_500(catalog: Catalog) -> None:
    result, client = await _download_under(catalog, error_500=1.0)
    assert result.status == 500
    assert client.stats.faults == {"500": 1}
    assert client.stats.downloads == 0


async def test_download_drop_sends_full_length_then_part_of_the_body(catalog: Catalog) -> None:
    result, client = await _download_under(catalog, drop=1.0)
    size = catalog.image(catalog.pairs()[0][1]).size
    assert (result.status, result.content_length, result.cut) == (200, size, True)
    assert result.received < size
    assert client.stats.downloads == 0


async def test_download_truncate_sends_fewer_bytes_than_announced(catalog: Catalog) -> None:
    result, client = await _download_under(catalog, truncate=1.0)
    size = catalog.image(catalog.pairs()[0][1]).size
    assert (result.status, result.content_length, result.cut) == (200, size, True)
    assert 0 < result.received < size
    assert client.stats.faults == {"truncate": 1}


async def test_download_html_page(catalog: Catalog) -> None:
    result, _ = await _download_under(catalog, html=1.0)
    assert (result.status, result.cut) == (200, False)
    assert result.received > 0


async def test_faults_hit_only_downloads_that_would_succeed(catalog: Catalog) -> None:
    async with portal_client(catalog, _settings(error_500=1.0)) as client:
        answer = await client.download(client.running.webhook_url + "download/?token=forged")
    assert answer.status == 403


# Reproducibility


async def _pattern(catalog: Catalog, seed: int) -> list[int]:
    async with portal_client(catalog, _settings(error_500=0.5, seed=seed)) as client:
        answers = [await client.call(LIST, {"productId": n % 6 + 1}) for n in range(24)]
    return [answer.status for answer in answers]


async def test_the_same_seed_gives_the_same_fault_pattern(catalog: Catalog) -> None:
    first = await _pattern(catalog, seed=7)
    assert first == await _pattern(catalog, seed=7)
    assert set(first) == {200, 500}
    assert first != await _pattern(catalog, seed=8)


def test_decisions_do_not_depend_on_interleaving() -> None:
    faults = FaultSettings(error_500=0.3, drop=0.3, html=0.3, slow=0.5, seed=11)
    keys = ["a", "b", "c"] * 10
    apart = FaultInjector(faults, Counter())
    together = FaultInjector(faults, Counter())
    by_key: dict[str, list[Any]] = {key: [] for key in "abc"}
    for key in keys:
        by_key[key].append(apart.decide(key, REST_FAULTS))
    for key in "cab":
        assert [together.decide(key, REST_FAULTS) for _ in range(10)] == by_key[key]


async def test_concurrent_requests_meet_the_same_faults_as_sequential_ones(
    catalog: Catalog,
) -> None:
    settings = _settings(error_500=0.5, seed=3)
    async with portal_client(catalog, settings) as client:
        sequential = [(await client.call(LIST, {"productId": pid})).status for pid in range(1, 7)]
    async with portal_client(catalog, settings) as client:
        answers = await asyncio.gather(
            *(client.call(LIST, {"productId": pid}) for pid in reversed(range(1, 7)))
        )
    assert [answer.status for answer in reversed(answers)] == sequential


def test_a_retry_of_the_same_request_gets_a_fresh_decision() -> None:
    injector = FaultInjector(FaultSettings(error_500=0.5, seed=1), Counter())
    fates = {injector.decide("same", REST_FAULTS).kind for _ in range(40)}
    assert fates == {None, "500"}
