"""The REST methods the portal knows, found by name case-insensitively as the portal does."""

from __future__ import annotations

from dataclasses import dataclass

from .context import Method
from .image_writes import product_image_add, product_image_delete
from .product_images import product_image_get, product_image_get_fields, product_image_list
from .products import catalog_list, offer_list, product_list

BATCH = "batch"
DOWNLOAD = "download"
UPLOAD = "upload"
IMAGE_ADD = "catalog.productImage.add"


@dataclass(frozen=True)
class MethodSpec:
    """A method's canonical name and its implementation."""

    name: str
    call: Method


_METHODS = {
    spec.name.lower(): spec
    for spec in (
        MethodSpec("catalog.productImage.get", product_image_get),
        MethodSpec("catalog.productImage.list", product_image_list),
        MethodSpec("catalog.productImage.getFields", product_image_get_fields),
        MethodSpec(IMAGE_ADD, product_image_add),
        MethodSpec("catalog.productImage.delete", product_image_delete),
        MethodSpec("catalog.catalog.list", catalog_list),
        MethodSpec("catalog.product.list", product_list),
        MethodSpec("catalog.product.offer.list", offer_list),
    )
}


def find_method(name: str) -> MethodSpec | None:
    """The method called ``name`` (any letter case), or None when the portal has none."""
    return _METHODS.get(name.lower())


def canonical_name(name: str) -> str:
    """The method's canonical spelling when known, else ``name`` as given (for stats)."""
    spec = find_method(name)
    if spec is not None:
        return spec.name
    lowered = name.lower()
    return lowered if lowered in (BATCH, DOWNLOAD, UPLOAD) else name


def is_product_image_method(name: str) -> bool:
    """Whether ``name`` is one of the catalog.productImage.* methods."""
    return name.lower().startswith("catalog.productimage.")


def is_image_add(name: str) -> bool:
    """Whether ``name`` is catalog.productImage.add (any letter case)."""
    return name.lower() == IMAGE_ADD.lower()
