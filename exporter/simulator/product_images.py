"""``catalog.productImage.*`` reads: an image's metadata and its signed download link."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import errors
from .catalog import SimImage
from .context import CallContext, MethodResult
from .params import required_int, string_list

IMAGE_FIELDS = ("createTime", "detailUrl", "downloadUrl", "id", "name", "productId", "type")


def image_object(image: SimImage, context: CallContext) -> dict[str, Any]:
    """An image as productImage methods return it (keys in the portal's order)."""
    return {
        "createTime": image.create_time,
        "detailUrl": image.detail_url,
        "downloadUrl": context.links.url_for(image.id, context.caller),
        "id": image.id,
        "name": image.name,
        "productId": image.product_id,
        "type": image.type,
    }


def answering_product(
    product_id: int, context: CallContext, check: Callable[[int], None] | None = None
) -> int:
    """Look ``productId`` up as the portal does; the id of the product whose images answer.

    The portal's order of checks: the product exists, then the caller's right (``check``,
    by default to read it) on the product asked for; the reference does not say whether
    a variation's rights count. With ``variations_answer_for_parent`` a parent answers for
    its newest variation.
    """
    if not context.finds_product(product_id):
        raise errors.product_not_found()
    (check or context.check_product_access)(product_id)
    if context.settings.variations_answer_for_parent:
        return context.catalog.newest_variation(product_id) or product_id
    return product_id


def product_image_get(params: dict[str, Any], context: CallContext) -> MethodResult:
    """``catalog.productImage.get``: one image of one product."""
    product_id = required_int(params, "productId")
    image_id = required_int(params, "id")
    answering = answering_product(product_id, context)
    catalog = context.catalog
    if not catalog.has_image(image_id) or catalog.image(image_id).product_id != answering:
        raise errors.image_not_found()
    return MethodResult({"productImage": image_object(catalog.image(image_id), context)})


def product_image_list(params: dict[str, Any], context: CallContext) -> MethodResult:
    """``catalog.productImage.list``: every image of a product in one page (no paging)."""
    product_id = required_int(params, "productId")
    if product_id <= 0:
        raise errors.empty_product_id()
    answering = answering_product(product_id, context)
    wanted = set(string_list(params.get("select"))) & set(IMAGE_FIELDS)
    images = []
    for image in context.catalog.images_of(answering):
        item = image_object(image, context)
        images.append({key: item[key] for key in item if not wanted or key in wanted})
    return MethodResult({"productImages": images}, total=len(images))


def _field(*, read_only: bool, required: bool, type_: str) -> dict[str, Any]:
    return {"isImmutable": False, "isReadOnly": read_only, "isRequired": required, "type": type_}


def product_image_get_fields(params: dict[str, Any], context: CallContext) -> MethodResult:
    """``catalog.productImage.getFields``: all fields read-only except productId and type."""
    context.check_catalog_access()
    fields = {
        "createTime": _field(read_only=True, required=False, type_="datetime"),
        "detailUrl": _field(read_only=True, required=False, type_="string"),
        "downloadUrl": _field(read_only=True, required=False, type_="string"),
        "id": _field(read_only=True, required=False, type_="integer"),
        "name": _field(read_only=True, required=False, type_="string"),
        "productId": _field(read_only=False, required=True, type_="integer"),
        "type": _field(read_only=False, required=False, type_="string"),
    }
    return MethodResult({"productImage": fields})
