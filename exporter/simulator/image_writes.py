"""``catalog.productImage.add`` and ``.delete``: uploading images back, and removing them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import datetime
from typing import Any

from . import errors
from .context import CallContext, MethodResult
from .params import required_int
from .product_images import answering_product, image_object

MORE_PHOTO = "MORE_PHOTO"
REPLACING_TYPES = ("DETAIL_PICTURE", "PREVIEW_PICTURE")
"""Types of which a product has a single picture, replaced by every add of that type."""
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "jpe", "png", "gif", "bmp", "webp"})
"""What ``CFile::GetImageExtensions()`` is taken to answer; the reference names the check,
not the list (INFERENCE)."""
MAX_NAME_LENGTH = 255
"""Longer file names are refused ("too long file name"); the limit itself is not in the
reference."""
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def product_image_add(params: dict[str, Any], context: CallContext) -> MethodResult:
    """``catalog.productImage.add``: store ``fileContent`` ``[fileName, base64]`` on a product.

    ``fields`` (required: ``productId``; optional ``type``, default MORE_PHOTO) and
    ``fileContent`` (required) are top-level; either missing is 100, as is a ``fields``
    without ``productId`` (the reference names 100 for the first two only). Then, in
    this order (the reference gives the codes, not the order): the product (0 "Product
    was not found"), the right to modify it (200040300020), the file (0 "Could not save
    image."), the MORE_PHOTO property (0, see ``products_without_more_photo``).

    "DETAIL_PICTURE / PREVIEW_PICTURE replace the product's single picture of that type;
    any other value (typos included) falls back to MORE_PHOTO, which is appended". The
    answer is the new image as ``get`` shows it, under the next free image id (for a
    MORE_PHOTO, "the last MORE_PHOTO image after the save" is that one). There is
    no idempotency: the same upload again is stored again (and counted as a duplicate).
    Every MORE_PHOTO property here is multiple; the reference's single-valued one, which
    an add replaces, is not simulated.
    """
    fields = _fields(params)
    file_content = _array_param(params, "fileContent")
    product_id = required_int(fields, "productId")
    answering = answering_product(product_id, context, context.check_product_write)
    image_type = image_type_of(fields.get("type"))
    name, content = _uploaded_file(file_content)
    if image_type == MORE_PHOTO and answering in context.settings.products_without_more_photo:
        raise errors.no_more_photo_property()
    catalog = context.catalog
    sha256 = hashlib.sha256(content).hexdigest()
    held = catalog.images_of(answering)
    duplicate = any(
        image.size == len(content) and catalog.image_sha256(image.id) == sha256 for image in held
    )
    if image_type in REPLACING_TYPES:
        for image in held:
            if image.type == image_type:
                catalog.remove_image(image.id)
                context.stats.replaced_images += 1
    image_id = catalog.add_image(
        answering, name=name, type=image_type, create_time=_now(), content=content
    )
    context.stats.record_add(answering, sha256, duplicate=duplicate)
    return MethodResult({"productImage": image_object(catalog.image(image_id), context)})


def product_image_delete(params: dict[str, Any], context: CallContext) -> MethodResult:
    """``catalog.productImage.delete``: remove one image of a product; ``{"result": true}``.

    ``productId`` and ``id`` are required (100); then the product (0 "Product was not
    found"), the right to modify it (200040300020), the image on it (0, with ``get``'s
    text "Image does not exist": the reference gives no text for delete).
    """
    product_id = required_int(params, "productId")
    image_id = required_int(params, "id")
    answering = answering_product(product_id, context, context.check_product_write)
    catalog = context.catalog
    if not catalog.has_image(image_id) or catalog.image(image_id).product_id != answering:
        raise errors.image_not_found()
    catalog.remove_image(image_id)
    context.stats.deletes += 1
    return MethodResult(True)


def image_type_of(raw: Any) -> str:
    """The type an add stores: DETAIL_PICTURE or PREVIEW_PICTURE as given, else MORE_PHOTO."""
    return raw if isinstance(raw, str) and raw in REPLACING_TYPES else MORE_PHOTO


def decode_base64(text: str) -> bytes | None:
    """The bytes of a base64 text, None when it is not strictly valid.

    Whitespace is skipped (so a raw ``+`` that arrived as a space damages the bytes
    rather than the decoding, unless the shortened text no longer has a valid length);
    any other character outside the alphabet, a length that is not a multiple of 4 or
    misplaced padding is undecodable. The reference only says "empty or undecodable
    content saves nothing"; how strictly the portal decodes is not in it.
    """
    compact = "".join(text.split())
    if len(compact) % 4 or not _BASE64.fullmatch(compact):
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error:
        return None


def _fields(params: dict[str, Any]) -> dict[str, Any]:
    value = _array_param(params, "fields")
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    return value


def _array_param(params: dict[str, Any], name: str) -> dict[str, Any] | list[Any]:
    """An array action parameter: 100 when it is absent or not an array."""
    value = params.get(name)
    if value is None:
        raise errors.missing_parameter(name)
    if not isinstance(value, (dict, list)):
        raise errors.invalid_parameter(name, value, "array")
    return value


def _uploaded_file(file_content: dict[str, Any] | list[Any]) -> tuple[str, bytes]:
    """``[fileName, base64]`` checked and decoded; 0 "Could not save image." otherwise.

    "Only image extensions pass" (any letter case here), "empty or undecodable content
    saves nothing"; a name that is empty, too long or has a path separator is refused.
    """
    if isinstance(file_content, list):
        name, encoded = [*file_content, None, None][:2]
    else:
        name, encoded = file_content.get("0"), file_content.get("1")
    if not isinstance(name, str) or not isinstance(encoded, str) or not _acceptable_name(name):
        raise errors.image_not_saved()
    content = decode_base64(encoded)
    if not content:
        raise errors.image_not_saved()
    return name, content


def _acceptable_name(name: str) -> bool:
    if not 0 < len(name) <= MAX_NAME_LENGTH or any(char in name for char in "/\\\0"):
        return False
    _, dot, extension = name.rpartition(".")
    return bool(dot) and extension.lower() in IMAGE_EXTENSIONS


def _now() -> str:
    """The upload's ``createTime``: now, ISO 8601 with the offset."""
    return datetime.now().astimezone().isoformat(timespec="seconds")
