"""The portal's counters: what they count, reset, JSON form, and the stats route."""

from __future__ import annotations

import json

from exporter.simulator import Catalog

from .helpers import PortalClient


async def test_counts_rest_and_download_requests_separately(
    client: PortalClient, catalog: Catalog
) -> None:
    url = await client.download_url(*catalog.pairs()[0])
    await client.download(url)
    await client.call("catalog.productImage.list", {"productId": 1})
    stats = client.stats
    assert (stats.http_requests, stats.rest_requests, stats.download_requests) == (3, 2, 1)
    assert dict(stats.by_method) == {"catalog.productImage.get": 1, "catalog.productImage.list": 1}


async def test_error_answers_are_counted_by_code(client: PortalClient) -> None:
    await client.call("catalog.productImage.get", {"productId": 99_999, "id": 1})
    await client.call("no.such.method")
    assert client.stats.errors == {0: 1, "ERROR_METHOD_NOT_FOUND": 1}


async def test_reset_zeroes_everything_in_place(client: PortalClient, catalog: Catalog) -> None:
    stats = client.stats
    await client.download(await client.download_url(*catalog.pairs()[0]))
    stats.reset()
    assert stats is client.running.stats
    assert all(not value for value in stats.as_dict().values())


async def test_as_dict_is_json_serialisable(client: PortalClient, catalog: Catalog) -> None:
    await client.download(await client.download_url(*catalog.pairs()[0]))
    encoded = json.dumps(client.stats.as_dict())
    assert json.loads(encoded)["download_by_image"] == {str(catalog.pairs()[0][1]): 1}


async def test_stats_route_returns_the_counters_as_json(client: PortalClient) -> None:
    await client.call("catalog.productImage.getFields")
    answer = await client.send("GET", client.running.base_url + "/_simulator/stats")
    assert answer.json["rest_requests"] == 1
    assert answer.json["by_method"] == {"catalog.productImage.getFields": 1}


async def test_limit_fault_and_token_counters_are_in_the_json(client: PortalClient) -> None:
    answer = await client.send("GET", client.running.base_url + "/_simulator/stats")
    for name in (
        "operation_limited",
        "competitor_requests",
        "competitor_refused",
        "expired_links",
        "expired_tokens",
        "token_refreshes",
        "refused_refreshes",
    ):
        assert answer.json[name] == 0, name
    assert answer.json["faults"] == {}
