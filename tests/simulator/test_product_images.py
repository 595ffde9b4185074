"""catalog.productImage.get / list / getFields and catalog.catalog.list over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from exporter.simulator import Catalog, PortalSettings

from .helpers import EXAMPLES, PortalClient, portal_client


def _example(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((Path(EXAMPLES) / name).read_text())  # type: ignore[no-any-return]


async def test_get_answers_the_same_keys_as_the_documented_example(
    client: PortalClient, catalog: Catalog
) -> None:
    product_id, image_id = catalog.pairs()[0]
    answer = await client.call(
        "catalog.productImage.get", {"productId": product_id, "id": image_id}
    )
    example = _example("catalog.productImage.get.200.json")
    assert answer.status == 200
    assert answer.json.keys() == example.keys()
    assert answer.json["result"].keys() == example["result"].keys()
    image = answer.json["result"]["productImage"]
    assert image.keys() == example["result"]["productImage"].keys()
    assert answer.json["time"].keys() == example["time"].keys()


async def test_get_returns_the_catalog_values(client: PortalClient, catalog: Catalog) -> None:
    product_id, image_id = catalog.pairs()[3]
    answer = await client.call(
        "catalog.productImage.get", {"productId": product_id, "id": image_id}
    )
    image = answer.json["result"]["productImage"]
    expected = catalog.image(image_id)
    assert (image["id"], image["productId"], image["name"], image["type"]) == (
        expected.id,
        expected.product_id,
        expected.name,
        expected.type,
    )
    assert image["createTime"] == expected.create_time
    assert image["detailUrl"].startswith("/upload/iblock/")


async def test_get_unknown_product_is_error_0_product_not_found(client: PortalClient) -> None:
    answer = await client.call("catalog.productImage.get", {"productId": 99_999, "id": 1001})
    assert answer.status == 400
    assert answer.json == {"error": 0, "error_description": "Product was not found"}


async def test_get_image_of_another_product_is_error_0_image_does_not_exist(
    client: PortalClient, catalog: Catalog
) -> None:
    image_id = catalog.images_of(2)[0].id
    answer = await client.call("catalog.productImage.get", {"productId": 1, "id": image_id})
    assert answer.status == 400
    assert answer.json == {"error": 0, "error_description": "Image does not exist"}


async def test_get_missing_product_id_is_error_100(client: PortalClient) -> None:
    answer = await client.call("catalog.productImage.get", {"id": 1001})
    assert answer.status == 400
    assert answer.json == {
        "error": 100,
        "error_description": "Could not find value for parameter {productId}",
    }


async def test_get_missing_id_is_error_100(client: PortalClient) -> None:
    answer = await client.call("catalog.productImage.get", {"productId": 1})
    assert answer.status == 400
    assert answer.json["error"] == 100
    assert answer.json["error_description"] == "Could not find value for parameter {id}"


async def test_get_on_a_denied_product_matches_the_documented_error(catalog: Catalog) -> None:
    image = catalog.images_of(2)[0]
    async with portal_client(
        catalog, PortalSettings(rps=None, denied_products=frozenset({2}))
    ) as c:
        answer = await c.call("catalog.productImage.get", {"productId": 2, "id": image.id})
        allowed = await c.call(
            "catalog.productImage.get", {"productId": 1, "id": catalog.images_of(1)[0].id}
        )
    assert answer.status == 400
    assert answer.json == _example("catalog.productImage.get.400.json")
    assert allowed.status == 200


async def test_deny_all_refuses_existing_products_but_not_found_comes_first(
    catalog: Catalog,
) -> None:
    image = catalog.images_of(1)[0]
    async with portal_client(catalog, PortalSettings(rps=None, deny_all=True)) as c:
        denied = await c.call("catalog.productImage.get", {"productId": 1, "id": image.id})
        unknown = await c.call("catalog.productImage.get", {"productId": 99_999, "id": image.id})
    assert denied.json == {"error": 200040300010, "error_description": "Access Denied"}
    assert unknown.json["error_description"] == "Product was not found"


async def test_rights_are_checked_before_the_image(catalog: Catalog) -> None:
    async with portal_client(
        catalog, PortalSettings(rps=None, denied_products=frozenset({1}))
    ) as c:
        answer = await c.call("catalog.productImage.get", {"productId": 1, "id": 424_242})
    assert answer.json["error"] == 200040300010


async def test_list_returns_every_image_of_the_product_with_total(
    client: PortalClient, catalog: Catalog
) -> None:
    answer = await client.call("catalog.productImage.list", {"productId": 4})
    example = _example("catalog.productImage.list.200.json")
    assert answer.status == 200
    assert answer.json.keys() == example.keys()
    images = answer.json["result"]["productImages"]
    assert [image["id"] for image in images] == [image.id for image in catalog.images_of(4)]
    assert answer.json["total"] == len(images)
    assert "next" not in answer.json
    assert images[0].keys() == example["result"]["productImages"][0].keys()


async def test_list_select_limits_the_fields(client: PortalClient) -> None:
    answer = await client.call(
        "catalog.productImage.list", {"productId": 1, "select": ["id", "name"]}
    )
    assert all(image.keys() == {"id", "name"} for image in answer.json["result"]["productImages"])


async def test_list_of_a_product_without_images_is_empty(catalog: Catalog) -> None:
    catalog.add_product(500)
    async with portal_client(catalog, PortalSettings(rps=None)) as c:
        answer = await c.call("catalog.productImage.list", {"productId": 500})
    assert answer.json["result"] == {"productImages": []}
    assert answer.json["total"] == 0


async def test_list_on_a_denied_product_is_access_denied(catalog: Catalog) -> None:
    async with portal_client(
        catalog, PortalSettings(rps=None, denied_products=frozenset({3}))
    ) as c:
        answer = await c.call("catalog.productImage.list", {"productId": 3})
    assert answer.status == 400
    assert answer.json["error"] == 200040300010


async def test_list_unknown_product_is_product_not_found(client: PortalClient) -> None:
    answer = await client.call("catalog.productImage.list", {"productId": 12_345})
    assert answer.json == {"error": 0, "error_description": "Product was not found"}


async def test_get_fields_describes_every_image_field(client: PortalClient) -> None:
    answer = await client.call("catalog.productImage.getFields")
    fields = answer.json["result"]["productImage"]
    assert set(fields) == {
        "createTime",
        "detailUrl",
        "downloadUrl",
        "id",
        "name",
        "productId",
        "type",
    }
    assert all(
        field.keys() == {"isImmutable", "isReadOnly", "isRequired", "type"}
        for field in fields.values()
    )
    assert fields["productId"]["isRequired"] is True
    assert [name for name, field in fields.items() if not field["isReadOnly"]] == [
        "productId",
        "type",
    ]


async def test_catalog_list_has_a_product_and_an_offers_catalog(client: PortalClient) -> None:
    answer = await client.call("catalog.catalog.list")
    catalogs = answer.json["result"]["catalogs"]
    product = next(item for item in catalogs if item["productIblockId"] is None)
    offers = next(item for item in catalogs if item["productIblockId"] is not None)
    assert offers["productIblockId"] == product["iblockId"]
