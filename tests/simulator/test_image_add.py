"""catalog.productImage.add over HTTP: types, replace vs append, new ids, bytes, errors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from exporter.simulator import Catalog, PortalSettings

from .helpers import EXAMPLES, Answer, PortalClient, portal_client

PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3
OTHER = b"GIF89a" + bytes(range(255, -1, -1)) * 2
NOT_SAVED = {"error": 0, "error_description": "Could not save image."}


def _image(answer: Answer) -> Any:
    assert answer.status == 200, answer.raw
    return answer.json["result"]["productImage"]


def _ids_and_types(images: list[Any]) -> list[tuple[int, str]]:
    return [(image["id"], image["type"]) for image in images]


async def test_answer_has_the_shape_of_get(client: PortalClient) -> None:
    answer = await client.add_image(1, PHOTO)
    example = json.loads((Path(EXAMPLES) / "catalog.productImage.get.200.json").read_text())
    assert answer.json.keys() == example.keys()
    assert _image(answer).keys() == example["result"]["productImage"].keys()


async def test_more_photo_is_appended_under_the_next_free_id(
    client: PortalClient, catalog: Catalog
) -> None:
    before = await client.listed(2)
    highest = max(image_id for _, image_id in catalog.pairs())
    image = _image(await client.add_image(2, PHOTO, name="back.png", type="MORE_PHOTO"))
    assert image["id"] == highest + 1 == 1021
    assert (image["productId"], image["name"], image["type"]) == (2, "back.png", "MORE_PHOTO")
    assert image["detailUrl"].startswith("/upload/iblock/")
    assert image["detailUrl"].endswith("/back.png")
    listed = await client.listed(2)
    assert _ids_and_types(listed) == [*_ids_and_types(before), (1021, "MORE_PHOTO")]


async def test_without_a_type_the_image_is_a_more_photo(client: PortalClient) -> None:
    image = _image(await client.add_image(4, PHOTO))
    assert image["type"] == "MORE_PHOTO"
    assert len(await client.listed(4)) == 3


@pytest.mark.parametrize("given", ["detail_picture", "BANNER", "", "MORE_PHOTOS"])
async def test_any_other_type_falls_back_to_more_photo(client: PortalClient, given: str) -> None:
    image = _image(await client.add_image(4, PHOTO, type=given))
    assert image["type"] == "MORE_PHOTO"
    assert [row["type"] for row in await client.listed(4)].count("DETAIL_PICTURE") == 1


@pytest.mark.parametrize(("kind", "old_id"), [("DETAIL_PICTURE", 1001), ("PREVIEW_PICTURE", 1002)])
async def test_detail_and_preview_pictures_replace_the_old_one(
    client: PortalClient, kind: str, old_id: int
) -> None:
    old_url = await client.download_url(1, old_id)
    new = _image(await client.add_image(1, PHOTO, name="new.jpg", type=kind))
    listed = await client.listed(1)
    gone = await client.call("catalog.productImage.get", {"productId": 1, "id": old_id})
    download = await client.download(old_url)
    assert new["id"] == 1021 and new["type"] == kind
    assert [row["id"] for row in listed if row["type"] == kind] == [1021]
    assert old_id not in [row["id"] for row in listed]
    assert len(listed) == 6
    assert (gone.status, gone.json) == (
        400,
        {"error": 0, "error_description": "Image does not exist"},
    )
    assert download.status == 404


async def test_a_first_preview_picture_is_simply_added(client: PortalClient) -> None:
    new = _image(await client.add_image(2, PHOTO, type="PREVIEW_PICTURE"))
    listed = await client.listed(2)
    assert len(listed) == 4
    assert [row["id"] for row in listed if row["type"] == "PREVIEW_PICTURE"] == [new["id"]]


async def test_the_stored_bytes_are_exactly_the_uploaded_ones(client: PortalClient) -> None:
    image = _image(await client.add_image(3, PHOTO, name="Фото 3.png"))
    got = _image(await client.call("catalog.productImage.get", {"productId": 3, "id": image["id"]}))
    download = await client.download(got["downloadUrl"])
    assert got["name"] == "Фото 3.png"
    assert download.status == 200
    assert download.raw == PHOTO
    assert download.headers["Content-Type"] == "image/png"
    assert download.headers["Content-Length"] == str(len(PHOTO))


async def test_the_answers_download_url_works_too(client: PortalClient) -> None:
    image = _image(await client.add_image(3, OTHER, name="anim.GIF"))
    download = await client.download(image["downloadUrl"])
    assert download.raw == OTHER
    assert download.headers["Content-Type"] == "image/gif"


async def test_every_add_gets_a_new_id_and_ids_are_not_reused(client: PortalClient) -> None:
    first = _image(await client.add_image(5, PHOTO))
    deleted = await client.call("catalog.productImage.delete", {"productId": 5, "id": first["id"]})
    second = _image(await client.add_image(5, PHOTO))
    third = _image(await client.add_image(6, OTHER, type="DETAIL_PICTURE"))
    assert deleted.json["result"] is True
    assert [first["id"], second["id"], third["id"]] == [1021, 1022, 1023]


async def test_create_time_is_iso_8601_with_an_offset(client: PortalClient) -> None:
    image = _image(await client.add_image(1, PHOTO))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", image["createTime"])


async def test_a_form_encoded_single_call_works(client: PortalClient) -> None:
    encoded = base64.b64encode(PHOTO).decode()
    body = (
        f"fields[productId]=2&fields[type]=DETAIL_PICTURE"
        f"&fileContent[0]=front.png&fileContent[1]={quote(encoded, safe='')}"
    )
    answer = await client.send(
        "POST",
        client.running.webhook_url + "catalog.productImage.add",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    image = _image(answer)
    assert image["type"] == "DETAIL_PICTURE"
    assert (await client.download(image["downloadUrl"])).raw == PHOTO


async def test_an_oauth_call_answers_an_oauth_download_url(client: PortalClient) -> None:
    encoded = base64.b64encode(PHOTO).decode()
    answer = await client.call_oauth(
        "catalog.productImage.add",
        {"fields": {"productId": 1}, "fileContent": ["a.png", encoded]},
    )
    assert "/rest/download.json?auth=" in _image(answer)["downloadUrl"]


# Errors


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"fileContent": ["a.png", "QUJD"]}, "fields"),
        ({"fields": {"productId": 1}}, "fileContent"),
        ({"fields": {"type": "MORE_PHOTO"}, "fileContent": ["a.png", "QUJD"]}, "productId"),
    ],
)
async def test_missing_parameters_are_error_100(
    client: PortalClient, params: dict[str, Any], name: str
) -> None:
    answer = await client.call("catalog.productImage.add", params)
    assert answer.status == 400
    assert answer.json == {
        "error": 100,
        "error_description": f"Could not find value for parameter {{{name}}}",
    }


async def test_fields_that_are_not_an_array_are_error_100(client: PortalClient) -> None:
    answer = await client.call(
        "catalog.productImage.add", {"fields": "1", "fileContent": ["a.png", "QUJD"]}
    )
    assert (answer.status, answer.json["error"]) == (400, 100)


async def test_an_unknown_product_is_error_0(client: PortalClient) -> None:
    answer = await client.add_image(99_999, PHOTO)
    assert (answer.status, answer.json) == (
        400,
        {"error": 0, "error_description": "Product was not found"},
    )


async def test_a_write_denied_product_is_200040300020_and_keeps_its_images(
    catalog: Catalog,
) -> None:
    settings = PortalSettings(rps=None, write_denied_products=frozenset({2}))
    async with portal_client(catalog, settings) as client:
        denied = await client.add_image(2, PHOTO, type="DETAIL_PICTURE")
        listed = await client.listed(2)
        allowed = await client.add_image(3, PHOTO)
    assert (denied.status, denied.json) == (
        400,
        {"error": 200040300020, "error_description": "Access Denied"},
    )
    assert [row["id"] for row in listed] == [1007, 1008, 1009]
    assert allowed.status == 200


async def test_deny_all_refuses_adds_as_it_refuses_reads(catalog: Catalog) -> None:
    async with portal_client(catalog, PortalSettings(rps=None, deny_all=True)) as client:
        answer = await client.add_image(1, PHOTO)
    assert answer.json == {"error": 200040300010, "error_description": "Access Denied"}


@pytest.mark.parametrize(
    "file_content",
    [
        ["notes.txt", base64.b64encode(PHOTO).decode()],
        ["photo", base64.b64encode(PHOTO).decode()],
        ["photo.png.exe", base64.b64encode(PHOTO).decode()],
        ["", base64.b64encode(PHOTO).decode()],
        ["dir/photo.png", base64.b64encode(PHOTO).decode()],
        ["x" * 252 + ".png", base64.b64encode(PHOTO).decode()],
        ["photo.png", ""],
        ["photo.png", "   "],
        ["photo.png", "not base64!"],
        ["photo.png", "QUJDR"],
        ["photo.png", "QUJD$A=="],
        ["photo.png", "QQ==QUJD"],
        ["photo.png"],
        [],
        ["photo.png", 12345],
        {"name": "photo.png", "data": "QUJD"},
    ],
)
async def test_a_file_the_portal_cannot_save_is_error_0(
    client: PortalClient, file_content: Any
) -> None:
    answer = await client.call(
        "catalog.productImage.add", {"fields": {"productId": 1}, "fileContent": file_content}
    )
    assert (answer.status, answer.json) == (400, NOT_SAVED)
    assert len(await client.listed(1)) == 6


@pytest.mark.parametrize("name", ["photo.JPG", "scan.jpeg", "a.jpe", "b.webp", "c.bmp", "d.Png"])
async def test_image_extensions_pass_in_any_case(client: PortalClient, name: str) -> None:
    assert _image(await client.add_image(1, PHOTO, name=name))["name"] == name


async def test_line_wrapped_base64_is_decoded(client: PortalClient) -> None:
    encoded = base64.encodebytes(PHOTO).decode()
    assert "\n" in encoded
    answer = await client.call(
        "catalog.productImage.add",
        {"fields": {"productId": 1}, "fileContent": ["wrapped.png", encoded]},
    )
    assert (await client.download(_image(answer)["downloadUrl"])).raw == PHOTO


async def test_a_product_without_more_photo_property_refuses_more_photos_only(
    catalog: Catalog,
) -> None:
    settings = PortalSettings(rps=None, products_without_more_photo=frozenset({4}))
    async with portal_client(catalog, settings) as client:
        more = await client.add_image(4, PHOTO, type="MORE_PHOTO")
        fallback = await client.add_image(4, PHOTO, type="GALLERY")
        detail = await client.add_image(4, PHOTO, type="DETAIL_PICTURE")
        other = await client.add_image(5, PHOTO)
    refusal = {
        "error": 0,
        "error_description": "Image product property does not exists. CreateMORE_PHOTO property",
    }
    assert (more.status, more.json) == (400, refusal)
    assert fallback.json == refusal
    assert _image(detail)["type"] == "DETAIL_PICTURE"
    assert other.status == 200


async def test_with_the_quirk_an_add_to_a_parent_lands_on_its_newest_variation() -> None:
    catalog = Catalog()
    catalog.add_product(10)
    catalog.add_variation(10, 11)
    catalog.add_variation(10, 12)
    settings = PortalSettings(rps=None, variations_answer_for_parent=True)
    async with portal_client(catalog, settings) as client:
        image = _image(await client.add_image(10, PHOTO))
        variation = await client.listed(12)
    assert image["productId"] == 12
    assert [row["id"] for row in variation] == [image["id"]]
    assert catalog.images_of(10) == []
