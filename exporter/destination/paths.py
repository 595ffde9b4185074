"""Where each image lands: `output.layout` rendered from portal data made safe.

Everything the portal supplies (the name above all) is untrusted: separators, `..`,
control and invisible formatting characters, characters other systems forbid, reserved
device names and over-long names are all neutralised per path part, and the result is
checked to stay inside the output folder even through symlinks. `PathRegistry` makes
sure no two images ever get the same path (case-insensitively, for copies to macOS or
Windows), and that an image keeps its path across runs.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Protocol

from exporter.destination.sidecar import SIDECAR_SUFFIX, sidecar_path
from exporter.errors import ImageError
from exporter.model import ImageRef, ProductImage

MAX_PART_BYTES = 200  # leaves room for ".json" and temporary suffixes within 255 bytes
_MAX_EXT_CHARS = 16
_FORBIDDEN = set('/\\<>:"|?*')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


_FORBIDDEN_TO_UNDERSCORE = str.maketrans(dict.fromkeys(_FORBIDDEN, "_"))


def safe_part(text: str) -> str:
    """One path part made safe: no separators, no leading dot, no control characters."""
    text = unicodedata.normalize("NFC", text)
    if text.isprintable():  # no Cc, Cf, Cs, Zl or Zp (nor Zs but the space, Co, Cn) in it
        cleaned = text.translate(_FORBIDDEN_TO_UNDERSCORE)
    else:
        cleaned = "".join(
            "_" if ch in _FORBIDDEN or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")
            else ch
            for ch in text
        )  # fmt: skip
    cleaned = cleaned.strip().rstrip(". ")
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if not cleaned:
        return "_"
    if _RESERVED.match(cleaned):
        cleaned = "_" + cleaned
    return _truncate(cleaned, MAX_PART_BYTES)


def _truncate(part: str, limit: int) -> str:
    """Cut a part to `limit` UTF-8 bytes on a character boundary, keeping its extension."""
    if len(part.encode()) <= limit:
        return part
    stem, dot, ext = part.rpartition(".")
    if not dot or not stem or len(ext) > _MAX_EXT_CHARS:
        stem, ext = part, ""
    suffix = f".{ext}" if ext else ""
    room = limit - len(suffix.encode())
    cut = stem.encode()[:room].decode("utf-8", errors="ignore").rstrip(". ")
    return (cut or "_") + suffix


def image_ext(name: str, content_type: str) -> str:
    """The file extension for the layout's `{ext}`: from the name, else the content type."""
    _stem, dot, ext = name.rpartition(".")
    if dot and ext and len(ext) <= _MAX_EXT_CHARS and ext.isalnum():
        return ext.lower()
    guessed = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ".bin"
    return guessed.lstrip(".")


def render_layout(layout: str, image: ProductImage, content_type: str) -> PurePosixPath:
    """The relative path `layout` gives for an image; every part is safe."""
    ext = image_ext(image.name, content_type)
    name = image.name if image.name.strip() else f"image.{ext}"
    product = image.product
    values = {
        "productId": str(image.ref.product_id),
        "id": str(image.ref.image_id),
        "name": safe_part(name),
        "type": safe_part(image.type),
        "ext": safe_part(ext),
        # The product's context, as far as the catalog tells: empty when it does not.
        "productName": safe_part(product.name or "") if product else "",
        "xmlId": safe_part(product.xml_id or "") if product else "",
        "parentId": str(product.parent_id or "") if product else "",
    }
    # Each part of the template is rendered and made safe on its own, so a value can
    # never add a folder level, whatever it contains.
    parts = [safe_part(part.format_map(values)) for part in layout.split("/")]
    return PurePosixPath(*parts)


def with_counter(path: PurePosixPath, n: int) -> PurePosixPath:
    """`a/name.jpg` → `a/name-2.jpg`, still within the length bound."""
    stem, dot, ext = path.name.rpartition(".")
    if not dot or not stem:
        stem, ext = path.name, ""
    suffix = f"-{n}" + (f".{ext}" if ext else "")
    stem = _truncate(stem, MAX_PART_BYTES - len(suffix.encode()))
    return path.with_name(stem + suffix)


class KnownPaths(Protocol):
    """Paths earlier runs gave to images (the index of the output folder)."""

    def path_of(self, ref: ImageRef) -> str | None: ...

    def paths(self) -> Iterable[tuple[ImageRef, str]]: ...


class PathRegistry:
    """Hands each image one path under `root`, never the same one to two images."""

    def __init__(self, root: Path, known: KnownPaths, reserved: Iterable[Path] = ()) -> None:
        """`reserved` are other files the run writes under `root` (the report): no image,
        nor its sidecar, may take their place."""
        self.root = root
        self._resolved_root = root.resolve()
        self._known = known
        self._reserved = {
            path.resolve().relative_to(self._resolved_root).as_posix().casefold()
            for path in reserved
            if path.resolve().is_relative_to(self._resolved_root)
        }
        self._path_of: dict[ImageRef, str] = {}  # plain strings: 100,000 of them add up
        # Who holds which path, case-folded; built at the first claim, so a run with
        # nothing to download never pays for it.
        self._owner: dict[str, ImageRef] | None = None
        self._inside: set[str] = set()  # folders (relative) found to resolve inside root

    def claim(
        self,
        ref: ImageRef,
        wanted: PurePosixPath,
        owner_on_disk: Callable[[Path], ImageRef | None],
    ) -> Path:
        """The final path for `ref`: its earlier one, `wanted`, or `wanted` with a counter.

        A candidate is free when no other image of this run or of the index holds it
        and no other image's export sits at it on disk (`owner_on_disk` tells whose
        export a file is, from its sidecar).
        """
        owners = self._owners()
        given = self._path_of.get(ref) or self._known.path_of(ref)
        relative = PurePosixPath(given) if given is not None else None
        if relative is None:
            n = 1
            relative = wanted
            while not self._is_free(ref, relative, owners, owner_on_disk):
                n += 1
                relative = with_counter(wanted, n)
        owners[str(relative).casefold()] = ref
        self._path_of[ref] = str(relative)
        return self._inside_root(relative)

    def _owners(self) -> dict[str, ImageRef]:
        if self._owner is None:
            self._owner = {path.casefold(): ref for ref, path in self._known.paths()}
        return self._owner

    def _is_free(
        self,
        ref: ImageRef,
        relative: PurePosixPath,
        owners: dict[str, ImageRef],
        owner_on_disk: Callable[[Path], ImageRef | None],
    ) -> bool:
        key = str(relative).casefold()
        if key in self._reserved or key + SIDECAR_SUFFIX in self._reserved:
            return False
        holder = owners.get(key)
        if holder is not None:
            return holder == ref
        target = self.root / relative
        if sidecar_path(target).exists():
            return owner_on_disk(target) == ref
        # Nothing there, or a file without a sidecar: every complete export has a
        # sidecar, so that is one cut short after its rename and may be replaced.
        return True

    def _inside_root(self, relative: PurePosixPath) -> Path:
        target = self.root / relative
        # Parts are safe already; this catches a symlinked folder leading elsewhere. A
        # folder found inside is not resolved again for the next image in it.
        folder = str(relative.parent)
        if folder not in self._inside:
            if not target.parent.resolve().is_relative_to(self._resolved_root):
                raise ImageError(
                    "UNSAFE_PATH", f"{relative.parent} leads outside the output folder"
                )
            self._inside.add(folder)
        return target
