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
import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Protocol

import anyio

from exporter.destination.index import fold_key
from exporter.destination.sidecar import SIDECAR_SUFFIX, sidecar_path
from exporter.errors import ImageError
from exporter.keyset import KeySet
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

    def paths_of(self, refs: Iterable[ImageRef]) -> dict[ImageRef, str]:
        """The paths of those of `refs` that have one."""
        ...

    def holders(self, path: str) -> list[ImageRef]:
        """The images whose path is `path`, case-insensitively."""
        ...


_SETTLED_CHECK = 1024  # claims held before those the index has taken over are dropped


class PathRegistry:
    """Hands each image one path under `root`, never the same one to two images.

    What the claims decide by (the index, this run's claims) is read on the event loop;
    what they look at on disk (a sidecar in the way, whose export it is, where the folder
    really leads) is looked at in a worker thread, one hop per claim, so that a slow
    filesystem stalls only the image that waits for it. A candidate is held for its
    image before the hop, so that two claims in flight never take one path. A folder
    found inside the output is not resolved again, and one that was not there when the
    run first looked (a first export's every folder) is not looked at again: no hop.
    """

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
        # This run's claims, until the index has them (a committed export's row): then
        # they are dropped, so a run's memory does not grow with the images it saves.
        self._path_of: dict[ImageRef, str] = {}
        self._holder: dict[str, ImageRef] = {}  # case-folded path → the image holding it
        self._check_at = _SETTLED_CHECK
        self._inside: set[str] = set()  # folders (relative) found to resolve inside root
        self._fresh: set[str] = set()  # of which those not there when this run first looked
        self._at_start: KeySet | None = None  # the names in `root` when the run began

    async def claim(
        self,
        ref: ImageRef,
        wanted: PurePosixPath,
        owner_on_disk: Callable[[Path], ImageRef | None],
    ) -> Path:
        """The final path for `ref`: its earlier one, `wanted`, or `wanted` with a counter.

        A candidate is free when no other image of this run or of the index holds it
        and no other image's export sits at it on disk (`owner_on_disk` tells whose
        export a file is, from its sidecar; it is called in a worker thread).
        """
        if len(self._path_of) >= self._check_at:
            self._drop_settled()
        given = self._path_of.get(ref) or self._known.path_of(ref)
        if given is not None:
            relative = PurePosixPath(given)
            self._hold(ref, relative)
            if str(relative.parent) in self._inside:
                return self.root / relative
            return await anyio.to_thread.run_sync(self._inside_root, relative)
        n = 1
        relative = wanted
        while True:
            if self._is_free(ref, relative):
                self._hold(ref, relative)
                if await self._is_fresh(relative):
                    return self.root / relative  # nothing on disk there but this run's
                try:
                    final = await anyio.to_thread.run_sync(
                        self._take_on_disk, ref, relative, owner_on_disk
                    )
                except BaseException:
                    self._release(ref, relative)
                    raise
                if final is not None:
                    return final
                self._release(ref, relative)
            n += 1
            relative = with_counter(wanted, n)

    async def _is_fresh(self, relative: PurePosixPath) -> bool:
        """Whether `relative` is in a folder that was not there when the run began (so
        that nothing is on disk there but what this run put in it, which it knows)."""
        if str(relative.parent) in self._fresh:
            return True
        if len(relative.parts) < 2:
            return False
        if self._at_start is None:  # one look at the output folder, at the first claim
            self._at_start = await anyio.to_thread.run_sync(_names_in, self.root)
        return fold_key(relative.parts[0]) not in self._at_start

    def _is_free(self, ref: ImageRef, relative: PurePosixPath) -> bool:
        """Free as far as the run and the index tell (the disk is looked at next)."""
        path = str(relative)
        key = path.casefold()
        if key in self._reserved or key + SIDECAR_SUFFIX in self._reserved:
            return False
        holder = self._holder.get(key)
        if holder is not None:
            return holder == ref
        return all(holder == ref for holder in self._known.holders(path))

    def _take_on_disk(
        self,
        ref: ImageRef,
        relative: PurePosixPath,
        owner_on_disk: Callable[[Path], ImageRef | None],
    ) -> Path | None:
        """In a worker thread: the final path, unless another image's export is there."""
        target = self.root / relative
        if not target.parent.exists():
            # A folder not there yet holds nothing but what this run puts in it, which
            # the run knows: its next claims need not look at the disk.
            target = self._inside_root(relative)
            self._fresh.add(str(relative.parent))
            return target
        # Nothing there, or a file without a sidecar: every complete export has a
        # sidecar, so that is one cut short after its rename and may be replaced.
        if sidecar_path(target).exists() and owner_on_disk(target) != ref:
            return None
        return self._inside_root(relative)

    def _hold(self, ref: ImageRef, relative: PurePosixPath) -> None:
        path = str(relative)
        self._path_of[ref] = path
        self._holder[path.casefold()] = ref

    def _release(self, ref: ImageRef, relative: PurePosixPath) -> None:
        path = str(relative)
        if self._path_of.get(ref) == path:
            del self._path_of[ref]
        if self._holder.get(path.casefold()) == ref:
            del self._holder[path.casefold()]

    def _drop_settled(self) -> None:
        """Forget the claims the index holds now (their exports are committed)."""
        held = self._known.paths_of(list(self._path_of))
        for ref, path in list(self._path_of.items()):
            if held.get(ref) == path:
                self._release(ref, PurePosixPath(path))
        self._check_at = max(_SETTLED_CHECK, 2 * len(self._path_of))

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


def _names_in(root: Path) -> KeySet:
    """The case-folded keys of the names in a folder (none when it is not there)."""
    try:
        with os.scandir(root) as entries:
            keys = sorted({fold_key(entry.name) for entry in entries})
    except FileNotFoundError:
        keys = []
    return KeySet(keys)
