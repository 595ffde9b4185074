"""The JSON sidecar next to every exported file: metadata, size, SHA-256, provenance.

`productImage` holds every field the portal returned, verbatim, except `downloadUrl`
(a credential). The sidecar is written after its file, atomically, so a sidecar always
describes a complete file; it is also what proves whose export a file is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from exporter import __version__
from exporter.atomic import write_atomic_sync
from exporter.jsontext import indented_json
from exporter.model import ImageRef, ProductImage, ProductInfo, SavedFile

SIDECAR_SUFFIX = ".json"


def sidecar_path(file: Path) -> Path:
    """`1/7_front.png` → `1/7_front.png.json`."""
    return file.with_name(file.name + SIDECAR_SUFFIX)


def build_sidecar(
    image: ProductImage, saved: SavedFile, portal_host: str, exported_at: datetime
) -> dict[str, Any]:
    """The sidecar document of the spec; an image the portal answered for another product
    than the one asked (a parent's variation) records the one asked as `requested`."""
    document: dict[str, Any] = {
        "productImage": dict(image.fields),
        "file": {
            "name": PurePosixPath(saved.key).name,
            "size": saved.size,
            "sha256": saved.sha256,
            "contentType": saved.content_type,
        },
        "source": {"portal": portal_host, "method": image.method},
        "exportedAt": exported_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exporter": {"version": __version__},
    }
    if str(image.fields.get("productId")) != str(image.ref.product_id):
        document["requested"] = {"productId": image.ref.product_id}
    if image.product is not None:
        document["product"] = image.product.as_json()
    return document


def write_sidecar(
    file: str | Path, image: ProductImage, saved: SavedFile, portal_host: str, exported_at: datetime
) -> None:
    """Write the sidecar of the saved file at `file`, whole or not at all."""
    path = os.fspath(file) + SIDECAR_SUFFIX  # sidecar_path's, without building a Path
    write_atomic_sync(path, document_bytes(build_sidecar(image, saved, portal_host, exported_at)))


def _write_document(path: Path, document: dict[str, Any]) -> None:
    write_atomic_sync(path, document_bytes(document))


def document_bytes(document: dict[str, Any]) -> bytes:
    """A sidecar's document as its file holds it."""
    return (indented_json(document) + "\n").encode("utf-8")


MAX_SIDECAR_BYTES = 1 << 20  # a sidecar is a few hundred bytes; anything this big is not one
_SHA256_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class SidecarFacts:
    """What a sidecar says about its file: whose it is, its name, size and hash."""

    ref: ImageRef  # as the manifest names it (`requested` when the portal answered another)
    name: str | None  # the file name it describes, when it says
    size: int
    sha256: str  # lower-case hex
    gone: str | None = None  # since when the portal no longer has the image
    image_name: str = ""  # the image's name on the portal (productImage.name)
    image_type: str = ""  # DETAIL_PICTURE, PREVIEW_PICTURE or MORE_PHOTO
    portal: str = ""  # the portal it was exported from (source.portal)
    xml_id: str | None = None  # its product's external code (product.xmlId), when known
    described: bool = False  # it has a product block (the catalog was asked about it)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a document is not a usable sidecar; `shaped` when it still looks like one."""

    reason: str
    shaped: bool


def parse_sidecar(raw: bytes) -> SidecarFacts | Rejected:
    """The facts of a sidecar document; never echoes its content (it is untrusted)."""
    try:
        document = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        return Rejected("not valid JSON", shaped=False)
    image = document.get("productImage") if isinstance(document, dict) else None
    meta = document.get("file") if isinstance(document, dict) else None
    if not isinstance(image, dict) or not isinstance(meta, dict):
        return Rejected("not an exporter sidecar (no productImage and file)", shaped=False)
    requested = document.get("requested")
    asked = requested.get("productId") if isinstance(requested, dict) else None
    try:
        ref = ImageRef(int(asked or image["productId"]), int(image["id"]))
    except (KeyError, TypeError, ValueError):
        return Rejected("productImage has no valid id and productId", shaped=True)
    size, sha256, name = meta.get("size"), meta.get("sha256"), meta.get("name")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return Rejected("file.size is not a byte count", shaped=True)
    if not isinstance(sha256, str) or len(sha256) != 64 or set(sha256.lower()) - _SHA256_HEX:
        return Rejected("file.sha256 is not a SHA-256 hex digest", shaped=True)
    if name is not None and not isinstance(name, str):
        return Rejected("file.name is not a string", shaped=True)
    gone = document.get("gone")
    since = gone.get("since") if isinstance(gone, dict) else None
    source, product = document.get("source"), document.get("product")
    xml_id = product.get("xmlId") if isinstance(product, dict) else None
    return SidecarFacts(
        ref,
        name,
        size,
        sha256.lower(),
        since if isinstance(since, str) else None,
        image_name=_text(image.get("name")),
        image_type=_text(image.get("type")),
        portal=_text(source.get("portal") if isinstance(source, dict) else None),
        xml_id=xml_id if isinstance(xml_id, str) and xml_id else None,
        described=isinstance(product, dict),
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def rewrite_gone(file: Path, since: str | None) -> None:
    """Mark the sidecar of `file` gone since `since` (None: not gone), whole or not at all."""
    _rewrite(file, "gone", None if since is None else {"since": since})


def rewrite_product(file: Path, product: ProductInfo) -> None:
    """Give the sidecar of `file` its product block, whole or not at all."""
    _rewrite(file, "product", product.as_json())


def _rewrite(file: Path, name: str, value: dict[str, Any] | None) -> None:
    """Set (None: drop) one top-level entry of a sidecar; `ValueError` for no sidecar."""
    path = sidecar_path(file)
    _write_document(path, changed_document(path.read_bytes(), name, value))


def changed_document(raw: bytes, name: str, value: dict[str, Any] | None) -> dict[str, Any]:
    """A sidecar's document with one top-level entry set (None: dropped); `ValueError`
    when `raw` is not a sidecar's JSON object."""
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError("not a sidecar")
    if value is None:
        document.pop(name, None)
    else:
        document[name] = value
    return document


def load_sidecar(path: str | Path) -> SidecarFacts | Rejected:
    """The facts of the sidecar file at `path`, read in bounded memory."""
    try:
        with open(path, "rb") as source:
            raw = source.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        return Rejected(f"cannot read: {exc.strerror}", shaped=False)
    if len(raw) > MAX_SIDECAR_BYTES:
        return Rejected("too large to be a sidecar", shaped=False)
    return parse_sidecar(raw)


def read_sidecar(file: Path) -> SidecarFacts | None:
    """The facts of a file's sidecar, or None when there is no usable exporter sidecar."""
    facts = load_sidecar(sidecar_path(file))
    return facts if isinstance(facts, SidecarFacts) else None


def owner_of(file: Path) -> ImageRef | None:
    """Whose export the file at this path is, according to its sidecar."""
    facts = read_sidecar(file)
    return facts.ref if facts else None
