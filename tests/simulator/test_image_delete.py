"""catalog.productImage.delete over HTTP: what it removes, and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.simulator import Catalog, PortalSettings

from .helpers import PortalClient, portal_client

DELETE = "catalog.productImage.delete"
IMAGE_GONE = {"error": 0, "error_description": "Image does not exist"}


async def test_delete_answers_true_and_the_image_is_gone(client: PortalClient) -> None:
    url = await client.download_url(1, 1003)
    answer = await client.call(DELETE, {"productId": 1, "id": 1003})
    got = await client.call("catalog.productImage.get", {"productId": 1, "id": 1003})
    listed = await client.listed(1)
    download = await client.download(url)
    assert (answer.status, answer.json["result"]) == (200, True)
    assert "time" in answer.json
    assert (got.status, got.json) == (400, IMAGE_GONE)
    assert [row["id"] for row in listed] == [1001, 1002, 1004, 1005, 1006]
    assert download.status == 404
    assert client.stats.deletes == 1


async def test_an_uploaded_image_can_be_deleted(client: PortalClient) -> None:
    added = await client.add_image(2, b"\x89PNG uploaded")
    image_id = added.json["result"]["productImage"]["id"]
    answer = await client.call(DELETE, {"productId": 2, "id": image_id})
    assert answer.json["result"] is True
    assert image_id not in [row["id"] for row in await client.listed(2)]


async def test_deleting_twice_is_error_0_the_second_time(client: PortalClient) -> None:
    await client.call(DELETE, {"productId": 1, "id": 1004})
    again = await client.call(DELETE, {"productId": 1, "id": 1004})
    assert (again.status, again.json) == (400, IMAGE_GONE)
    assert client.stats.deletes == 1


@pytest.mark.parametrize(
    ("params", "name"), [({"id": 1001}, "productId"), ({"productId": 1}, "id")]
)
async def test_missing_parameters_are_error_100(
    client: PortalClient, params: dict[str, Any], name: str
) -> None:
    answer = await client.call(DELETE, params)
    assert (answer.status, answer.json) == (
        400,
        {"error": 100, "error_description": f"Could not find value for parameter {{{name}}}"},
    )


async def test_an_unknown_product_is_error_0(client: PortalClient) -> None:
    answer = await client.call(DELETE, {"productId": 99_999, "id": 1001})
    assert answer.json == {"error": 0, "error_description": "Product was not found"}


async def test_an_image_of_another_product_is_not_deleted(client: PortalClient) -> None:
    answer = await client.call(DELETE, {"productId": 2, "id": 1001})
    assert (answer.status, answer.json) == (400, IMAGE_GONE)
    assert 1001 in [row["id"] for row in await client.listed(1)]


async def test_a_write_denied_product_is_200040300020(catalog: Catalog) -> None:
    settings = PortalSettings(rps=None, write_denied_products=frozenset({1}))
    async with portal_client(catalog, settings) as client:
        answer = await client.call(DELETE, {"productId": 1, "id": 1001})
        listed = await client.listed(1)
    assert (answer.status, answer.json) == (
        400,
        {"error": 200040300020, "error_description": "Access Denied"},
    )
    assert 1001 in [row["id"] for row in listed]


async def test_delete_works_inside_a_batch(client: PortalClient) -> None:
    cmd = {"d1": f"{DELETE}?productId=1&id=1005", "d2": f"{DELETE}?productId=1&id=999"}
    answer = await client.call("batch", {"cmd": cmd})
    result = answer.json["result"]
    assert result["result"] == {"d1": True}
    assert result["result_error"] == {"d2": IMAGE_GONE}


async def test_with_the_quirk_a_parent_deletes_only_its_newest_variations_images() -> None:
    catalog = Catalog()
    catalog.add_image(10, name="parent.png", image_id=2001)
    catalog.add_variation(10, 11)
    catalog.add_variation(10, 12)
    catalog.add_image(11, name="older.png", image_id=2011)
    catalog.add_image(12, name="newer.png", image_id=2012)
    settings = PortalSettings(rps=None, variations_answer_for_parent=True)
    async with portal_client(catalog, settings) as client:
        own = await client.call(DELETE, {"productId": 10, "id": 2001})
        older = await client.call(DELETE, {"productId": 10, "id": 2011})
        newer = await client.call(DELETE, {"productId": 10, "id": 2012})
    assert (own.json, older.json) == (IMAGE_GONE, IMAGE_GONE)
    assert newer.json["result"] is True
    assert [image.id for image in catalog.images_of(10)] == [2001]
    assert [image.id for image in catalog.images_of(11)] == [2011]
    assert catalog.images_of(12) == []
