"""Images and products deleted while the portal serves: what get, list and old links answer."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from exporter.simulator import Catalog, PortalSettings, SimulatedPortal, serve

from .helpers import PortalClient

IMAGE_GONE = {"error": 0, "error_description": "Image does not exist"}
PRODUCT_GONE = {"error": 0, "error_description": "Product was not found"}


async def test_a_deleted_image_is_gone_from_get_list_and_its_link(
    client: PortalClient, catalog: Catalog
) -> None:
    product_id = 1
    deleted, *kept = (image.id for image in catalog.images_of(product_id))
    url = await client.download_url(product_id, deleted)
    catalog.remove_image(deleted)
    got = await client.call("catalog.productImage.get", {"productId": product_id, "id": deleted})
    listed = await client.call("catalog.productImage.list", {"productId": product_id})
    download = await client.download(url)
    assert (got.status, got.json) == (400, IMAGE_GONE)
    assert [image["id"] for image in listed.json["result"]["productImages"]] == kept
    assert listed.json["total"] == len(kept)
    assert download.status == 404
    assert download.json == {"error": "ERROR_NOT_FOUND", "error_description": "File not found"}


async def test_a_deleted_product_is_not_found_and_its_links_are_dead(
    client: PortalClient, catalog: Catalog
) -> None:
    image_id = catalog.images_of(2)[0].id
    url = await client.download_url(2, image_id)
    catalog.remove_product(2)
    got = await client.call("catalog.productImage.get", {"productId": 2, "id": image_id})
    listed = await client.call("catalog.productImage.list", {"productId": 2})
    products = await client.call(
        "catalog.product.list", {"select": ["id", "iblockId"], "filter": {"iblockId": 24}}
    )
    assert (got.status, got.json) == (400, PRODUCT_GONE)
    assert (listed.status, listed.json) == (400, PRODUCT_GONE)
    assert [row["id"] for row in products.json["result"]["products"]] == [1, 3, 4, 5, 6]
    assert (await client.download(url)).status == 404


async def test_a_deleted_image_fails_its_batch_command_only(
    client: PortalClient, catalog: Catalog
) -> None:
    first, second = (image.id for image in catalog.images_of(3)[:2])
    catalog.remove_image(first)
    cmd = {
        key: f"catalog.productImage.get?productId=3&id={image_id}"
        for key, image_id in (("gone", first), ("kept", second))
    }
    answer = await client.call("batch", {"cmd": cmd})
    assert set(answer.json["result"]["result"]) == {"kept"}
    assert answer.json["result"]["result_error"] == {"gone": IMAGE_GONE}


async def _admin(client: PortalClient, what: str, body: Any) -> Any:
    url = f"{client.running.base_url}/_simulator/{what}/delete"
    return await client.send("POST", url, json=body)


async def test_the_images_route_deletes_images_and_names_the_unknown_ids(
    client: PortalClient, catalog: Catalog
) -> None:
    deleted = catalog.images_of(1)[0].id
    url = await client.download_url(1, deleted)
    answer = await _admin(client, "images", {"ids": [deleted, 987_654, deleted]})
    got = await client.call("catalog.productImage.get", {"productId": 1, "id": deleted})
    assert (answer.status, answer.json) == (200, {"removed": [deleted], "missing": [987_654]})
    assert got.json == IMAGE_GONE
    assert (await client.download(url)).status == 404


async def test_the_products_route_deletes_products_with_their_images(
    client: PortalClient, catalog: Catalog
) -> None:
    images = [image.id for image in catalog.images_of(4)]
    url = await client.download_url(4, images[0])
    answer = await _admin(client, "products", {"ids": [4, 99_999]})
    listed = await client.call("catalog.productImage.list", {"productId": 4})
    got = await client.call("catalog.productImage.get", {"productId": 4, "id": images[0]})
    assert answer.status == 200
    assert answer.json == {"removed": [4], "images": images, "missing": [99_999]}
    assert listed.json == got.json == PRODUCT_GONE
    assert (await client.download(url)).status == 404


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b"{}", b'{"ids": 5}', b'{"ids": ["5"]}', b'{"ids": [true]}']
)
async def test_the_routes_refuse_a_body_without_a_list_of_integer_ids(
    client: PortalClient, body: bytes
) -> None:
    for what in ("images", "products"):
        url = f"{client.running.base_url}/_simulator/{what}/delete"
        answer = await client.send("POST", url, data=body)
        assert answer.status == 400
        assert answer.json["error"] == "bad_request"


async def test_the_routes_answer_loopback_callers_only(catalog: Catalog) -> None:
    @web.middleware
    async def from_afar(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await handler(request.clone(remote="203.0.113.7"))

    portal = SimulatedPortal(catalog, PortalSettings(rps=None))
    portal.app.middlewares.append(from_afar)
    async with serve(portal) as running, aiohttp.ClientSession() as session:
        client = PortalClient(session, running)
        images = await _admin(client, "images", {"ids": [catalog.images_of(1)[0].id]})
        products = await _admin(client, "products", {"ids": [1]})
        listed = await client.call("catalog.productImage.list", {"productId": 1})
    for answer in (images, products):
        assert answer.status == 403
        assert answer.json["error"] == "forbidden"
    assert listed.json["total"] == len(catalog.images_of(1)) > 0


async def test_the_routes_are_not_counted_as_portal_requests(client: PortalClient) -> None:
    await _admin(client, "images", {"ids": []})
    await _admin(client, "products", {"ids": []})
    stats = await client.send("GET", client.running.base_url + "/_simulator/stats")
    assert stats.json["http_requests"] == 0
