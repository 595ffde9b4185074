"""The index of done images in an output folder, so a re-run asks the portal nothing for them.

Sidecars are the truth; the index is a fast path to them. It maps each exported image
to its relative path and size (and whether its sidecar has the product block), one JSON
line per export appended as files complete; an image forgotten (`verify --repair` moved
its file aside) gets a line of its own, `{"productId": …, "id": …, "removed": true}`,
and the last line for an image wins. A
missing index is rebuilt from the sidecars; a lost last line (a killed run) only costs
one metadata lookup, after which the sidecar on disk is recognised as done.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from exporter.atomic import write_atomic_sync
from exporter.destination.sidecar import SIDECAR_SUFFIX, read_sidecar
from exporter.model import ImageRef

log = logging.getLogger(__name__)

STATE_DIR = ".b24-image-exporter"
INDEX_NAME = "index.jsonl"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where an image was exported to and the size its sidecar records."""

    path: str  # relative to the output folder, "/"-separated
    size: int
    gone: str | None = None  # since when the portal no longer has the image
    described: bool = False  # its sidecar has the product block


class ExportIndex:
    """Done images of one output folder: load once, append as images complete."""

    def __init__(self, root: Path, entries: dict[ImageRef, IndexEntry]) -> None:
        self.root = root
        self.entries = entries
        self._root = str(root)
        self._file: IO[str] | None = None
        self._by_product: dict[int, list[ImageRef]] | None = None  # built when first asked

    @classmethod
    def open(cls, root: Path) -> ExportIndex:
        """Load the index of `root`, rebuilding it from sidecars when it is missing."""
        return cls.open_at(root, root / STATE_DIR / INDEX_NAME, lambda: _scan_sidecars(root))

    @classmethod
    def open_at(
        cls,
        root: Path,
        path: Path,
        rebuild: Callable[[], dict[ImageRef, IndexEntry]],
        *,
        anew: bool = False,
    ) -> ExportIndex:
        """Load the index file at `path`, or (missing, or `anew`) write it from `rebuild()`,
        the entries the export's sidecars tell."""
        if path.exists() and not anew:
            entries, lines = _load(path)
            if lines > 2 * len(entries) + 1000:
                _rewrite(path, entries)
        else:
            entries = rebuild()
            path.parent.mkdir(parents=True, exist_ok=True)
            _rewrite(path, entries)
            if entries:
                log.info("rebuilt the index of %s from %d sidecars", root, len(entries))
        index = cls(root, entries)
        index._file = path.open("a", encoding="utf-8")
        return index

    @classmethod
    def read(cls, root: Path) -> ExportIndex:
        """The index of `root` without writing anything (a dry run); `add` keeps to memory."""
        path = root / STATE_DIR / INDEX_NAME
        entries = _load(path)[0] if path.exists() else _scan_sidecars(root)
        return cls(root, entries)

    def is_done(self, ref: ImageRef) -> bool:
        """Exported earlier: the sidecar is there and the file has the recorded size."""
        entry = self.entries.get(ref)
        if entry is None:
            return False
        # Plain strings, not pathlib: a nightly run checks every image of the backup.
        file = os.path.join(self._root, entry.path)  # noqa: PTH118
        try:
            size = os.stat(file).st_size  # noqa: PTH116
            return size == entry.size and os.path.exists(file + SIDECAR_SUFFIX)  # noqa: PTH110
        except OSError:
            return False

    def path_of(self, ref: ImageRef) -> str | None:
        """The relative path an earlier run gave to `ref`."""
        entry = self.entries.get(ref)
        return entry.path if entry else None

    def paths(self) -> Iterator[tuple[ImageRef, str]]:
        """Every image's relative path."""
        for ref, entry in self.entries.items():
            yield ref, entry.path

    def add(
        self,
        ref: ImageRef,
        path: str,
        size: int,
        gone: str | None = None,
        *,
        described: bool = False,
    ) -> None:
        """Record a completed export (file and sidecar are in place), or a new state of one."""
        entry = self.entries[ref] = IndexEntry(path, size, gone, described)
        self._by_product = None
        if self._file is not None:
            self._file.write(_line(ref, entry))
            self._file.flush()

    def described(self, ref: ImageRef) -> bool:
        """Whether the image's sidecar has its product block (no file is read)."""
        entry = self.entries.get(ref)
        return entry is not None and entry.described

    def gone_since(self, ref: ImageRef) -> str | None:
        """Since when the portal no longer has an exported image (None: it has)."""
        entry = self.entries.get(ref)
        return entry.gone if entry else None

    def images_of(self, product_id: int) -> list[ImageRef]:
        """Every exported image of one product."""
        return list(self._products().get(product_id, ()))

    def products(self) -> set[int]:
        """Every product an image was exported of."""
        return set(self._products())

    def _products(self) -> dict[int, list[ImageRef]]:
        if self._by_product is None:
            self._by_product = {}
            for ref in self.entries:
                self._by_product.setdefault(ref.product_id, []).append(ref)
        return self._by_product

    def forget(self, ref: ImageRef) -> None:
        """Drop an image whose file was moved aside, so the next run exports it again."""
        self.entries.pop(ref, None)
        self._by_product = None
        if self._file is not None:
            self._file.write(_removal_line(ref))
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _line(ref: ImageRef, entry: IndexEntry) -> str:
    record = {
        "productId": ref.product_id,
        "id": ref.image_id,
        "path": entry.path,
        "size": entry.size,
    }
    if entry.gone is not None:
        record["gone"] = entry.gone
    if entry.described:
        record["product"] = True
    return json.dumps(record, ensure_ascii=False) + "\n"


def _removal_line(ref: ImageRef) -> str:
    # No "path": an older exporter skips the line as one cut short, and finds the file gone.
    return json.dumps({"productId": ref.product_id, "id": ref.image_id, "removed": True}) + "\n"


def _load(path: Path) -> tuple[dict[ImageRef, IndexEntry], int]:
    entries: dict[ImageRef, IndexEntry] = {}
    lines = 0
    with path.open(encoding="utf-8", errors="replace") as lines_in:
        for text in lines_in:
            lines += 1
            try:
                record = json.loads(text)
                ref = ImageRef(int(record["productId"]), int(record["id"]))
                if record.get("removed") is True:
                    entries.pop(ref, None)
                else:
                    gone = record.get("gone")
                    entries[ref] = IndexEntry(
                        str(record["path"]),
                        int(record["size"]),
                        gone if isinstance(gone, str) else None,
                        record.get("product") is True,
                    )
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a killed run
    return entries, lines


def _rewrite(path: Path, entries: dict[ImageRef, IndexEntry]) -> None:
    text = "".join(_line(ref, entry) for ref, entry in entries.items())
    write_atomic_sync(path, text.encode("utf-8"))


def _scan_sidecars(root: Path) -> dict[ImageRef, IndexEntry]:
    entries: dict[ImageRef, IndexEntry] = {}
    if not root.is_dir():
        return entries
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != STATE_DIR]
        present = set(names)
        for name in names:
            data_name = name.removesuffix(SIDECAR_SUFFIX)
            if name == data_name or data_name not in present or name.startswith("."):
                continue
            file = Path(folder, data_name)
            facts = read_sidecar(file)
            if facts is not None:
                relative = file.relative_to(root).as_posix()
                entries[facts.ref] = IndexEntry(relative, facts.size, facts.gone, facts.described)
    return entries
