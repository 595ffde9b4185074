"""The simulated portal's trade catalog: products, their images, and the images' bytes."""

from __future__ import annotations

import bisect
import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from .png import (
    MAX_PNG_SIZE,
    MIN_PNG_SIZE,
    PNG_CONTENT_TYPE,
    STREAM_BLOCK_SIZE,
    iter_png,
    png_bytes,
)

PRODUCT_IBLOCK_ID = 24
OFFERS_IBLOCK_ID = 26
IMAGE_TYPES = ("DETAIL_PICTURE", "PREVIEW_PICTURE", "MORE_PHOTO")

# Product ``type`` values of the catalog's data types.
SIMPLE = 1
PARENT = 3
VARIATION = 4
VARIATION_WITHOUT_PRODUCT = 5
PARENT_WITHOUT_VARIATIONS = 6

_NAMES = (
    "front.png",
    "back.png",
    "side view.png",
    "Фото 3.png",
    "вид сбоку.png",
    "detail.png",
    "IMG_0042.png",
    "packaging.png",
    "photo (1).png",
    "Größentabelle.png",
    "商品图片.png",
    "café crème.png",
    "image.png",
    "main.png",
    "zoom 2x.png",
    "label.PNG",
)
_EPOCH = datetime(2023, 1, 1, tzinfo=timezone(timedelta(hours=3)))
_TWO_YEARS = 2 * 365 * 86_400
_PRODUCT_WORDS = (
    ("Ceramic", "Linen", "Oak", "Steel", "Wool", "Glass", "Чугунный", "Blauer", "竹製"),
    ("mug", "shirt", "table", "kettle", "scarf", "vase", "чайник", "Stuhl", "ボウル"),
)
_CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
}


@dataclass(frozen=True)
class SimImage:
    """One product image as the portal stores it; ``size`` is the exact byte count served."""

    id: int
    product_id: int
    name: str
    type: str
    create_time: str
    size: int
    content_type: str = PNG_CONTENT_TYPE

    @property
    def detail_url(self) -> str:
        """Portal-relative ``/upload/…`` path, stable for an id and name."""
        digest = hashlib.sha1(f"{self.id}:{self.name}".encode()).hexdigest()
        return f"/upload/iblock/{digest[:3]}/{digest[3:35]}/{quote(self.name, safe='')}"


@dataclass(frozen=True)
class ProductInfo:
    """What a product list answers about a product besides its id, iblock and type."""

    name: str
    xml_id: str


@dataclass(frozen=True)
class ParentLink:
    """A variation's ``parentId`` property: ``value`` is the parent product's id.

    ``value_id`` is the id of that property value; the reference names the field only,
    so here it is a counter per catalog.
    """

    value: int
    value_id: int


@dataclass(frozen=True)
class CatalogInfo:
    """One trade catalog (an iblock); offers catalogs point at their product iblock."""

    iblock_id: int
    name: str
    product_iblock_id: int | None = None
    sku_property_id: int | None = None


class Catalog:
    """Products (each in one iblock) and their images; deterministic for a seed.

    A product of a product catalog becomes a parent with :meth:`add_variation`; its
    variations live in the offers catalog that points at that product catalog.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._iblocks: dict[int, CatalogInfo] = {
            PRODUCT_IBLOCK_ID: CatalogInfo(PRODUCT_IBLOCK_ID, "Product catalog"),
            OFFERS_IBLOCK_ID: CatalogInfo(
                OFFERS_IBLOCK_ID, "Product catalog (variants)", PRODUCT_IBLOCK_ID, 112
            ),
        }
        self._iblock_of: dict[int, int] = {}
        self._info: dict[int, ProductInfo] = {}
        self._images_of: dict[int, list[int]] = {}
        self._images: dict[int, SimImage] = {}
        self._sorted_ids: dict[int | None, list[int]] = {}
        self._sha256: dict[int, str] = {}
        self._content: dict[int, bytes] = {}
        self._next_image_id = 1001
        self._parent_of: dict[int, ParentLink] = {}
        self._next_value_id = 1
        self._variations: dict[int, set[int]] = {}

    @classmethod
    def generate(
        cls,
        products: int = 100,
        images: int = 500,
        seed: int = 1,
        image_size: tuple[int, int] = (2_000, 20_000),
        first_id: int = 1,
    ) -> Catalog:
        """A catalog of ``products`` products (ids from ``first_id``) sharing ``images`` images.

        Every product gets at least one image when ``images >= products``. Image ids
        start above the product ids (1001 for up to 999 products); names repeat now
        and then within a product, as real uploads do. Each product's name and xmlId
        come from the seed and its position alone, so catalogs generated with the same
        seed and other ``first_id`` hold the same products under other ids (a source
        portal and a migration target, e.g. ``images=0`` for an empty target).
        """
        if products < 0 or images < 0:
            raise ValueError("products and images must not be negative")
        if images and not products:
            raise ValueError("images need at least one product")
        if first_id <= 0:
            raise ValueError(f"first_id must be positive, got {first_id}")
        low, high = image_size
        if low > high:
            raise ValueError(f"image_size range is empty: {image_size}")
        rng = random.Random(seed)
        catalog = cls(seed)
        counts = [0] * products
        if images >= products:
            counts = [1] * products
            for _ in range(images - products):
                counts[rng.randrange(products)] += 1
        else:
            for index in rng.sample(range(products), images):
                counts[index] = 1
        last_id = max(first_id + products - 1, 1)
        next_id = max(1001, 10 ** len(str(last_id)) + 1)
        for index, count in enumerate(counts):
            product_id = first_id + index
            catalog.add_product(
                product_id,
                name=generated_name(seed, index),
                xml_id=generated_xml_id(seed, index),
            )
            names: list[str] = []
            for position in range(count):
                reuse = bool(names) and rng.random() < 0.2
                name = rng.choice(names) if reuse else rng.choice(_NAMES)
                names.append(name)
                created = _EPOCH + timedelta(seconds=rng.randrange(_TWO_YEARS))
                catalog.add_image(
                    product_id,
                    name=name,
                    size=rng.randint(low, high),
                    type=_generated_type(position, rng),
                    image_id=next_id,
                    create_time=created.isoformat(),
                )
                next_id += 1
        return catalog

    def twin(self, id_offset: int, seed: int | None = None) -> Catalog:
        """The same catalogs and products (names, xmlIds, parents and variations) under ids
        shifted by ``id_offset``, with no images: a restore target that matches this
        catalog by xmlId only."""
        twin = Catalog(self.seed if seed is None else seed)
        twin._iblocks = dict(self._iblocks)
        for product_id in self.product_ids():
            info = self._info[product_id]
            twin.add_product(
                product_id + id_offset,
                self._iblock_of[product_id],
                name=info.name,
                xml_id=info.xml_id,
            )
        for variation_id in sorted(self._parent_of):
            parent_id = self._parent_of[variation_id].value
            twin.add_variation(parent_id + id_offset, variation_id + id_offset)
        return twin

    # Building

    def add_product(
        self,
        product_id: int,
        iblock_id: int = PRODUCT_IBLOCK_ID,
        *,
        name: str = "",
        xml_id: str = "",
    ) -> None:
        """Add a product with no images; an unknown iblock becomes a product catalog.

        An empty name becomes "Product <id>" and an empty xmlId the id as a string (the
        reference does not say what a product created without one gets). xmlIds need
        not be unique.
        """
        if product_id <= 0:
            raise ValueError(f"product id must be positive, got {product_id}")
        if product_id in self._iblock_of:
            raise ValueError(f"product {product_id} already exists")
        if iblock_id not in self._iblocks:
            self._iblocks[iblock_id] = CatalogInfo(iblock_id, f"Catalog {iblock_id}")
        self._iblock_of[product_id] = iblock_id
        self._info[product_id] = ProductInfo(
            name or f"Product {product_id}", xml_id or str(product_id)
        )
        self._images_of[product_id] = []
        self._sorted_ids.clear()

    def add_variation(
        self,
        parent_id: int,
        variation_id: int,
        *,
        name: str = "",
        xml_id: str = "",
    ) -> None:
        """Make ``parent_id`` a parent (type 3) of ``variation_id`` (type 4).

        The parent must exist in a product catalog that has an offers catalog; the
        variation is created there when missing (with ``name`` and ``xml_id`` as in
        :meth:`add_product`) and may have no other parent.
        """
        if parent_id not in self._iblock_of:
            raise ValueError(f"product {parent_id} does not exist")
        parent_iblock = self._iblock_of[parent_id]
        offers = next(
            (c.iblock_id for c in self.catalogs() if c.product_iblock_id == parent_iblock), None
        )
        if offers is None:
            raise ValueError(f"catalog {parent_iblock} of product {parent_id} has no offers")
        if variation_id not in self._iblock_of:
            self.add_product(variation_id, offers, name=name, xml_id=xml_id)
        if self._iblock_of[variation_id] != offers:
            raise ValueError(f"product {variation_id} is not in the offers catalog {offers}")
        if variation_id in self._parent_of:
            raise ValueError(f"product {variation_id} is already a variation")
        self._parent_of[variation_id] = ParentLink(parent_id, self._next_value_id)
        self._next_value_id += 1
        self._variations.setdefault(parent_id, set()).add(variation_id)

    def add_image(
        self,
        product_id: int,
        *,
        name: str,
        size: int = 1000,
        type: str = "MORE_PHOTO",
        image_id: int | None = None,
        create_time: str = "2024-10-17T10:48:05+02:00",
        content: bytes | None = None,
    ) -> int:
        """Attach an image and return its id; the product is created if it is missing.

        Without ``content`` the image is a generated PNG of ``size`` bytes (raised to the
        smallest valid PNG when below it); with it, exactly those bytes (an upload),
        typed by the name's extension. Without ``image_id`` it gets the next free id:
        ids are never reused, like the portal's file ids.
        """
        if product_id not in self._iblock_of:
            self.add_product(product_id)
        if image_id is None:
            image_id = self._next_image_id
        if image_id <= 0:
            raise ValueError(f"image id must be positive, got {image_id}")
        if image_id in self._images:
            raise ValueError(f"image {image_id} already exists")
        if content is None:
            size = max(size, MIN_PNG_SIZE)
            if size > MAX_PNG_SIZE:
                raise ValueError(f"image size {size} exceeds {MAX_PNG_SIZE}")
            image = SimImage(image_id, product_id, name, type, create_time, size)
        else:
            extension = name.rpartition(".")[2].lower()
            content_type = _CONTENT_TYPES.get(extension, "application/octet-stream")
            image = SimImage(
                image_id, product_id, name, type, create_time, len(content), content_type
            )
            self._content[image_id] = content
            self._sha256[image_id] = hashlib.sha256(content).hexdigest()
        self._images[image_id] = image
        self._next_image_id = max(self._next_image_id, image_id + 1)
        self._images_of[product_id].append(image_id)
        return image_id

    def remove_image(self, image_id: int) -> None:
        """Delete an image (links issued for it then answer 404); KeyError when unknown."""
        image = self._images.pop(image_id)
        self._images_of[image.product_id].remove(image_id)
        self._sha256.pop(image_id, None)
        self._content.pop(image_id, None)

    def remove_product(self, product_id: int) -> list[int]:
        """Delete a product with its images and return their ids; KeyError when unknown.

        A deleted variation leaves its parent (type 6 once none is left); a deleted
        parent's variations stay, as variations without a product (type 5): whether the
        portal deletes them with it is not in the reference.
        """
        image_ids = list(self._images_of[product_id])
        for image_id in image_ids:
            self.remove_image(image_id)
        del self._images_of[product_id]
        del self._iblock_of[product_id]
        del self._info[product_id]
        link = self._parent_of.pop(product_id, None)
        if link is not None:
            self._variations[link.value].discard(product_id)
        for variation_id in self._variations.pop(product_id, set()):
            del self._parent_of[variation_id]
        self._sorted_ids.clear()
        return image_ids

    # Reading

    def has_product(self, product_id: int) -> bool:
        """Whether the product exists."""
        return product_id in self._iblock_of

    def iblock_of(self, product_id: int) -> int:
        """The iblock (catalog) the product lives in."""
        return self._iblock_of[product_id]

    def product_catalog_of(self, product_id: int) -> int:
        """The product catalog the product belongs to; for a variation, its offers' product
        catalog."""
        iblock_id = self._iblock_of[product_id]
        return self._iblocks[iblock_id].product_iblock_id or iblock_id

    def product_type(self, product_id: int) -> int:
        """The product's ``type``: 3/6 for a parent with/without variations left, 4 for a
        variation, 5 for an offers-catalog product without a parent, else 1 (simple)."""
        if product_id in self._variations:
            return PARENT if self._variations[product_id] else PARENT_WITHOUT_VARIATIONS
        if product_id in self._parent_of:
            return VARIATION
        if self._iblocks[self._iblock_of[product_id]].product_iblock_id is not None:
            return VARIATION_WITHOUT_PRODUCT
        return SIMPLE

    def parent_of(self, product_id: int) -> int | None:
        """The variation's parent product; None for any other product."""
        link = self._parent_of.get(product_id)
        return None if link is None else link.value

    def parent_link(self, product_id: int) -> ParentLink | None:
        """The variation's ``parentId`` property value; None for any other product."""
        return self._parent_of.get(product_id)

    def product_info(self, product_id: int) -> ProductInfo:
        """The product's name and xmlId; KeyError when unknown."""
        return self._info[product_id]

    def newest_variation(self, product_id: int) -> int | None:
        """The parent's variation with the highest id; None without variations."""
        return max(self._variations.get(product_id, ()), default=None)

    def catalogs(self) -> list[CatalogInfo]:
        """Every trade catalog, by iblock id."""
        return [self._iblocks[key] for key in sorted(self._iblocks)]

    def product_ids(self, iblock_id: int | None = None) -> list[int]:
        """Product ids in ascending order, optionally of one iblock only."""
        cached = self._sorted_ids.get(iblock_id)
        if cached is None:
            cached = sorted(
                pid for pid, iblock in self._iblock_of.items() if iblock_id in (None, iblock)
            )
            self._sorted_ids[iblock_id] = cached
        return list(cached)

    def product_ids_between(self, iblock_id: int | None, low: int, high: int) -> list[int]:
        """Ascending product ids with ``low <= id <= high``, found by bisection."""
        if iblock_id not in self._sorted_ids:
            self.product_ids(iblock_id)
        ids = self._sorted_ids[iblock_id]
        return ids[bisect.bisect_left(ids, low) : bisect.bisect_right(ids, high)]

    def image(self, image_id: int) -> SimImage:
        """The image with this id; KeyError when unknown."""
        return self._images[image_id]

    def has_image(self, image_id: int) -> bool:
        """Whether the image exists."""
        return image_id in self._images

    def images_of(self, product_id: int) -> list[SimImage]:
        """The product's images in the order they were attached."""
        return [self._images[image_id] for image_id in self._images_of.get(product_id, [])]

    def pairs(self) -> list[tuple[int, int]]:
        """(productId, imageId) of every image, by product id then attachment order."""
        return [
            (product_id, image_id)
            for product_id in self.product_ids()
            for image_id in self._images_of[product_id]
        ]

    def image_bytes(self, image_id: int) -> bytes:
        """The exact bytes a download of this image serves."""
        image = self._images[image_id]
        content = self._content.get(image_id)
        return png_bytes(image.id, image.size, self.seed) if content is None else content

    def iter_image_bytes(self, image_id: int) -> Iterator[bytes]:
        """The same bytes as :meth:`image_bytes`, in pieces of at most 64 KiB (plus head)."""
        image = self._images[image_id]
        content = self._content.get(image_id)
        if content is None:
            return iter_png(image.id, image.size, self.seed)
        pieces = range(0, len(content), STREAM_BLOCK_SIZE)
        return (content[start : start + STREAM_BLOCK_SIZE] for start in pieces)

    def image_sha256(self, image_id: int) -> str:
        """Hex SHA-256 of the image's bytes (computed by streaming, then cached)."""
        cached = self._sha256.get(image_id)
        if cached is None:
            digest = hashlib.sha256()
            for piece in self.iter_image_bytes(image_id):
                digest.update(piece)
            cached = self._sha256[image_id] = digest.hexdigest()
        return cached


def generated_name(seed: int, position: int) -> str:
    """The name :meth:`Catalog.generate` gives the product at ``position`` (from 0)."""
    rng = random.Random(f"product-name:{seed}:{position}")
    adjectives, nouns = _PRODUCT_WORDS
    return f"{rng.choice(adjectives)} {rng.choice(nouns)} {position + 1}"


def generated_xml_id(seed: int, position: int) -> str:
    """The xmlId :meth:`Catalog.generate` gives the product at ``position``: GUID-shaped."""
    digest = hashlib.blake2b(f"product-xml-id:{seed}:{position}".encode(), digest_size=16)
    return str(uuid.UUID(bytes=digest.digest(), version=4))


def _generated_type(position: int, rng: random.Random) -> str:
    """Detail picture first, sometimes a preview second, additional photos after."""
    if position == 0:
        return "DETAIL_PICTURE"
    if position == 1 and rng.random() < 0.5:
        return "PREVIEW_PICTURE"
    return "MORE_PHOTO"
