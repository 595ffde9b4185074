"""A local folder as the destination: files and sidecars under `output.dir`, made durable.

A body smaller than `SMALL_BODY_BYTES` is held in memory until its commit; a larger
one streams into a hidden temporary next to its final name
(`.<name>.<random>.b24-partial`), hashed as it is written. Commits are grouped
(`destination.group`): the group's index lines are appended, then one worker-thread
call writes each small file of the group, fsyncs and renames every file and then its
sidecar the same way, and fsyncs each folder once. A temporary left by a killed run is
removed by the next one. The run lock, the index of done images and the path registry
live in the folder too (`.b24-image-exporter/`).

Blocks of a large body are hashed and written in one worker-thread call (hashlib and
os.writev release the GIL, and network pieces are written as they are, never joined),
so the event loop keeps receiving while a block is digested and stored.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from exporter.atomic import (
    commit_temp,
    discard,
    fsync_dir,
    is_temporary,
    temp_name_for,
    write_atomic_sync,
)
from exporter.config import OutputConfig
from exporter.destination.base import Sink
from exporter.destination.group import GroupCommit
from exporter.destination.index import STATE_DIR, ExportIndex, IndexEntry
from exporter.destination.lock import RunLock
from exporter.destination.paths import PathRegistry, render_layout
from exporter.destination.sidecar import (
    SIDECAR_SUFFIX,
    SidecarFacts,
    build_sidecar,
    document_bytes,
    load_sidecar,
    owner_of,
    rewrite_gone,
    rewrite_product,
    sidecar_path,
    write_sidecar,
)
from exporter.errors import OutputError
from exporter.model import ImageRef, ProductImage, ProductInfo, SavedFile

log = logging.getLogger(__name__)

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL
SMALL_BODY_BYTES = 1024 * 1024  # a body below this is held in memory, written at its commit
REPORTS_DIR = "reports"  # in the state folder: the last runs' reports
KEPT_REPORTS = 30


def _iov_max() -> int:
    """Buffers one os.writev call may take (1024 on Linux; POSIX guarantees 16)."""
    try:
        return max(16, min(1024, os.sysconf("SC_IOV_MAX")))
    except (ValueError, OSError):
        return 16


_IOV_MAX = _iov_max()


class FolderDestination:
    """Exports under one local folder, one run at a time."""

    def __init__(
        self, output: OutputConfig, portal_host: str, *, reserved: Iterable[Path] = ()
    ) -> None:
        """`portal_host` goes into every sidecar; `reserved` are other files the run
        writes under the folder (the report), which no image may take the place of."""
        self.root = output.dir
        self._layout = output.layout
        self._portal_host = portal_host
        self._reserved = tuple(reserved)
        self._lock: RunLock | None = None
        self._index: ExportIndex | None = None
        self._registry: PathRegistry | None = None
        self._group: GroupCommit[tuple[ProductImage, FileSink], SavedFile] = GroupCommit(
            self._commit_group
        )

    async def open(self, *, write: bool = True) -> None:
        if not write:
            self._index = ExportIndex.read(self.root)
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.root}: {exc.strerror}") from None
        lock = RunLock(self.root / STATE_DIR).__enter__()
        try:
            removed = remove_temporaries(self.root)
            if removed:
                log.info("removed %d temporary files left by an interrupted run", removed)
            self._index = ExportIndex.open(self.root)
        except BaseException:
            lock.__exit__(None, None, None)
            raise
        self._lock = lock
        self._registry = PathRegistry(self.root, self._index, reserved=self._reserved)

    async def close(self) -> None:
        if self._index is not None:
            self._index.close()
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def is_done(self, ref: ImageRef) -> bool:
        return self._opened().is_done(ref)

    async def open_sink(self, image: ProductImage, content_type: str) -> FileSink:
        assert self._registry is not None, "open the destination for writing first"
        wanted = render_layout(self._layout, image, content_type)
        final = await self._registry.claim(image.ref, wanted, owner_of)
        return await FileSink.create(self.root, final, content_type)

    async def commit(self, image: ProductImage, sink: Sink) -> SavedFile:
        if isinstance(sink, FileSink):
            if sink.streamed:
                # A large file's fsync takes a while: in a worker thread of its own, beside
                # those of the other downloads (within a group they would follow in turn).
                await anyio.to_thread.run_sync(sink.sync)
            return await self._group.commit((image, sink))
        # A sink of another make: the file, its index line, then its sidecar.
        saved = await sink.commit()
        self._record(image, saved.key, saved.size)
        await anyio.to_thread.run_sync(self._land_sidecar, image, saved, datetime.now(UTC))
        return saved

    async def _commit_group(
        self, group: Sequence[tuple[ProductImage, FileSink]]
    ) -> list[SavedFile | BaseException]:
        """A group's index lines appended, then its files and sidecars made durable in one
        worker-thread call.

        The index lines go first, as for a single file the line goes before the sidecar:
        a line whose file or sidecar is not there is not done (`is_done` checks both), but
        a sidecar without its line (a kill between the two) would cost the next run a
        download of an image the contract counts as done."""
        for image, sink in group:
            self._record(image, sink.key, sink.size)
        try:
            return await anyio.to_thread.run_sync(self._land_group, group)
        except BaseException:
            # Stopped halfway, as by a kill: a file without its sidecar is not done and is
            # replaced by the next export of its name; no temporary is left behind.
            for _, sink in group:
                sink.discard()
            raise

    def _land_group(
        self, group: Sequence[tuple[ProductImage, FileSink]]
    ) -> list[SavedFile | BaseException]:
        """Each file written, fsynced and renamed into place, then its sidecar the same way;
        then each folder fsynced once, for all the group's renames (in a worker thread).
        A member that fails fails alone, its file taken back."""
        self._opened().written()  # the group's index rows first, where a kill leaves them
        exported_at = datetime.now(UTC)
        outcomes: list[SavedFile | BaseException] = []
        folders: dict[str, None] = {}  # in order, once each
        for image, sink in group:
            try:
                saved = sink.land()
            except Exception as exc:
                outcomes.append(exc)
                continue
            folders[sink.folder] = None
            file = f"{self.root}{os.sep}{saved.key}"
            document = build_sidecar(image, saved, self._portal_host, exported_at)
            try:
                write_atomic_sync(file + SIDECAR_SUFFIX, document_bytes(document), sync_dir=False)
            except OSError as exc:
                discard(file)
                outcomes.append(_sidecar_error(file, exc))
            else:
                outcomes.append(saved)
        for folder in folders:
            fsync_dir(folder)
        return outcomes

    def _record(self, image: ProductImage, key: str, size: int) -> None:
        """The index line of an export, appended before its sidecar lands."""
        assert self._index is not None
        self._index.add(image.ref, key, size, described=image.product is not None)

    def images_of(self, product_id: int) -> list[ImageRef]:
        return self._opened().images_of(product_id)

    def exported_products(self) -> set[int]:
        return self._opened().products()

    def key_of(self, ref: ImageRef) -> str:
        return self._opened().path_of(ref) or ""

    def gone_since(self, ref: ImageRef) -> str | None:
        return self._opened().gone_since(ref)

    async def mark_gone(self, ref: ImageRef, since: str | None) -> None:
        entry = self._opened().entries.get(ref)
        if entry is None or entry.gone == since:
            return
        await self._rewrite(entry, lambda file: rewrite_gone(file, since), "mark it gone")
        self._opened().add(ref, entry.path, entry.size, since, described=entry.described)

    def described(self, ref: ImageRef) -> bool:
        return self._opened().described(ref)

    async def describe(self, ref: ImageRef, product: ProductInfo) -> None:
        entry = self._opened().entries.get(ref)
        if entry is None:
            return
        change = functools.partial(rewrite_product, product=product)
        await self._rewrite(entry, change, "add its product")
        self._opened().add(ref, entry.path, entry.size, entry.gone, described=True)

    async def _rewrite(self, entry: IndexEntry, change: Callable[[Path], None], what: str) -> None:
        """Change an export's sidecar (in a thread), before its index line: the sidecar is
        the truth the index is rebuilt from."""
        file = self.root / entry.path
        try:
            await anyio.to_thread.run_sync(change, file)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a sidecar"
            raise OutputError(f"cannot {what} in the sidecar of {file}: {reason}") from None

    def gone_images(self) -> list[tuple[ImageRef, str]]:
        index = self._opened()
        return [(ref, entry.gone) for ref, entry in index.entries.items() if entry.gone]

    async def remove(self, ref: ImageRef) -> str:
        index = self._opened()
        entry = index.entries[ref]
        file = self.root / entry.path
        try:
            await anyio.to_thread.run_sync(_remove_export, file)
        except OSError as exc:
            raise OutputError(f"cannot remove {file}: {exc.strerror}") from None
        index.forget(ref)
        return entry.path

    def exported(self) -> Iterator[tuple[str, SidecarFacts]]:
        for key in sorted(entry.path for entry in self._opened().entries.values()):
            facts = load_sidecar(sidecar_path(self.root / key))
            if isinstance(facts, SidecarFacts):
                yield key, facts

    async def read_file(self, key: str) -> bytes:
        file = self.root / key
        try:
            return await anyio.to_thread.run_sync(file.read_bytes)
        except OSError as exc:
            raise OutputError(f"cannot read {file}: {exc.strerror}") from None

    def state_path(self, name: str) -> Path:
        folder = self.root / STATE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    async def keep_report(self, report: bytes) -> None:
        if self._lock is None:
            return  # not opened for writing: no state folder to keep it in
        folder = self.root / STATE_DIR / REPORTS_DIR
        name = datetime.now(UTC).strftime("report-%Y%m%dT%H%M%S%fZ.json")
        try:
            await anyio.to_thread.run_sync(_keep, folder, name, report)
        except OSError as exc:
            log.error("cannot keep the report in %s: %s", folder, exc.strerror)

    def _opened(self) -> ExportIndex:
        assert self._index is not None, "open the destination first"
        return self._index

    def _land_sidecar(self, image: ProductImage, saved: SavedFile, exported_at: datetime) -> None:
        """Write a file's sidecar; if that fails, take the file back too (an export is both)."""
        self._opened().written()  # its index row first, where a kill leaves it
        file = f"{self.root}{os.sep}{saved.key}"
        try:
            write_sidecar(file, image, saved, self._portal_host, exported_at)
        except OSError as exc:
            discard(file)
            raise _sidecar_error(file, exc) from None


def _sidecar_error(file: str, exc: OSError) -> OutputError:
    return OutputError(f"cannot write the sidecar of {file}: {exc.strerror}")


class FileSink:
    """A file on its way: held in memory while small, else streaming into its temporary,
    hashed on the way; renamed onto `final` when it lands."""

    def __init__(self, root: Path, final: Path, content_type: str) -> None:
        within, name = str(root) + os.sep, str(final)
        if name.startswith(within) and os.sep == "/":
            self.key = name[len(within) :]  # what relative_to gives, without its cost
        else:
            self.key = final.relative_to(root).as_posix()
        self.final = final
        self._final = name
        self.folder = os.path.dirname(name)  # noqa: PTH120  # strings: one per image
        self.temp: str | None = None  # the temporary, once the body is written to one
        self._fd = -1
        self._held: list[bytes] = []  # the body while it stays below SMALL_BODY_BYTES
        self._held_size = 0
        self._digest = hashlib.sha256()  # of the bytes written to the temporary
        self._size = 0
        self._media_type = (content_type or "application/octet-stream").split(";")[0].strip()

    @classmethod
    async def create(cls, root: Path, final: Path, content_type: str) -> FileSink:
        """A new, empty sink for `final`; nothing is on disk until its body needs it."""
        return cls(root, final, content_type)

    @property
    def size(self) -> int:
        return self._size

    @property
    def sha256(self) -> str:
        if not self._held:
            return self._digest.hexdigest()
        digest = self._digest.copy()
        for piece in self._held:
            digest.update(piece)
        return digest.hexdigest()

    async def write(self, pieces: Sequence[bytes]) -> None:
        size = sum(len(piece) for piece in pieces)
        if self.temp is None and self._held_size + size < SMALL_BODY_BYTES:
            self._held.extend(pieces)
            self._held_size += size
            self._size += size
            return
        if self._held:
            pieces = [*self._held, *pieces]
            self._held, self._held_size = [], 0
        try:
            await anyio.to_thread.run_sync(self._store, pieces)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.final}: {exc.strerror or exc}") from None
        self._size += size

    async def commit(self) -> SavedFile:
        try:
            return await anyio.to_thread.run_sync(self.land)
        except BaseException:
            self.discard()
            raise

    @property
    def streamed(self) -> bool:
        """Whether the body is in its temporary already (a large one), not held in memory."""
        return self.temp is not None

    def sync(self) -> None:
        """Make the temporary durable now (in a worker thread): a large file's fsync runs
        beside the others' instead of in turn within its group. `OutputError` (and the
        sink discarded) when it cannot."""
        with self._discarded_on_failure():
            self._sync()

    def land(self) -> SavedFile:
        """Write what is held, fsync, rename onto the final name (in a worker thread); the
        rename is made durable by the caller's fsync of the folder. `OutputError` (and the
        sink discarded) when it cannot."""
        with self._discarded_on_failure():
            if self.temp is None:
                self._store(self._held)
                self._held, self._held_size = [], 0
            self._sync()
            assert self.temp is not None
            commit_temp(self.temp, self._final, sync_dir=False)
        return SavedFile(self.key, self._size, self._digest.hexdigest(), self._media_type)

    @contextmanager
    def _discarded_on_failure(self) -> Iterator[None]:
        """The sink discarded if the block fails; a filesystem error as `OutputError`."""
        try:
            yield
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.final}: {exc.strerror or exc}") from None
        except BaseException:
            self.discard()
            raise

    def _sync(self) -> None:
        if self._fd >= 0:  # not fsynced and closed already
            try:
                os.fsync(self._fd)
            finally:
                self._close()

    def discard(self) -> None:
        self._held, self._held_size = [], 0
        self._close()
        if self.temp is not None:
            discard(self.temp)

    def _store(self, pieces: Sequence[bytes]) -> None:
        """Hash and write pieces, the temporary (and its folder) created first if need be."""
        if self.temp is None:
            temp = temp_name_for(self._final)
            try:
                fd = os.open(temp, _NEW_FILE, 0o666)
            except FileNotFoundError:  # the first file of its folder
                self.final.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(temp, _NEW_FILE, 0o666)
            self.temp, self._fd = temp, fd
        digest_and_write(pieces, self._digest, self._fd)

    def _close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def digest_and_write(pieces: Sequence[bytes], digest: Any, fd: int) -> None:
    """Hash pieces and write them all to `fd`, in one call (run off the event loop)."""
    for piece in pieces:
        digest.update(piece)
    for start in range(0, len(pieces), _IOV_MAX):
        _write_all(fd, [memoryview(piece) for piece in pieces[start : start + _IOV_MAX]])


def _write_all(fd: int, views: list[memoryview]) -> None:
    """os.writev until every byte is written (a short write leaves the rest to the next)."""
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _remove_export(file: Path) -> None:
    """An export's sidecar, then its file (a kill between leaves a file without a
    sidecar: not done, and replaced by the next export of that name)."""
    discard(sidecar_path(file))
    discard(file)
    fsync_dir(file.parent)


def _keep(folder: Path, name: str, report: bytes) -> None:
    """Write one report among the kept ones and drop the oldest beyond `KEPT_REPORTS`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic_sync(folder / name, report)
    kept = sorted(p for p in folder.iterdir() if p.name.startswith("report-"))
    for old in kept[:-KEPT_REPORTS]:
        discard(old)


def remove_temporaries(root: Path) -> int:
    """Delete temporaries a previous, interrupted run left under `root`; return how many."""
    removed = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            # The name alone first: a nightly run walks every file of the backup here.
            if name.startswith(".") and is_temporary(path := Path(folder, name)):
                discard(path)
                removed += 1
    return removed
