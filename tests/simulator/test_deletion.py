"""Images and products deleted while the portal serves: what get, list and old links answer."""

from __future__ import annotations

from exporter.simulator import Catalog

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
