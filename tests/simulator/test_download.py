"""Signed download links: exact bytes, headers, and every refusal."""

from __future__ import annotations

import hashlib
from urllib.parse import quote, unquote

import pytest

from exporter.simulator import Catalog, PortalSettings

from .helpers import BROWSER_HEADERS, PortalClient, portal_client


async def test_download_serves_exactly_the_catalog_bytes(
    client: PortalClient, catalog: Catalog
) -> None:
    product_id, image_id = catalog.pairs()[2]
    answer = await client.download(await client.download_url(product_id, image_id))
    assert answer.status == 200
    assert answer.raw == catalog.image_bytes(image_id)
    assert hashlib.sha256(answer.raw).hexdigest() == catalog.image_sha256(image_id)


async def test_download_sends_type_length_and_disposition(
    client: PortalClient, catalog: Catalog
) -> None:
    product_id, image_id = catalog.pairs()[0]
    answer = await client.download(await client.download_url(product_id, image_id))
    image = catalog.image(image_id)
    assert answer.headers["Content-Type"] == "image/png"
    assert answer.headers["Content-Length"] == str(image.size)
    disposition = answer.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert f"filename*=UTF-8''{quote(image.name, safe='')}" in disposition


@pytest.mark.parametrize("name", ['Фото "3"/x.png', "ctl\r\n\x00.png", "../../" + "x" * 300])
async def test_disposition_carries_any_name_exactly_and_safely(catalog: Catalog, name: str) -> None:
    image_id = catalog.add_image(1, name=name, size=400)
    async with portal_client(catalog, PortalSettings(rps=None)) as client:
        answer = await client.download(await client.download_url(1, image_id))
    disposition = answer.headers["Content-Disposition"]
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == name
    assert disposition.isascii() and disposition.isprintable()


async def test_webhook_link_has_the_documented_form(client: PortalClient, catalog: Catalog) -> None:
    url = await client.download_url(*catalog.pairs()[0])
    assert url.startswith(client.running.webhook_url + "download/?token=catalog%7C")


async def test_oauth_link_has_the_documented_form_and_works(
    client: PortalClient, catalog: Catalog
) -> None:
    product_id, image_id = catalog.pairs()[0]
    answer = await client.call_oauth(
        "catalog.productImage.get", {"productId": product_id, "id": image_id}
    )
    url = answer.json["result"]["productImage"]["downloadUrl"]
    token = client.running.portal.settings.access_token
    assert url.startswith(
        f"{client.running.base_url}/rest/download.json?auth={token}&token=catalog%7C"
    )
    assert (await client.download(url)).raw == catalog.image_bytes(image_id)


async def test_each_call_issues_a_fresh_link(client: PortalClient, catalog: Catalog) -> None:
    pair = catalog.pairs()[0]
    assert await client.download_url(*pair) != await client.download_url(*pair)


async def test_tampered_token_is_403_link_check_failed(
    client: PortalClient, catalog: Catalog
) -> None:
    url = await client.download_url(*catalog.pairs()[0])
    answer = await client.download(url[:-8] + "AAAA%3D")
    assert answer.status == 403
    assert answer.json == {
        "error": "ACCESS_DENIED",
        "error_description": "Access denied! Link check failed",
    }


async def test_token_for_another_image_does_not_verify(
    client: PortalClient, catalog: Catalog
) -> None:
    first, second = catalog.pairs()[0], catalog.pairs()[1]
    url_first = await client.download_url(*first)
    url_second = await client.download_url(*second)
    query_of_second = unquote(url_second.split("token=")[1]).split("|")[1]
    scope, _, signature = unquote(url_first.split("token=")[1]).split("|")
    forged = (
        url_first.split("token=")[0]
        + "token="
        + quote(f"{scope}|{query_of_second}|{signature}", safe="")
    )
    assert (await client.download(forged)).status == 403


async def test_webhook_link_with_oauth_auth_fails_the_link_check(
    client: PortalClient, catalog: Catalog
) -> None:
    url = await client.download_url(*catalog.pairs()[0])
    token = client.running.portal.settings.access_token
    moved = (
        f"{client.running.base_url}/rest/download.json?auth={token}&token={url.split('token=')[1]}"
    )
    assert (await client.download(moved)).status == 403


async def test_link_with_a_wrong_webhook_code_is_401(
    client: PortalClient, catalog: Catalog
) -> None:
    url = await client.download_url(*catalog.pairs()[0])
    code = client.running.portal.settings.webhook_code
    answer = await client.download(url.replace(code, "0" * len(code)))
    assert answer.status == 401
    assert answer.json["error"] == "NO_AUTH_FOUND"


async def test_link_to_a_removed_image_is_404_json(client: PortalClient, catalog: Catalog) -> None:
    product_id, image_id = catalog.pairs()[0]
    url = await client.download_url(product_id, image_id)
    catalog.remove_image(image_id)
    answer = await client.download(url)
    assert answer.status == 404
    assert answer.json["error_description"] == "File not found"


async def test_download_without_referer_gets_the_nginx_404_page(
    client: PortalClient, catalog: Catalog
) -> None:
    url = await client.download_url(*catalog.pairs()[0])
    answer = await client.download(url, headers=BROWSER_HEADERS)
    assert answer.status == 404
    assert answer.headers["Content-Type"].startswith("text/html")
    assert b"nginx" in answer.raw
    assert client.stats.rejected_downloads == 1


async def test_download_with_a_library_user_agent_gets_404(
    client: PortalClient, catalog: Catalog
) -> None:
    url = await client.download_url(*catalog.pairs()[0])
    referer = {"Referer": client.running.base_url + "/"}
    for agent in ("Python/3.11 aiohttp/3.9.5", "python-requests/2.31.0", ""):
        answer = await client.download(url, headers={**referer, "User-Agent": agent})
        assert answer.status == 404, agent


async def test_header_check_can_be_switched_off(catalog: Catalog) -> None:
    settings = PortalSettings(rps=None, require_download_headers=False)
    async with portal_client(catalog, settings) as client:
        answer = await client.download(await client.download_url(*catalog.pairs()[0]), headers={})
    assert answer.status == 200


async def test_large_image_streams_whole(catalog: Catalog) -> None:
    image_id = catalog.add_image(1, name="big.png", size=3 * 1024 * 1024 + 17)
    async with portal_client(catalog, PortalSettings(rps=None)) as client:
        answer = await client.download(await client.download_url(1, image_id))
        stats = client.stats
    assert len(answer.raw) == 3 * 1024 * 1024 + 17
    assert hashlib.sha256(answer.raw).hexdigest() == catalog.image_sha256(image_id)
    assert (stats.downloads, stats.download_bytes) == (1, len(answer.raw))
    assert stats.download_by_image[image_id] == 1
