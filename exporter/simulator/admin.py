"""Loopback-only routes that delete images and products while the portal serves.

For trying deletions by hand and from tests in other processes; in-process callers use
:meth:`Catalog.remove_image` and :meth:`Catalog.remove_product`. Each route takes a
JSON body ``{"ids": [<int>, ...]}`` and answers what it removed and which ids it did
not know.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .catalog import Catalog

IMAGES_DELETE_PATH = "/_simulator/images/delete"
PRODUCTS_DELETE_PATH = "/_simulator/products/delete"

Action = Callable[[Catalog, list[int]], dict[str, Any]]
"""Applies a deletion to the catalog and describes what it did."""


def delete_images(catalog: Catalog, ids: list[int]) -> dict[str, Any]:
    """Remove the known images: ``{"removed": [...], "missing": [...]}``."""
    removed, missing = _split(ids, catalog.has_image)
    for image_id in removed:
        catalog.remove_image(image_id)
    return {"removed": removed, "missing": missing}


def delete_products(catalog: Catalog, ids: list[int]) -> dict[str, Any]:
    """Remove the known products and their images: ``{"removed", "images", "missing"}``."""
    removed, missing = _split(ids, catalog.has_product)
    images = [image_id for product_id in removed for image_id in catalog.remove_product(product_id)]
    return {"removed": removed, "images": images, "missing": missing}


ACTIONS: dict[str, Action] = {
    IMAGES_DELETE_PATH: delete_images,
    PRODUCTS_DELETE_PATH: delete_products,
}
"""Route path → the deletion it runs."""


async def serve_admin(request: web.Request, catalog: Catalog, action: Action) -> web.Response:
    """Run ``action`` for a loopback caller with a good body; 403 for others, 400 for bad bodies."""
    if not _is_loopback(request.remote):
        return _refusal(403, "forbidden", "simulator admin routes answer loopback callers only")
    try:
        body = json.loads(await request.read())
    except ValueError:
        body = None
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(_is_id(item) for item in ids):
        return _refusal(400, "bad_request", 'the body must be {"ids": [integers]}')
    return web.json_response(action(catalog, list(dict.fromkeys(ids))))


def _split(ids: list[int], known: Callable[[int], bool]) -> tuple[list[int], list[int]]:
    return [i for i in ids if known(i)], [i for i in ids if not known(i)]


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_loopback(remote: str | None) -> bool:
    """Whether the peer address is a loopback one (an IPv4-mapped IPv6 form included)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _refusal(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=status)
