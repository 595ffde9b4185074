"""The destination protocol: what an export asks of the place its files land.

One run, as the destination sees it:

    await destination.open()                        # create, lock, clean up, load the index
    destination.is_done(ref)                        # per image named, without a request
    sink = await destination.open_sink(image, content_type)  # the destination names the file
    await sink.write(pieces)                        # hashed and stored as they come
    saved = await destination.commit(image, sink)   # the file, its index line, its sidecar
    sink.discard()                                  # or nothing is left of it
    await destination.mark_gone(ref, since)         # an export the portal no longer has
    await destination.describe(ref, product)        # a done export's product block, later
    await destination.keep_report(report)           # the run's report, with the last ones
    await destination.close()

`open(write=False)` only reads what is done (a dry run): nothing is locked or written.
A folder (`exporter.destination.folder`) is the first implementation; every
implementation is held to the same tests (tests/test_destination.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from exporter.destination.sidecar import SidecarFacts
from exporter.model import ImageRef, ProductImage, ProductInfo, SavedFile


class Sink(Protocol):
    """One file on its way into the destination: written, then committed or discarded.

    Nothing of it is visible under its final name before `commit`; after `discard`
    (which never raises and may be called more than once) nothing of it is left.
    """

    key: str  # where it will land, relative to the destination, "/"-separated

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far."""
        ...

    async def write(self, pieces: Sequence[bytes]) -> None:
        """Hash and store the next pieces of the body; `OutputError` when it cannot."""
        ...

    async def commit(self) -> SavedFile:
        """Make the file durable under its final name; discarded if that fails."""
        ...

    def discard(self) -> None:
        """Drop the file: nothing of it is left."""
        ...


class Destination(Protocol):
    """Where an export lands; see the module docstring for the order of the calls."""

    async def open(self, *, write: bool = True) -> None:
        """Get ready; `OutputError` when the destination cannot be written, `LockedError`
        when another run is writing into it. `write=False` only reads what is done."""
        ...

    async def close(self) -> None:
        """Release what `open` took (the lock, open files)."""
        ...

    def is_done(self, ref: ImageRef) -> bool:
        """Whether an earlier run exported this image whole (no re-hash, no request)."""
        ...

    async def open_sink(self, image: ProductImage, content_type: str) -> Sink:
        """A sink for an image's file, under the name the destination gives it."""
        ...

    async def commit(self, image: ProductImage, sink: Sink) -> SavedFile:
        """Commit a received file, its index line and its sidecar as one export."""
        ...

    def images_of(self, product_id: int) -> list[ImageRef]:
        """Every image of one product that an earlier run exported."""
        ...

    def exported_products(self) -> set[int]:
        """Every product that an earlier run exported an image of."""
        ...

    def key_of(self, ref: ImageRef) -> str:
        """Where an exported image is, relative to the destination ("" if it is not)."""
        ...

    def gone_since(self, ref: ImageRef) -> str | None:
        """Since when an exported image is gone from the portal (None: it is not)."""
        ...

    async def mark_gone(self, ref: ImageRef, since: str | None) -> None:
        """Record in the export that the portal no longer has the image (`since`, the first
        run that saw it gone), or has it again (None); the file itself stays."""
        ...

    def gone_images(self) -> list[tuple[ImageRef, str]]:
        """Every exported image that is gone, with since when."""
        ...

    def described(self, ref: ImageRef) -> bool:
        """Whether an exported image's sidecar has its product block (no file is read)."""
        ...

    async def describe(self, ref: ImageRef, product: ProductInfo) -> None:
        """Give an exported image's sidecar its product block (an export from before the
        block, or one whose product the catalog could not tell then); no file is read."""
        ...

    async def remove(self, ref: ImageRef) -> str:
        """Delete an export (its file, sidecar and index line); returns where it was."""
        ...

    def exported(self) -> Iterator[tuple[str, SidecarFacts]]:
        """Every export, by key, with what its sidecar says (unreadable sidecars left out)."""
        ...

    async def read_file(self, key: str) -> bytes:
        """An export's whole file (`OutputError` when it cannot be read)."""
        ...

    def state_path(self, name: str) -> Path:
        """A local file of this export's own state (a restore's journal), its folder made."""
        ...

    async def keep_report(self, report: bytes) -> None:
        """Keep a run's report with the last ones (the latest goes where `report` says)."""
        ...
