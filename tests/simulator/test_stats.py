"""The portal's counters: what they count, reset, JSON form, and the stats route."""

from __future__ import annotations

import hashlib
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


async def test_adds_are_counted_per_product_the_image_went_to(client: PortalClient) -> None:
    await client.add_image(1, b"\x89PNG one")
    await client.add_image(1, b"\x89PNG two", type="DETAIL_PICTURE")
    await client.add_image(2, b"\x89PNG one")
    await client.add_image(99_999, b"\x89PNG lost")
    stats = client.stats
    assert stats.adds_by_product == {1: 2, 2: 1}
    assert stats.replaced_images == 1
    assert (stats.duplicate_adds, stats.duplicates) == (0, [])


async def test_the_same_bytes_again_on_a_product_are_a_duplicate(client: PortalClient) -> None:
    data = b"\x89PNG again"
    await client.add_image(3, data)
    await client.add_image(3, data, name="other name.png")
    stats = client.stats
    assert stats.duplicate_adds == 1
    assert stats.duplicates == [(3, hashlib.sha256(data).hexdigest())]
    assert stats.adds_by_product == {3: 2}


async def test_re_uploading_a_portal_image_to_its_product_is_a_duplicate(
    client: PortalClient, catalog: Catalog
) -> None:
    original = await client.download(await client.download_url(4, 1013))
    await client.add_image(4, original.raw, name="detail.png", type="DETAIL_PICTURE")
    await client.add_image(5, original.raw)
    stats = client.stats
    assert stats.duplicates == [(4, hashlib.sha256(original.raw).hexdigest())]
    assert stats.replaced_images == 1


async def test_deletes_are_counted(client: PortalClient) -> None:
    await client.call("catalog.productImage.delete", {"productId": 1, "id": 1003})
    await client.call("catalog.productImage.delete", {"productId": 1, "id": 1003})
    assert client.stats.deletes == 1


async def test_the_stats_route_carries_the_add_counters(client: PortalClient) -> None:
    data = b"\x89PNG shown"
    await client.add_image(6, data)
    await client.add_image(6, data)
    await client.call("catalog.productImage.delete", {"productId": 6, "id": 1019})
    answer = await client.send("GET", client.running.base_url + "/_simulator/stats")
    body = answer.json
    assert body["adds_by_product"] == {"6": 2}
    assert body["duplicate_adds"] == 1
    assert body["duplicates"] == [[6, hashlib.sha256(data).hexdigest()]]
    assert (body["deletes"], body["replaced_images"]) == (1, 0)
    assert (body["lost_answers"], body["oversized_requests"]) == (0, 0)


async def test_reset_empties_the_duplicates_list_in_place(client: PortalClient) -> None:
    await client.add_image(1, b"\x89PNG x")
    await client.add_image(1, b"\x89PNG x")
    duplicates = client.stats.duplicates
    client.stats.reset()
    assert duplicates == [] and client.stats.duplicates is duplicates
