"""The values that travel between the parts: an image's name, its metadata, a download on
its way, a saved file, what was sent to the portal.

This module imports nothing of the project, so every part can name an image without
depending on the part that produced it (what lands on disk does not import the
portal client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, order=True)
class ImageRef:
    """One image of one product, as a manifest names it."""

    product_id: int
    image_id: int

    def __str__(self) -> str:
        return f"product {self.product_id} image {self.image_id}"


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """A product as the catalog describes it; only `id` when the catalog lists did not
    find it (None: not known)."""

    id: int
    iblock_id: int | None = None
    name: str | None = None
    xml_id: str | None = None  # the catalog's external code: what a migration matches by
    type: int | None = None  # 1 simple, 3 parent with variations, 4 variation, 7 service, …
    parent_id: int | None = None  # a variation's parent product

    def as_json(self) -> dict[str, Any]:
        """The sidecar's `product` block."""
        return {
            "id": self.id,
            "iblockId": self.iblock_id,
            "name": self.name,
            "xmlId": self.xml_id,
            "type": self.type,
            "parentId": self.parent_id,
        }


@dataclass(frozen=True, slots=True)
class ProductImage:
    """An image's metadata as the portal returned it; `download_url` is a credential."""

    ref: ImageRef
    name: str
    type: str
    fields: Mapping[str, Any]  # every field the portal returned, except downloadUrl
    method: str  # the REST method that returned it
    download_url: str = field(repr=False)
    product: ProductInfo | None = None  # the product asked for, as far as the catalog tells


@dataclass(frozen=True, slots=True)
class Incoming:
    """A download's body on its way from the portal: what it says it is, then its bytes."""

    content_type: str  # the Content-Type header as sent ("" when there is none)
    length: int | None  # the Content-Length header, when sent
    pieces: AsyncIterator[bytes]  # the body as it arrives, piece by piece


@dataclass(frozen=True, slots=True)
class SavedFile:
    """A file that is complete under its final name in the destination."""

    key: str  # where it is, relative to the destination, "/"-separated
    size: int
    sha256: str
    content_type: str  # the media type it was served with


@dataclass
class RequestCounts:
    """What the client sent; copied into the report."""

    rest: int = 0  # REST HTTP requests, batches included
    batch: int = 0  # of which batches
    download: int = 0  # download GETs
    rate_limited: int = 0  # 503 QUERY_LIMIT_EXCEEDED answers
    retried: int = 0  # requests sent again after a transient failure
