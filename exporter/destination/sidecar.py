"""The JSON sidecar next to every exported file: metadata, size, SHA-256, provenance.

`productImage` holds every field the portal returned, verbatim, except `downloadUrl`
(a credential). The sidecar is written after its file, atomically, so a sidecar always
describes a complete file; it is also what proves whose export a file is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from exporter import __version__
from exporter.atomic import write_atomic_sync
from exporter.model import ImageRef, ProductImage, SavedFile

SIDECAR_SUFFIX = ".json"


def sidecar_path(file: Path) -> Path:
    """`1/7_front.png` → `1/7_front.png.json`."""
    return file.with_name(file.name + SIDECAR_SUFFIX)


def build_sidecar(
    image: ProductImage, saved: SavedFile, portal_host: str, exported_at: datetime
) -> dict[str, Any]:
    """The sidecar document of the spec."""
    return {
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


def write_sidecar(
    file: Path, image: ProductImage, saved: SavedFile, portal_host: str, exported_at: datetime
) -> Path:
    """Write the sidecar of the saved file at `file`, whole or not at all; return its path."""
    document = build_sidecar(image, saved, portal_host, exported_at)
    path = sidecar_path(file)
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    write_atomic_sync(path, text.encode("utf-8"))
    return path


@dataclass(frozen=True, slots=True)
class SidecarFacts:
    """What a sidecar says about its file: whose it is and how big it must be."""

    ref: ImageRef
    size: int
    sha256: str


def read_sidecar(file: Path) -> SidecarFacts | None:
    """The facts of a file's sidecar, or None when there is no readable exporter sidecar."""
    try:
        document = json.loads(sidecar_path(file).read_text(encoding="utf-8"))
        image, meta = document["productImage"], document["file"]
        ref = ImageRef(int(image["productId"]), int(image["id"]))
        size, sha256 = meta["size"], meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(size, int) or not isinstance(sha256, str):
        return None
    return SidecarFacts(ref, size, sha256)


def owner_of(file: Path) -> ImageRef | None:
    """Whose export the file at this path is, according to its sidecar."""
    facts = read_sidecar(file)
    return facts.ref if facts else None


def is_complete(file: Path, facts: SidecarFacts) -> bool:
    """A done export: the file exists with the size its sidecar records (no re-hash)."""
    try:
        return file.stat().st_size == facts.size
    except OSError:
        return False
